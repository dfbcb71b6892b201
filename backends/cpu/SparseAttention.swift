import CPolychipKernels
import PolychipCore

/// The `k` best `(value, index)` pairs seen so far under the top-K order: larger value
/// first, equal values lower index first. `−inf` and NaN are never kept.
struct TopKHeap {
    let capacity: Int
    let values: UnsafeMutablePointer<Float>
    let indices: UnsafeMutablePointer<Int32>
    var count = 0

    init(capacity: Int, values: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>) {
        self.capacity = capacity; self.values = values; self.indices = indices
    }

    /// Whether `(a, ia)` ranks below `(b, ib)`.
    @inline(__always)
    static func worse(_ a: Float, _ ia: Int32, _ b: Float, _ ib: Int32) -> Bool { a < b || (a == b && ia > ib) }

    /// The score a candidate must beat to enter (−inf while not full).
    @inline(__always)
    var threshold: Float { count < capacity ? -.infinity : values[0] }

    @inline(__always)
    mutating func offer(_ v: Float, _ i: Int32) {
        guard !v.isNaN, v != -.infinity else { return }
        if count < capacity {
            var c = count
            count += 1
            while c > 0 {  // sift up: the root is the worst kept
                let p = (c - 1) / 2
                guard TopKHeap.worse(v, i, values[p], indices[p]) else { break }
                values[c] = values[p]; indices[c] = indices[p]
                c = p
            }
            values[c] = v; indices[c] = i
            return
        }
        guard TopKHeap.worse(values[0], indices[0], v, i) else { return }
        var c = 0
        while true {
            let a = 2 * c + 1
            if a >= count { break }
            var child = a
            if a + 1 < count && TopKHeap.worse(values[a + 1], indices[a + 1], values[a], indices[a]) { child = a + 1 }
            guard TopKHeap.worse(values[child], indices[child], v, i) else { break }
            values[c] = values[child]; indices[c] = indices[child]
            c = child
        }
        values[c] = v; indices[c] = i
    }

    /// Writes the kept pairs best first, padded with `(−1, −inf)` to `capacity`.
    mutating func drain(indices outI: UnsafeMutablePointer<Int32>, values outV: UnsafeMutablePointer<Float>) {
        let n = count
        // Pop the worst repeatedly into the back of the output.
        var pos = n - 1
        while count > 0 {
            outV[pos] = values[0]; outI[pos] = indices[0]
            count -= 1
            let (v, i) = (values[count], indices[count])
            var c = 0
            while true {
                let a = 2 * c + 1
                if a >= count { break }
                var child = a
                if a + 1 < count && TopKHeap.worse(values[a + 1], indices[a + 1], values[a], indices[a]) { child = a + 1 }
                guard TopKHeap.worse(values[child], indices[child], v, i) else { break }
                values[c] = values[child]; indices[c] = indices[child]
                c = child
            }
            if count > 0 { values[c] = v; indices[c] = i }
            pos -= 1
        }
        for p in n..<capacity { outV[p] = -.infinity; outI[p] = -1 }
    }
}

extension CPUKernels {
    static func topK(_ ctx: KernelContext, _ scores: Operand, _ k: Int, _ idx: Operand, _ vals: Operand) {
        let (t, s) = (scores.shape[0], scores.shape[1])
        // Radix selection per row (C): the same result as a heap under the tie rule, O(S + k).
        forRows(ctx, rows: t, d: s) { r0, r1, w in
            let scratch = ctx.pool.workspaces[w].buffer(2, pck_topk_scratch(s, k), as: UInt8.self)
            for r in r0..<r1 {
                pck_topk_row(s, scores.f32() + r * s, k, idx.i32() + r * k, vals.f32() + r * k, scratch)
            }
        }
    }

    /// Tiled indexer scores: for tokens `t0 ..< t0+tb` and keys `s0 ..< s1`, calls
    /// `body(t, s, score)` per visible pair in key order (masked pairs are not passed).
    /// `kp` is K packed as the weight layout (`D × NR` slivers for all S keys).
    static func indexerTile(_ bl: GemmBlocking, t0: Int, tb: Int, s0: Int, s1: Int, hi: Int, d: Int, tTotal: Int, sTotal: Int,
                            qp: UnsafePointer<Float>, kp: UnsafePointer<Float>, w: UnsafePointer<Float>, ws: Workspace,
                            _ body: (_ t: Int, _ s: Int, _ n: Int, _ scores: UnsafePointer<Float>) -> Void) {
        let (mr, nr) = (bl.mr, bl.nr)
        let rows = tb * hi
        let sb = bl.attention.indexerKeys
        let dots = ws.buffer(10, rows * sb, as: Float.self)
        let acc = ws.buffer(11, sb, as: Float.self)
        var j0 = s0
        while j0 < s1 {
            let cur = min(sb, s1 - j0)
            // Visible: s ≤ t + S − T. Skip blocks no token of the tile sees.
            let lastVisible = t0 + tb - 1 + sTotal - tTotal
            if j0 > lastVisible { break }
            for sl in 0..<((cur + nr - 1) / nr) {
                let nn = min(nr, cur - sl * nr)
                var ir = 0
                while ir < rows {
                    pck_sgemm_kernel(d, qp + ir * d, kp + (j0 + sl * nr) * d, dots + ir * sb + sl * nr, sb, min(mr, rows - ir), nn, 0)
                    ir += mr
                }
            }
            for tl in 0..<tb {
                let t = t0 + tl
                let visible = max(0, min(cur, t + sTotal - tTotal + 1 - j0))
                guard visible > 0 else { continue }
                acc.update(repeating: 0, count: visible)
                for j in 0..<hi {
                    let wj = w[t * hi + j]
                    let dr = dots + (tl * hi + j) * sb
                    for s in 0..<visible { acc[s] += wj * max(dr[s], 0) }
                }
                body(t, j0, visible, acc)
            }
            j0 += cur
        }
    }

    /// Packs all keys of the indexer once (shared slot 2) and widens the weights (slot 3).
    static func indexerOperands(_ ctx: KernelContext, _ k: Operand, _ w: Operand) -> (kp: UnsafeMutablePointer<Float>, wf: UnsafeMutablePointer<Float>) {
        let (s, d) = (k.shape[0], k.shape[1]), nr = ctx.blocking.nr
        let kp = ctx.shared.buffer(2, (s + nr - 1) / nr * nr * d, as: Float.self)
        let chunk = ctx.blocking.attention.indexerPackKeys
        ctx.forRanges(s, chunk: chunk) { a, b, _ in
            pck_sgemm_pack_b(k.dtype.pck, d, b - a, k.raw + a * d * k.dtype.elementBytes, 1, d, kp + a * d)
        }
        let wf = f32Input(ctx, w, slot: 3)
        return (kp, wf)
    }

    /// Tokens per indexer tile: about 96 query rows (tokens × heads).
    static func indexerTokens(_ bl: GemmBlocking, hi: Int) -> Int { max(1, bl.attention.indexerRows / hi) }

    /// Packs the query rows of tokens `t0 ..< t0+tb` (`tb·Hi × D`) into worker slot 4.
    static func packIndexerQueries(_ bl: GemmBlocking, _ q: Operand, t0: Int, tb: Int, ws: Workspace) -> UnsafeMutablePointer<Float> {
        let (hi, d) = (q.shape[1], q.shape[2])
        let rows = tb * hi
        let qp = ws.buffer(4, (rows + bl.mr - 1) / bl.mr * bl.mr * d, as: Float.self)
        pck_sgemm_pack_a(q.dtype.pck, rows, d, q.raw + t0 * hi * d * q.dtype.elementBytes, d, 1, qp)
        return qp
    }

    static func lightningIndexer(_ ctx: KernelContext, _ q: Operand, _ k: Operand, _ w: Operand, _ out: Operand) {
        let (t, hi, d) = (q.shape[0], q.shape[1], q.shape[2]), s = k.shape[0]
        let bl = ctx.blocking
        let (kp, wf) = indexerOperands(ctx, k, w)
        let tb = indexerTokens(bl, hi: hi)
        let tBlocks = (t + tb - 1) / tb
        let sChunk = max(bl.nr, min(s, bl.attention.indexerTaskKeys) / bl.nr * bl.nr)
        let sChunks = (s + sChunk - 1) / sChunk
        let scores = out.f32()
        ctx.parallelFor(tBlocks * sChunks) { task, wk in
            let ws = ctx.pool.workspaces[wk]
            let t0 = (task / sChunks) * tb, cur = min(tb, t - t0)
            let s0 = (task % sChunks) * sChunk, s1 = min(s, s0 + sChunk)
            for tl in 0..<cur { (scores + (t0 + tl) * s + s0).update(repeating: -.infinity, count: s1 - s0) }
            let qp = packIndexerQueries(bl, q, t0: t0, tb: cur, ws: ws)
            indexerTile(bl, t0: t0, tb: cur, s0: s0, s1: s1, hi: hi, d: d, tTotal: t, sTotal: s, qp: qp, kp: kp, w: wf, ws: ws) { ti, j0, n, acc in
                (scores + ti * s + j0).update(from: acc, count: n)
            }
        }
    }

    /// The indexer fused with per-token top-k: scores live one tile at a time.
    static func lightningIndexerTopK(_ ctx: KernelContext, _ q: Operand, _ k: Operand, _ w: Operand, topK: Int,
                                     _ idx: Operand, _ vals: Operand) {
        let (t, hi, d) = (q.shape[0], q.shape[1], q.shape[2]), s = k.shape[0]
        let bl = ctx.blocking
        let (kp, wf) = indexerOperands(ctx, k, w)
        let tb = indexerTokens(bl, hi: hi)
        ctx.parallelFor((t + tb - 1) / tb) { task, wk in
            let ws = ctx.pool.workspaces[wk]
            let t0 = task * tb, cur = min(tb, t - t0)
            let hv = ws.buffer(5, cur * topK, as: Float.self), hix = ws.buffer(6, cur * topK, as: Int32.self)
            var heaps = (0..<cur).map { TopKHeap(capacity: topK, values: hv + $0 * topK, indices: hix + $0 * topK) }
            let qp = packIndexerQueries(bl, q, t0: t0, tb: cur, ws: ws)
            indexerTile(bl, t0: t0, tb: cur, s0: 0, s1: s, hi: hi, d: d, tTotal: t, sTotal: s, qp: qp, kp: kp, w: wf, ws: ws) { ti, j0, n, acc in
                for j in 0..<n { heaps[ti - t0].offer(acc[j], Int32(j0 + j)) }
            }
            for tl in 0..<cur { heaps[tl].drain(indices: idx.i32() + (t0 + tl) * topK, values: vals.f32() + (t0 + tl) * topK) }
        }
    }

    static func sparseAttention(_ ctx: KernelContext, _ q: Operand, _ k: Operand, _ v: Operand, _ indices: Operand,
                                _ p: SparseAttentionParams, _ outs: [Operand]) throws {
        let (t, h, d) = (q.shape[0], q.shape[1], q.shape[2])
        let (s, hkv, dv) = (k.shape[0], k.shape[1], v.shape[2])
        let kk = indices.shape[1]
        let ix = indices.i32()
        for i in 0..<(t * kk) where ix[i] < -1 || Int(ix[i]) >= s {
            throw PolychipError.invalidArgument(kernel: ctx.kernel, argument: "indices",
                                                reason: "index \(ix[i]) is outside 0..<\(s) (−1 marks padding)")
        }
        // A repeated index is attended once (docs/kernels.md): run on the deduplicated copy.
        let unique = SparseAttentionParams.firstOccurrences(UnsafeBufferPointer(start: indices.i32(), count: t * kk), rows: t, k: kk, keys: s)
        let group = h / hkv
        let scale = Float(p.scale ?? 1 / Double(d).squareRoot())
        let bl = ctx.blocking
        let (mr, nr) = (bl.mr, bl.nr)
        let dt = q.dtype, es = dt.elementBytes
        let o = outs[0], lse: Operand? = p.returnLSE ? outs[1] : nil
        ctx.parallelFor(t * hkv) { task, w in
            let ti = task / hkv, kvh = task % hkv
            let ws = ctx.pool.workspaces[w]
            let sel = ws.buffer(14, kk, as: Int.self)
            var nk = 0
            for j in 0..<kk {
                let x = unique?[ti * kk + j] ?? ix[ti * kk + j]
                if x >= 0 { sel[nk] = Int(x); nk += 1 }
            }
            let rows = group
            let qt = ws.buffer(2, rows * d, as: Float.self)
            let qp = ws.buffer(3, (rows + mr - 1) / mr * mr * d, as: Float.self)
            let limit = ws.buffer(4, rows, as: Int.self)
            let acc = ws.buffer(5, rows * dv, as: Float.self)
            let m = ws.buffer(6, rows, as: Float.self), l = ws.buffer(8, rows, as: Float.self)
            let lseRow = ws.buffer(9, rows, as: Float.self)
            for r in 0..<rows {
                loadF32(q.raw + ((ti * h + kvh * group + r) * d) * es, dt, d, into: qt + r * d)
                pck_scale(d, scale, qt + r * d, qt + r * d)
                limit[r] = nk
                m[r] = -.infinity
                l[r] = 0
            }
            acc.update(repeating: 0, count: rows * dv)
            if nk > 0 {
                pck_sgemm_pack_a(PCK_DT_F32, rows, d, qt, d, 1, qp)
                // Gather the selected keys and values of this kv head, then pack them.
                let gk = ws.buffer(15, nk * d * es, as: UInt8.self), gv = ws.buffer(16, nk * dv * es, as: UInt8.self)
                for (j, key) in (0..<nk).map({ ($0, sel[$0]) }) {
                    UnsafeMutableRawPointer(gk + j * d * es).copyMemory(from: k.raw + ((key * hkv + kvh) * d) * es, byteCount: d * es)
                    UnsafeMutableRawPointer(gv + j * dv * es).copyMemory(from: v.raw + ((key * hkv + kvh) * dv) * es, byteCount: dv * es)
                }
                let kb = ws.buffer(12, (nk + nr - 1) / nr * nr * d, as: Float.self)
                let vb = ws.buffer(13, (dv + nr - 1) / nr * nr * nk, as: Float.self)
                pck_sgemm_pack_b(dt.pck, d, nk, gk, 1, d, kb)
                pck_sgemm_pack_b(dt.pck, nk, dv, gv, dv, 1, vb)
                Flash.run(bl, rows: rows, d: d, dv: dv, qp: qp, kStart: 0, kEnd: nk, limit: limit, o: acc, m: m, l: l, ws: ws) { j0, _ in
                    Flash.KVBlock(kp: kb + j0 * d, vp: vb + j0 * nr, vStride: nk * nr)
                }
            }
            Flash.normalize(rows: rows, dv: dv, o: acc, m: m, l: l, lse: lseRow)
            for r in 0..<rows {
                let row = ti * h + kvh * group + r
                storeF32(acc + r * dv, dv, to: o.raw + row * dv * es, dt)
                if let lse { lse.f32()[row] = lseRow[r] }
            }
        }
    }
}
