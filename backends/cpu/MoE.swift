import CPolychipKernels
import Foundation
import PolychipCore

extension CPUKernels {
    /// Routes one token (docs/kernels.md, moeRouter): scores and selection in f64 from the
    /// f32 logits. `s` and `c` are scratch of `e` doubles, `groupScores` of `nGroup`.
    static func route(_ logits: UnsafePointer<Float>, e: Int, bias: UnsafePointer<Float>?, _ p: RouterParams,
                      s: UnsafeMutablePointer<Double>, c: UnsafeMutablePointer<Double>, groupScores: UnsafeMutablePointer<Double>,
                      weights: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>) {
        if p.scoring == .softmax {
            var nan = false, posInf = 0, mx = -Double.infinity
            for i in 0..<e {
                let v = Double(logits[i])
                if v.isNaN { nan = true } else if v == .infinity { posInf += 1 }
                mx = max(mx, v)
            }
            if nan {
                for i in 0..<e { s[i] = .nan }
            } else if posInf > 0 {
                for i in 0..<e { s[i] = logits[i] == .infinity ? 1 / Double(posInf) : 0 }
            } else if mx == -.infinity {
                for i in 0..<e { s[i] = 0 }
            } else {
                var sum = 0.0
                for i in 0..<e { s[i] = Foundation.exp(Double(logits[i]) - mx); sum += s[i] }
                for i in 0..<e { s[i] /= sum }
            }
        } else {
            for i in 0..<e { s[i] = 1 / (1 + Foundation.exp(-Double(logits[i]))) }
        }
        for i in 0..<e { c[i] = s[i] + (bias.map { Double($0[i]) } ?? 0) }
        if p.nGroup > 1 {
            let size = e / p.nGroup
            for g in 0..<p.nGroup {
                // With a bias the sum of the top min(2, size) choice scores (largest first),
                // without one the maximum (DeepSeek's Gate; docs/kernels.md).
                var a = -Double.infinity, b = -Double.infinity
                for i in (g * size)..<((g + 1) * size) {
                    let v = c[i]
                    if v > a { b = a; a = v } else if v > b { b = v }
                }
                groupScores[g] = size >= 2 && bias != nil ? 0 + a + b : 0 + a
            }
            // Keep the topkGroup best groups (ties: lower group; −inf and NaN never kept).
            var kept = [Bool](repeating: false, count: p.nGroup)
            for _ in 0..<p.topkGroup {
                var best = -1
                for g in 0..<p.nGroup where !kept[g] && !groupScores[g].isNaN && groupScores[g] != -.infinity {
                    if best < 0 || groupScores[g] > groupScores[best] { best = g }
                }
                if best >= 0 { kept[best] = true }
            }
            for g in 0..<p.nGroup where !kept[g] {
                for i in (g * size)..<((g + 1) * size) { c[i] = -.infinity }
            }
        }
        // Top-k by choice score, ties lower id first.
        var sum = 0.0
        for slot in 0..<p.topK {
            var best = -1
            for i in 0..<e {
                var taken = false
                for q in 0..<slot where ids[q] == Int32(i) { taken = true; break }
                if taken { continue }
                if best < 0 || c[i] > c[best] { best = i }
            }
            ids[slot] = Int32(best)
            sum += s[best]
        }
        let denom = p.renormalize ? sum + 1e-20 : 1
        for slot in 0..<p.topK {
            weights[slot] = Float(s[Int(ids[slot])] / denom * p.routedScale)
        }
    }

    /// Routes every token of f32 logits `[t, e]` in parallel.
    static func routeAll(_ ctx: KernelContext, logits: UnsafePointer<Float>, t: Int, e: Int, bias: UnsafePointer<Float>?,
                         _ p: RouterParams, weights: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>) {
        ctx.forRanges(t, chunk: ctx.chunk(t, grain: max(1, 4096 / e), maxTasks: 64)) { t0, t1, w in
            let ws = ctx.pool.workspaces[w]
            let s = ws.buffer(2, e, as: Double.self), c = ws.buffer(3, e, as: Double.self)
            let g = ws.buffer(4, p.nGroup, as: Double.self)
            for ti in t0..<t1 {
                route(logits + ti * e, e: e, bias: bias, p, s: s, c: c, groupScores: g,
                      weights: weights + ti * p.topK, ids: ids + ti * p.topK)
            }
        }
    }

    static func moeRouter(_ ctx: KernelContext, _ logits: Operand, _ bias: Operand?, _ p: RouterParams, _ weights: Operand, _ ids: Operand) {
        let (t, e) = (logits.shape[0], logits.shape[1])
        let lf = f32Input(ctx, logits, slot: 2)
        routeAll(ctx, logits: lf, t: t, e: e, bias: bias.map { UnsafePointer($0.f32()) }, p, weights: weights.f32(), ids: ids.i32())
    }

    /// The stable expert order of `(token, slot)` pairs: `order[row]` = flat index,
    /// `pos[flat]` = row, `offsets[e]` segment starts. Throws the reference's error for
    /// an id outside `0..<experts` (first in flat order).
    static func permutation(_ ctx: KernelContext, ids: UnsafePointer<Int32>, count: Int, experts: Int,
                            order: UnsafeMutablePointer<Int32>, pos: UnsafeMutablePointer<Int32>?) throws -> [Int] {
        var counts = [Int](repeating: 0, count: experts + 1)
        for i in 0..<count {
            let id = Int(ids[i])
            guard id >= 0, id < experts else {
                throw PolychipError.invalidArgument(kernel: ctx.kernel, argument: "ids", reason: "expert id \(id) is outside 0..<\(experts)")
            }
            counts[id + 1] += 1
        }
        for e in 0..<experts { counts[e + 1] += counts[e] }
        var next = counts
        for i in 0..<count {
            let id = Int(ids[i])
            order[next[id]] = Int32(i)
            pos?[i] = Int32(next[id])
            next[id] += 1
        }
        return counts
    }

    static func moePermute(_ ctx: KernelContext, _ x: Operand, _ ids: Operand, _ e: Int, _ rows: Operand, _ offsets: Operand, _ sourceMap: Operand) throws {
        let (t, h) = (x.shape[0], x.shape[1]), k = ids.shape[1]
        let n = t * k
        let order = ctx.shared.buffer(2, n, as: Int32.self)
        let off = try permutation(ctx, ids: ids.i32(), count: n, experts: e, order: order, pos: nil)
        for i in 0...e { offsets.i32()[i] = Int32(off[i]) }
        sourceMap.i32().update(from: order, count: n)
        let rowBytes = h * x.dtype.elementBytes
        forRows(ctx, rows: n, d: h) { r0, r1, _ in
            for r in r0..<r1 {
                (rows.raw + r * rowBytes).copyMemory(from: x.raw + (Int(order[r]) / k) * rowBytes, byteCount: rowBytes)
            }
        }
    }

    static func moeCombine(_ ctx: KernelContext, _ y: Operand, _ sourceMap: Operand, _ weights: Operand, _ out: Operand) throws {
        let (t, k) = (weights.shape[0], weights.shape[1]), h = y.shape[1]
        let n = t * k
        let sm = sourceMap.i32()
        let pos = ctx.shared.buffer(2, n, as: Int32.self)
        pos.update(repeating: -1, count: n)
        for row in 0..<n {
            let flat = Int(sm[row])
            guard flat >= 0, flat < n, pos[flat] == -1 else {
                throw PolychipError.invalidArgument(kernel: ctx.kernel, argument: "sourceMap",
                                                    reason: "must be a permutation of 0..<\(n); entry \(row) is \(flat)")
            }
            pos[flat] = Int32(row)
        }
        let dt = y.dtype, es = dt.elementBytes
        let wt = weights.f32()
        forRows(ctx, rows: t, d: h * k) { t0, t1, w in
            let ws = ctx.pool.workspaces[w]
            let acc = ws.buffer(2, h, as: Float.self), row = ws.buffer(3, h, as: Float.self)
            for ti in t0..<t1 {
                acc.update(repeating: 0, count: h)
                for slot in 0..<k {
                    let r = Int(pos[ti * k + slot])
                    if dt == .f32 {
                        pck_axpy(h, wt[ti * k + slot], y.f32() + r * h, acc)
                    } else {
                        loadF32(y.raw + r * h * es, dt, h, into: row)
                        pck_axpy(h, wt[ti * k + slot], row, acc)
                    }
                }
                storeF32(acc, h, to: out.raw + ti * h * es, dt)
            }
        }
    }
}
