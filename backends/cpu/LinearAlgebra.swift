import CPolychipKernels
import PolychipCore

extension CPUKernels {
    /// An f32 destination for a kernel's float output: the output itself when it is f32,
    /// else a scratch buffer that ``finish(_:_:_:)`` rounds into the output.
    static func f32Output(_ ctx: KernelContext, _ y: Operand, slot: Int) -> UnsafeMutablePointer<Float> {
        y.dtype == .f32 ? y.f32() : ctx.shared.buffer(slot, y.count, as: Float.self)
    }

    /// Rounds an f32 scratch result into a 16-bit output (threaded); no-op for f32.
    static func finish(_ ctx: KernelContext, _ c: UnsafeMutablePointer<Float>, _ y: Operand) {
        guard y.dtype != .f32 else { return }
        let n = y.count
        ctx.forRanges(n, chunk: ctx.chunk(n, grain: ctx.blocking.elementGrain)) { s, e, _ in storeF32(c + s, e - s, to: y.at(s), y.dtype) }
    }

    static func matmul(_ ctx: KernelContext, _ a: Operand, _ b: Operand, _ c: Operand, transposeB tb: Bool) {
        let (m, k) = (a.shape[0], a.shape[1]), n = c.shape[1], dt = a.dtype.pck
        let out = f32Output(ctx, c, slot: 1)
        let bop: GemmB = tb ? .strided(b.raw, dt, rs: 1, cs: k) : .strided(b.raw, dt, rs: n, cs: 1)
        Gemm.run(ctx, m: m, n: n, k: k, a: .strided(a.raw, dt, rs: k, cs: 1), b: bop, c: out, ldc: n, accumulate: false)
        finish(ctx, out, c)
    }

    /// Reads and checks group offsets (start 0, non-decreasing, end at `rows`), with the
    /// reference's error.
    static func offsets(_ ctx: KernelContext, _ o: Operand, rows: Int) throws -> [Int] {
        let v = (0..<o.count).map { Int(o.i32()[$0]) }
        guard v.first == 0, v.last == rows, zip(v, v.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw PolychipError.invalidArgument(kernel: ctx.kernel, argument: "offsets",
                                                reason: "must start at 0, never decrease and end at \(rows) rows, got \(v.prefix(16))")
        }
        return v
    }

    /// One GEMM segment of a grouped product: rows `start ..< start+rows` of A and C use B.
    struct Segment { var start: Int; var rows: Int; var b: GemmB }

    /// Runs independent segment GEMMs (`C[rows] = A[rows]·B_e`) as tasks of
    /// row blocks × column chunks, each a serial packed GEMM.
    static func segmentedGemm(_ ctx: KernelContext, _ segments: [Segment], n: Int, k: Int, a: GemmA,
                              c: UnsafeMutablePointer<Float>, ldc: Int) {
        let bl = ctx.blocking
        let ncTask = max(bl.nr, min(n, bl.groupedColumns) / bl.nr * bl.nr)
        var tasks: [(seg: Int, i0: Int, m: Int, j0: Int, nn: Int)] = []
        for (si, s) in segments.enumerated() where s.rows > 0 {
            let mcTask = min(s.rows, bl.mc)
            for i0 in stride(from: s.start, to: s.start + s.rows, by: mcTask) {
                for j0 in stride(from: 0, to: n, by: ncTask) {
                    tasks.append((si, i0, min(mcTask, s.start + s.rows - i0), j0, min(ncTask, n - j0)))
                }
            }
        }
        ctx.parallelFor(tasks.count) { t, w in
            let task = tasks[t]
            Gemm.serial(bl, m: task.m, i0: task.i0, n: task.nn, j0: task.j0, k: k, a: a, b: segments[task.seg].b,
                        c: c + task.i0 * ldc + task.j0, ldc: ldc, accumulate: false, ws: ctx.pool.workspaces[w])
        }
    }

    static func groupedMatmul(_ ctx: KernelContext, _ x: Operand, _ w: Operand, _ off: Operand, _ y: Operand, transposeB tb: Bool) throws {
        let (t, k) = (x.shape[0], x.shape[1]), n = y.shape[1], dt = x.dtype.pck
        let o = try offsets(ctx, off, rows: t)
        let out = f32Output(ctx, y, slot: 1)
        let es = x.dtype.elementBytes
        let segments = (0..<(o.count - 1)).map { e -> Segment in
            let base = UnsafeRawPointer(w.raw + e * k * n * es)
            return Segment(start: o[e], rows: o[e + 1] - o[e], b: tb ? .strided(base, dt, rs: 1, cs: k) : .strided(base, dt, rs: n, cs: 1))
        }
        segmentedGemm(ctx, segments, n: n, k: k, a: .strided(x.raw, dt, rs: k, cs: 1), c: out, ldc: n)
        finish(ctx, out, y)
    }

    /// W4A16 GEMV for `m ≤ 8` rows of f32 activations `x` (leading dim `k`): rows of W in
    /// parallel chunks, `y[i, n]` for `n` in `0..<nTotal`.
    static func int4Gemv(_ ctx: KernelContext, m: Int, k: Int, x: UnsafePointer<Float>, w: Int4Weights, n: Int,
                         y: UnsafeMutablePointer<Float>, ldy: Int, xprep: UnsafeMutablePointer<Float>) {
        pck_int4_xprep(m, k, w.groupSize, x, k, xprep)
        let rowsPerTask = ctx.blocking.gemvRowsPerTask(n: n, k: k)
        ctx.forRanges(n, chunk: rowsPerTask) { n0, n1, _ in
            pck_int4_gemv(m, k, w.groupSize, xprep, w.q, w.ldw, w.scales, w.lds, w.zeros, w.ldz, n0, n1, y, ldy, 0)
        }
    }

    /// Activations as f32: the input itself when f32, else widened into shared `slot`.
    static func f32Input(_ ctx: KernelContext, _ x: Operand, slot: Int) -> UnsafeMutablePointer<Float> {
        if x.dtype == .f32 { return x.f32() }
        let buf = ctx.shared.buffer(slot, x.count, as: Float.self)
        let n = x.count
        ctx.forRanges(n, chunk: ctx.chunk(n, grain: ctx.blocking.elementGrain)) { s, e, _ in loadF32(x.at(s), x.dtype, e - s, into: buf + s) }
        return buf
    }

    static func int4Matmul(_ ctx: KernelContext, _ x: Operand, _ w: Int4Weights, _ y: Operand) {
        let (m, k) = (x.shape[0], x.shape[1]), n = y.shape[1]
        let out = f32Output(ctx, y, slot: 1)
        if m <= ctx.blocking.int4GemvMaxRows {
            let xf = f32Input(ctx, x, slot: 2)
            let xp = ctx.shared.buffer(3, pck_int4_xprep_size(m, k, w.groupSize), as: Float.self)
            int4Gemv(ctx, m: m, k: k, x: xf, w: w, n: n, y: out, ldy: n, xprep: xp)
        } else {
            Gemm.run(ctx, m: m, n: n, k: k, a: .strided(x.raw, x.dtype.pck, rs: k, cs: 1), b: .int4(w), c: out, ldc: n, accumulate: false)
        }
        finish(ctx, out, y)
    }

    static func int4GroupedMatmul(_ ctx: KernelContext, _ x: Operand, _ w: Int4Weights, _ off: Operand, _ f: Int4Format, _ y: Operand) throws {
        let (t, k) = (x.shape[0], x.shape[1]), n = y.shape[1]
        let o = try offsets(ctx, off, rows: t)
        let out = f32Output(ctx, y, slot: 1)
        let experts = o.count - 1
        func expert(_ e: Int) -> Int4Weights {
            var we = w
            we.q += e * n * w.ldw
            we.scales += e * n * w.lds
            if let z = w.zeros { we.zeros = z + e * n * w.ldz }
            return we
        }
        // Decode-sized segments take the GEMV; the others the packed GEMM with INT4 panels.
        let small = (0..<experts).filter { o[$0 + 1] - o[$0] > 0 && o[$0 + 1] - o[$0] <= ctx.blocking.int4GemvMaxRows }
        let large = (0..<experts).filter { o[$0 + 1] - o[$0] > ctx.blocking.int4GemvMaxRows }
        if !small.isEmpty {
            let xf = f32Input(ctx, x, slot: 2)
            let per = pck_int4_xprep_size(ctx.blocking.int4GemvMaxRows, k, w.groupSize)
            let xp = ctx.shared.buffer(3, per * small.count, as: Float.self)
            ctx.parallelFor(small.count) { i, _ in
                let e = small[i]
                pck_int4_xprep(o[e + 1] - o[e], k, w.groupSize, xf + o[e] * k, k, xp + i * per)
            }
            let rowsPerTask = ctx.blocking.gemvRowsPerTask(n: n, k: k)
            let chunks = (n + rowsPerTask - 1) / rowsPerTask
            ctx.parallelFor(small.count * chunks) { t, _ in
                let i = t / chunks, e = small[i]
                let n0 = (t % chunks) * rowsPerTask, n1 = min(n, n0 + rowsPerTask)
                let we = expert(e)
                pck_int4_gemv(o[e + 1] - o[e], k, w.groupSize, xp + i * per, we.q, we.ldw, we.scales, we.lds, we.zeros, we.ldz,
                              n0, n1, out + o[e] * n, n, 0)
            }
        }
        if !large.isEmpty {
            let segments = large.map { Segment(start: o[$0], rows: o[$0 + 1] - o[$0], b: .int4(expert($0))) }
            segmentedGemm(ctx, segments, n: n, k: k, a: .strided(x.raw, x.dtype.pck, rs: k, cs: 1), c: out, ldc: n)
        }
        finish(ctx, out, y)
    }

    static func quantizeInt4(_ ctx: KernelContext, _ x: Operand, _ f: Int4Format, _ outs: [Operand]) {
        let (n, k) = (x.shape[0], x.shape[1]), g = f.groupSize
        let xf = f32Input(ctx, x, slot: 2)
        let zeros: UnsafeMutablePointer<Int8>? = f.symmetric ? nil : outs[2].i8()
        forRows(ctx, rows: n, d: k) { r0, r1, _ in
            pck_int4_quantize(r1 - r0, k, g, xf + r0 * k, k, outs[0].u8() + r0 * (k / 2), k / 2,
                              outs[1].f32() + r0 * (k / g), k / g, zeros.map { $0 + r0 * (k / g) }, k / g)
        }
    }

    static func dequantizeInt4(_ ctx: KernelContext, _ w: Int4Weights, _ q: Operand, _ f: Int4Format, _ y: Operand) throws {
        let (n, k) = (q.shape[0], q.shape[1])
        let out = f32Output(ctx, y, slot: 1)
        forRows(ctx, rows: n, d: k) { r0, r1, _ in
            pck_int4_dequantize(r0, r1, k, f.groupSize, w.q, w.ldw, w.scales, w.lds, w.zeros, w.ldz, out + r0 * k, k)
        }
        finish(ctx, out, y)
    }
}
