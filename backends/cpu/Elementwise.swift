import CPolychipKernels
import Foundation
import PolychipCore

extension CPUKernels {
    static func add_(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { y[i] = a[i] + b[i] }
    }

    /// `y = f(x)` element-wise, threaded over flat ranges; 16-bit inputs are widened in blocks.
    static func unary(_ ctx: KernelContext, _ x: Operand, _ y: Operand,
                      _ f: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let n = x.count, dt = x.dtype, block = ctx.blocking.elementBlock
        ctx.forRanges(n, chunk: ctx.chunk(n, grain: ctx.blocking.elementGrain)) { s, e, w in
            if dt == .f32 { f(e - s, x.f32() + s, y.f32() + s); return }
            let buf = ctx.pool.workspaces[w].buffer(2, block, as: Float.self)
            for b in stride(from: s, to: e, by: block) {
                let c = min(block, e - b)
                loadF32(x.at(b), dt, c, into: buf)
                f(c, buf, buf)
                storeF32(buf, c, to: y.at(b), dt)
            }
        }
    }

    /// `y = f(a, b)` element-wise.
    static func binary(_ ctx: KernelContext, _ a: Operand, _ b: Operand, _ y: Operand,
                       _ f: (Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let n = a.count, dt = a.dtype, block = ctx.blocking.elementBlock
        ctx.forRanges(n, chunk: ctx.chunk(n, grain: ctx.blocking.elementGrain)) { s, e, w in
            if dt == .f32 { f(e - s, a.f32() + s, b.f32() + s, y.f32() + s); return }
            let ws = ctx.pool.workspaces[w]
            let ba = ws.buffer(2, block, as: Float.self), bb = ws.buffer(3, block, as: Float.self)
            for o in stride(from: s, to: e, by: block) {
                let c = min(block, e - o)
                loadF32(a.at(o), dt, c, into: ba)
                loadF32(b.at(o), dt, c, into: bb)
                f(c, ba, bb, ba)
                storeF32(ba, c, to: y.at(o), dt)
            }
        }
    }

    /// Runs `body(rowStart, rowEnd, worker)` over the rows of a `[rows, d]` view.
    static func forRows(_ ctx: KernelContext, rows: Int, d: Int, _ body: (Int, Int, Int) -> Void) {
        let grain = max(1, ctx.blocking.elementGrain / max(1, d))
        ctx.forRanges(rows, chunk: ctx.chunk(rows, grain: grain, maxTasks: 256), body)
    }

    static func rmsNorm(_ ctx: KernelContext, _ x: Operand, _ weight: Operand, _ eps: Float, _ y: Operand) {
        let d = x.shape.last!, rows = x.count / d, dt = x.dtype
        let wf = ctx.shared.buffer(2, d, as: Float.self)
        loadF32(weight.raw, dt, d, into: wf)
        let stream = dt == .f32 && x.count * 4 >= ctx.blocking.streamStoreBytes
        forRows(ctx, rows: rows, d: d) { r0, r1, w in
            let buf = ctx.pool.workspaces[w].buffer(2, d, as: Float.self)
            for r in r0..<r1 {
                if stream && x.raw != y.raw {
                    pck_rmsnorm_stream(d, x.f32() + r * d, wf, eps, y.f32() + r * d)
                } else if dt == .f32 {
                    pck_rmsnorm(d, x.f32() + r * d, wf, eps, y.f32() + r * d)
                } else {
                    loadF32(x.at(r * d), dt, d, into: buf)
                    pck_rmsnorm(d, buf, wf, eps, buf)
                    storeF32(buf, d, to: y.at(r * d), dt)
                }
            }
        }
    }

    /// Fused residual add + RMSNorm, one pass over each row: `h = x + residual` is stored in
    /// the activation dtype and `y` normalizes that stored value (docs/kernels.md).
    static func addRmsNorm(_ ctx: KernelContext, _ x: Operand, _ residual: Operand, _ weight: Operand, _ eps: Float,
                           y: Operand, residualOut h: Operand) {
        let d = x.shape.last!, rows = x.count / d, dt = x.dtype
        let wf = ctx.shared.buffer(2, d, as: Float.self)
        loadF32(weight.raw, dt, d, into: wf)
        forRows(ctx, rows: rows, d: d) { r0, r1, w in
            let a = ctx.pool.workspaces[w].buffer(2, d, as: Float.self), b = ctx.pool.workspaces[w].buffer(3, d, as: Float.self)
            for r in r0..<r1 {
                if dt == .f32 {
                    pck_add_rmsnorm(d, x.f32() + r * d, residual.f32() + r * d, wf, eps, h.f32() + r * d, y.f32() + r * d)
                } else {
                    loadF32(x.at(r * d), dt, d, into: a)
                    loadF32(residual.at(r * d), dt, d, into: b)
                    add_(d, a, b, a)
                    storeF32(a, d, to: h.at(r * d), dt)
                    loadF32(h.at(r * d), dt, d, into: a)  // normalize the stored (rounded) residual
                    pck_rmsnorm(d, a, wf, eps, a)
                    storeF32(a, d, to: y.at(r * d), dt)
                }
            }
        }
    }

    /// Softmax of one f32 row under the contract's rules (NaN row → NaN, `+inf` entries
    /// share the mass, all `−inf` → 0). `y` may equal `x`.
    static func softmaxRow(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        // Three passes on the common path: the max (NaN skipped), exp(x − max) with its sum,
        // the scale. A NaN entry makes exp(NaN − max), so the sum, NaN; only +inf (max =
        // +inf) and rows with no finite entry (max = −inf) need the slow rules below.
        let mx = pck_max(n, x)
        if mx != .infinity && mx != -.infinity {
            let l = pck_exp_sub_sum(n, x, mx, y)
            if !l.isNaN {
                pck_scale(n, 1 / l, y, y)
                return
            }
        }
        var posInf = 0, nan = false
        for i in 0..<n {
            if x[i].isNaN { nan = true }
            if x[i] == .infinity { posInf += 1 }
        }
        if nan {
            y.update(repeating: .nan, count: n)
        } else if posInf > 0 {
            let share = 1 / Float(posInf)
            for i in 0..<n { y[i] = x[i] == .infinity ? share : 0 }
        } else {
            pck_softmax(n, x, y)
        }
    }

    static func softmax(_ ctx: KernelContext, _ x: Operand, _ y: Operand) {
        let d = x.shape.last!, rows = x.count / d, dt = x.dtype
        forRows(ctx, rows: rows, d: d) { r0, r1, w in
            let buf = ctx.pool.workspaces[w].buffer(2, d, as: Float.self)
            for r in r0..<r1 {
                if dt == .f32 {
                    softmaxRow(d, x.f32() + r * d, y.f32() + r * d)
                } else {
                    loadF32(x.at(r * d), dt, d, into: buf)
                    softmaxRow(d, buf, buf)
                    storeF32(buf, d, to: y.at(r * d), dt)
                }
            }
        }
    }

    static func rope(_ ctx: KernelContext, _ x: Operand, _ positions: Operand, _ p: RopeParams, _ y: Operand) {
        let (t, h, d) = (x.shape[0], x.shape[1], x.shape[2])
        let r = p.rotaryDim ?? d, half = r / 2, dt = x.dtype
        // θ^(−2i/R) exactly as the contract writes it, in f64; angles per token in f64.
        let invFreq = ctx.shared.buffer(3, half, as: Double.self)
        for i in 0..<half { invFreq[i] = Foundation.pow(p.base, -2 * Double(i) / Double(r)) }
        let pos = positions.i32()
        ctx.forRanges(t, chunk: ctx.chunk(t, grain: max(1, ctx.blocking.elementGrain / (h * d)), maxTasks: 256)) { t0, t1, w in
            let ws = ctx.pool.workspaces[w]
            let cs = ws.buffer(2, 2 * half, as: Float.self)
            let row = ws.buffer(3, d, as: Float.self)
            for ti in t0..<t1 {
                let ps = Double(pos[ti])
                for i in 0..<half {
                    let angle = ps * invFreq[i]
                    cs[2 * i] = Float(Foundation.cos(angle))
                    cs[2 * i + 1] = Float(Foundation.sin(angle))
                }
                for hi in 0..<h {
                    let off = (ti * h + hi) * d
                    loadF32(x.at(off), dt, d, into: row)
                    for i in 0..<half {
                        let (i0, i1) = p.style == .neox ? (i, i + half) : (2 * i, 2 * i + 1)
                        let (a, b) = (row[i0], row[i1])
                        let (c, s) = (cs[2 * i], cs[2 * i + 1])
                        row[i0] = a * c - b * s
                        row[i1] = a * s + b * c
                    }
                    storeF32(row, d, to: y.at(off), dt)
                }
            }
        }
    }
}
