import CPolychipKernels
import Foundation
import PolychipCore

/// Flash-style attention on packed tiles: `S = Q·Kᵀ` and `O += P·V` both run on the SGEMM
/// microkernel; the softmax is online (running max and sum per row), so no `Lq × Lk`
/// score matrix exists, only one `rows × Bc` tile per task.
enum Flash {
    /// Packed keys and values of one block: `kp` holds `ceil(bcur/NR)` slivers of `D × NR`
    /// (the weight layout of K); `vp` is the first V sliver for the block's keys, sliver
    /// `t` at `vp + t·vStride` with `bcur × NR` floats each.
    struct KVBlock {
        var kp: UnsafePointer<Float>
        var vp: UnsafePointer<Float>
        var vStride: Int
    }

    /// Advances `rows` query rows (packed in `qp`, `rows × d`, MR slivers, already scaled)
    /// over keys `kStart ..< kEnd`. Row `r` sees keys `j < limit[r]`. `o` (`rows × dv`),
    /// `m` and `l` hold the running state and are updated in place.
    static func run(_ bl: GemmBlocking, rows: Int, d: Int, dv: Int, qp: UnsafePointer<Float>,
                    kStart: Int, kEnd: Int, limit: UnsafePointer<Int>,
                    o: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, l: UnsafeMutablePointer<Float>,
                    ws: Workspace, block: (_ j0: Int, _ bcur: Int) -> KVBlock) {
        let (mr, nr) = (bl.mr, bl.nr)
        let bc = bl.attention.bc
        let s = ws.buffer(10, rows * bc, as: Float.self)
        let pp = ws.buffer(11, (rows + mr - 1) / mr * mr * bc, as: Float.self)
        let dvSlivers = (dv + nr - 1) / nr
        // The keys each MR-row tile sees at most (causal rows see fewer): S tiles wholly past
        // it are not computed (the softmax reads only visible scores) and P·V stops there
        // (its P is 0 beyond; the reference never touches masked keys' V at all).
        let tiles = (rows + mr - 1) / mr
        let tileLimit = ws.buffer(16, tiles, as: Int.self)  // 12-15 are the callers'
        var maxLimit = 0
        for ti in 0..<tiles {
            tileLimit[ti] = (ti * mr..<min(rows, ti * mr + mr)).reduce(0) { max($0, limit[$1]) }
            maxLimit = max(maxLimit, tileLimit[ti])
        }
        let end = min(kEnd, maxLimit)
        var j0 = kStart
        while j0 < end {
            let bcur = min(bc, end - j0)
            let kv = block(j0, bcur)
            // S = Q·Kᵀ for the block.
            let ks = (bcur + nr - 1) / nr
            for sl in 0..<ks {
                let nn = min(nr, bcur - sl * nr)
                for ti in 0..<tiles where j0 + sl * nr < tileLimit[ti] {
                    let ir = ti * mr
                    pck_sgemm_kernel(d, qp + ir * d, kv.kp + sl * d * nr, s + ir * bc + sl * nr, bc, min(mr, rows - ir), nn, 0)
                }
            }
            // Mask, online softmax, rescale O. A NaN logit makes the row NaN (docs/kernels.md:
            // NaN in, NaN out), as in the reference: the running max skips NaN, but
            // exp(NaN − m) is NaN, so the row's sum l becomes NaN and stays so.
            pck_flash_softmax(rows, bcur, s, bc, limit, j0, m, l, o, dv, dv)
            // O += P·V.
            pck_sgemm_pack_a(PCK_DT_F32, rows, bcur, s, bc, 1, pp)
            for t in 0..<dvSlivers {
                let nn = min(nr, dv - t * nr)
                for ti in 0..<tiles {
                    let ir = ti * mr, kcur = min(bcur, tileLimit[ti] - j0)
                    guard kcur > 0 else { continue }
                    pck_sgemm_kernel(kcur, pp + ir * bcur, kv.vp + t * kv.vStride, o + ir * dv + t * nr, dv, min(mr, rows - ir), nn, 1)
                }
            }
            j0 += bcur
        }
    }

    /// Finishes rows: `o /= l` (0 for rows that saw no key) and `lse = m + log l` (−inf).
    static func normalize(rows: Int, dv: Int, o: UnsafeMutablePointer<Float>, m: UnsafePointer<Float>, l: UnsafePointer<Float>,
                          lse: UnsafeMutablePointer<Float>?) {
        for r in 0..<rows {
            if l[r].isNaN {
                (o + r * dv).update(repeating: .nan, count: dv)
                lse?[r] = .nan
            } else if l[r] > 0 {
                pck_scale(dv, 1 / l[r], o + r * dv, o + r * dv)
                lse?[r] = m[r] + Foundation.log(l[r])
            } else {
                (o + r * dv).update(repeating: 0, count: dv)
                lse?[r] = -.infinity
            }
        }
    }
}

extension CPUKernels {
    static func attention(_ ctx: KernelContext, _ q: Operand, _ k: Operand, _ v: Operand, _ p: AttentionParams, _ outs: [Operand]) {
        let (b, hq, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hkv, lk, dv) = (k.shape[1], k.shape[2], v.shape[3])
        let group = hq / hkv
        let scale = Float(p.scale ?? 1 / Double(d).squareRoot())
        let bl = ctx.blocking
        let (mr, nr) = (bl.mr, bl.nr)
        let dt = q.dtype, es = dt.elementBytes
        let o = outs[0], lse: Operand? = p.returnLSE ? outs[1] : nil
        // Rows of one kv head: (query head in group, query index), query index fastest.
        let rowsPerHead = group * lq
        let ab = bl.attention, bcK = ab.bc
        // Row blocks: within one query head when Lq ≥ Br (so causal limits stay tight;
        // the longest rows first for load balance), else spanning the group's heads (decode);
        // split-KV for decode-like shapes with too few row blocks to occupy the cores.
        let plan = FlashPlan(bl, b: b, hq: hq, hkv: hkv, lq: lq, lk: lk, d: d, dv: dv)
        let (br, blocksPerHead, rowBlocks, units) = (plan.br, plan.blocksPerHead, plan.rowBlocks, plan.units)
        let (chunkKeys, chunks) = (plan.chunkKeys, plan.chunks)
        func block(_ rb: Int) -> (r0: Int, rows: Int) {
            if blocksPerHead == 0 { return (rb * br, min(br, rowsPerHead - rb * br)) }
            let hg = rb / blocksPerHead, ib = blocksPerHead - 1 - rb % blocksPerHead
            return (hg * lq + ib * br, min(br, lq - ib * br))
        }
        // Pre-pack K and V once per kv head when several row blocks reuse them.
        let kSize = (lk + nr - 1) / nr * nr * d
        let vSize = (dv + nr - 1) / nr * nr * lk
        var kvp: UnsafeMutablePointer<Float>? = nil
        if plan.prepack {
            let buf = ctx.shared.buffer(2, b * hkv * (kSize + vSize), as: Float.self)
            kvp = buf
            let keyChunk = ab.prepackKeys
            let kTasks = (lk + keyChunk - 1) / keyChunk
            let vSl = (dv + nr - 1) / nr
            ctx.parallelFor(b * hkv * (kTasks + vSl)) { t, _ in
                let head = t / (kTasks + vSl), part = t % (kTasks + vSl)
                let kBase = k.raw + head * lk * d * es, vBase = v.raw + head * lk * dv * es
                let dst = buf + head * (kSize + vSize)
                if part < kTasks {
                    let j0 = part * keyChunk, nn = min(keyChunk, lk - j0)
                    pck_sgemm_pack_b(dt.pck, d, nn, kBase + j0 * d * es, 1, d, dst + j0 * d)
                } else {
                    let c0 = (part - kTasks) * nr
                    pck_sgemm_pack_b(dt.pck, lk, min(nr, dv - c0), vBase + c0 * es, dv, 1, dst + kSize + c0 * lk)
                }
            }
        }
        // Partial states for split-KV: per (unit, chunk) rows × (dv + 2).
        let partials = chunks > 1 ? ctx.shared.buffer(3, units * chunks * br * (dv + 2), as: Float.self) : nil
        ctx.parallelFor(units * chunks) { task, w in
            let unit = task / chunks, chunk = task % chunks
            let head = unit / rowBlocks, rb = unit % rowBlocks
            let bi = head / hkv, kvh = head % hkv
            let (r0, rows) = block(rb)
            let ws = ctx.pool.workspaces[w]
            let qt = ws.buffer(2, rows * d, as: Float.self)
            let qp = ws.buffer(3, (rows + mr - 1) / mr * mr * d, as: Float.self)
            let limit = ws.buffer(4, rows, as: Int.self)
            let acc = ws.buffer(5, rows * dv, as: Float.self)
            let m = ws.buffer(6, rows, as: Float.self), l = ws.buffer(8, rows, as: Float.self)
            for r in 0..<rows {
                let hg = (r0 + r) / lq, i = (r0 + r) % lq
                let h = kvh * group + hg
                loadF32(q.raw + (((bi * hq + h) * lq + i) * d) * es, dt, d, into: qt + r * d)
                pck_scale(d, scale, qt + r * d, qt + r * d)
                limit[r] = p.causal ? max(0, min(lk, i + lk - lq + 1)) : lk
                m[r] = -.infinity
                l[r] = 0
            }
            acc.update(repeating: 0, count: rows * dv)
            pck_sgemm_pack_a(PCK_DT_F32, rows, d, qt, d, 1, qp)
            let kStart = chunk * chunkKeys, kEnd = min(lk, kStart + chunkKeys)
            let kBase = k.raw + head * lk * d * es, vBase = v.raw + head * lk * dv * es
            let packedHead = kvp.map { $0 + head * (kSize + vSize) }
            let kb = ws.buffer(12, (bcK + nr - 1) / nr * nr * d, as: Float.self)
            let vb = ws.buffer(13, (dv + nr - 1) / nr * nr * bcK, as: Float.self)
            Flash.run(bl, rows: rows, d: d, dv: dv, qp: qp, kStart: kStart, kEnd: kEnd, limit: limit, o: acc, m: m, l: l, ws: ws) { j0, bcur in
                if let ph = packedHead {
                    return Flash.KVBlock(kp: ph + j0 * d, vp: ph + kSize + j0 * nr, vStride: lk * nr)
                }
                pck_sgemm_pack_b(dt.pck, d, bcur, kBase + j0 * d * es, 1, d, kb)
                pck_sgemm_pack_b(dt.pck, bcur, dv, vBase + j0 * dv * es, dv, 1, vb)
                return Flash.KVBlock(kp: kb, vp: vb, vStride: bcur * nr)
            }
            if let partials {
                let dst = partials + (unit * chunks + chunk) * br * (dv + 2)
                dst.update(from: acc, count: rows * dv)
                (dst + br * dv).update(from: m, count: rows)
                (dst + br * dv + br).update(from: l, count: rows)
                return
            }
            let lseRow = ws.buffer(9, rows, as: Float.self)
            Flash.normalize(rows: rows, dv: dv, o: acc, m: m, l: l, lse: lseRow)
            for r in 0..<rows {
                let hg = (r0 + r) / lq, i = (r0 + r) % lq
                let row = (bi * hq + kvh * group + hg) * lq + i
                storeF32(acc + r * dv, dv, to: o.raw + row * dv * es, dt)
                if let lse { lse.f32()[row] = lseRow[r] }
            }
        }
        guard let partials else { return }
        // Combine split-KV partials in chunk order (deterministic).
        ctx.parallelFor(units) { unit, w in
            let head = unit / rowBlocks, rb = unit % rowBlocks
            let bi = head / hkv, kvh = head % hkv
            let (r0, rows) = block(rb)
            let row = ctx.pool.workspaces[w].buffer(2, dv, as: Float.self)
            for r in 0..<rows {
                var mx = -Float.infinity
                for c in 0..<chunks { mx = max(mx, partials[(unit * chunks + c) * br * (dv + 2) + br * dv + r]) }
                row.update(repeating: 0, count: dv)
                var lsum: Float = 0
                let poisoned = (0..<chunks).contains { partials[(unit * chunks + $0) * br * (dv + 2) + br * dv + br + r].isNaN }
                if poisoned { lsum = .nan } else if mx != -.infinity {
                    for c in 0..<chunks {
                        let base = partials + (unit * chunks + c) * br * (dv + 2)
                        let lc = base[br * dv + br + r]
                        guard lc > 0 else { continue }
                        let f = Foundation.exp(base[br * dv + r] - mx)
                        lsum += lc * f
                        pck_axpy(dv, f, base + r * dv, row)
                    }
                }
                var lseValue = -Float.infinity
                if lsum.isNaN {
                    row.update(repeating: .nan, count: dv)
                    lseValue = .nan
                } else if lsum > 0 {
                    pck_scale(dv, 1 / lsum, row, row)
                    lseValue = mx + Foundation.log(lsum)
                } else {
                    row.update(repeating: 0, count: dv)
                }
                let hg = (r0 + r) / lq, i = (r0 + r) % lq
                let out = (bi * hq + kvh * group + hg) * lq + i
                storeF32(row, dv, to: o.raw + out * dv * es, dt)
                if let lse { lse.f32()[out] = lseValue }
            }
        }
    }
}
