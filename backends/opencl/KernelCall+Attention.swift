// KernelCall+Attention.swift — OpenCL launches of dense and sparse attention: program choice, split-KV, launches (one KernelCall extension per kernel family).

import Foundation
import PolychipCore

extension KernelCall {
    // MARK: Attention

    /// The attention program for head dims (hd, hdv) with the first of `candidates`
    /// whose work-group local memory fits the device.
    func attentionProgram(_ dtype: DType, hd: Int, hdv: Int, _ candidates: [AttentionTiles]) throws -> (OpenCLProgram, AttentionTiles) {
        guard let tiles = device.fittingAttentionTiles(hd: hd, hdv: hdv, candidates) else {
            throw unsupported("head dims D = \(hd), Dv = \(hdv) need more local memory than the device's \(device.limits.localMemBytes) bytes")
        }
        let p = try device.catalogProgram(.attention, dtype: dtype, [("HD", hd), ("HDV", hdv), ("ATT_CPU", t.attCPU ? 1 : 0)] + tiles.macros)
        return (p, tiles)
    }

    /// The row-private CPU attention program (`ATT_ROWS=1`) with the first of
    /// `t.rowsPrefill` that is valid for the chunk widths and fits local memory; nil when
    /// the tuning does not use it or none fits (the flash core is used then).
    func attentionRowsProgram(_ dtype: DType, hd: Int, hdv: Int) throws -> (OpenCLProgram, AttentionTiles)? {
        let (kc, dc) = (t.attKC, t.attDC)
        guard let tiles = device.fittingRowsTiles(hd: hd, hdv: hdv) else { return nil }
        let p = try device.catalogProgram(.attention, dtype: dtype,
                                          [("HD", hd), ("HDV", hdv), ("ATT_CPU", 1), ("ATT_ROWS", 1), ("BQ", tiles.bq), ("BK", tiles.bk),
                                           ("RQ", tiles.rq), ("TC", 1), ("KC", kc), ("DC", dc)])
        return (p, AttentionTiles(bq: tiles.bq, bk: tiles.bk, rq: tiles.rq, tc: 1))
    }

    /// Split-KV count: enough work-groups to fill the device (≥ 2× compute units), with
    /// at least one key block per split.
    func splits(groups: Int, keys: Int, bk: Int) -> Int {
        let target = 2 * max(device.info.computeUnits, 1)
        guard groups < target else { return 1 }
        return max(1, min(ceilDiv(target, groups), ceilDiv(keys, bk), 256))
    }

    func attention(_ ap: AttentionParams) throws {
        let q = self["q"], k = self["k"], v = self["v"], o = outs[0]
        let (b, hq, lq, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2], q.desc.shape[3])
        let (hkv, lk, dv) = (k.desc.shape[1], k.desc.shape[2], v.desc.shape[3])
        let scale = Float(ap.scale ?? 1 / Double(d).squareRoot())
        let g = hq / hkv
        // Prefill on CPU devices: the row-private kernel (same arguments as attention_fwd).
        let rowsProgram = g * lq > 8 ? try attentionRowsProgram(q.desc.dtype, hd: d, hdv: dv) : nil
        let (p, tiles) = try rowsProgram ?? attentionProgram(q.desc.dtype, hd: d, hdv: dv, g * lq <= 8 ? t.decode : t.prefill)
        let fwd = rowsProgram == nil ? "attention_fwd" : "attention_fwd_rows"
        let (threads, bq) = (tiles.threads, tiles.bq)
        let lse: [KernelArg] = ap.returnLSE ? outs[1].args : [.null, .u64(0)]
        let groups = ceilDiv(g * lq, bq) * b * hkv
        let nsplit = splits(groups: groups, keys: lk, bk: tiles.bk)
        let dims: [KernelArg] = [.int(b), .int(hq), .int(hkv), .int(lq), .int(lk), .f32(scale), .int(ap.causal ? 1 : 0)]
        let global = [ceilDiv(g * lq, bq) * threads, b * hkv]
        // Prefill on GPUs: the register-tiled kernel where the head dims allow.
        if rowsProgram == nil && t.attTiled && g * lq > 8 && d % 32 == 0 && (dv == 64 || dv == 128) {
            try sub.launch(p, "attention_fwd_tiled", q.args + k.args + v.args + o.args + lse + dims,
                           global: [ceilDiv(g * lq, 64) * 256, b * hkv], local: [256, 1])
            return
        }
        if nsplit == 1 {
            try sub.launch(p, fwd, q.args + k.args + v.args + o.args + lse + [.null, .u64(0), .null, .u64(0)] + dims + [.int(1), .int(lk)],
                           global: global + [1], local: [threads, 1, 1])
            return
        }
        let rows = b * hq * lq
        let splitLen = ceilDiv(ceilDiv(lk, nsplit), tiles.bk) * tiles.bk
        let n = ceilDiv(lk, splitLen)
        let op = try sub.scratch(rows * n * dv * 4), lp = try sub.scratch(rows * n * 4)
        try sub.launch(p, fwd, q.args + k.args + v.args + o.args + lse
                       + [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + dims + [.int(n), .int(splitLen)],
                       global: global + [n], local: [threads, 1, 1])
        try sub.launch(p, "attention_combine", [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + o.args + lse + [.int(rows), .int(n)],
                       global: [dv, rows], local: nil)
    }

    func sparseAttention(_ sp: SparseAttentionParams) throws {
        let q = self["q"], k = self["k"], v = self["v"], ix = self["indices"], o = outs[0]
        let (tt, h, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2])
        let (s, hkv, dv) = (k.desc.shape[0], k.desc.shape[1], v.desc.shape[2])
        let ksel = ix.desc.shape[1]
        let given = try readInts(ix)
        if let bad = given.first(where: { $0 < -1 || $0 >= s }) {
            throw invalid(.sparseAttention, "indices", "index \(bad) is outside 0..<\(s) (−1 marks padding)")
        }
        // A repeated index is attended once (docs/kernels.md): upload the deduplicated copy.
        var indexArgs = ix.args
        if let unique = given.map({ Int32($0) }).withUnsafeBufferPointer({
            SparseAttentionParams.firstOccurrences($0, rows: tt, k: ksel, keys: s)
        }) {
            let buf = try sub.scratch(unique.count * 4)
            try unique.withUnsafeBytes { try device.write($0, to: buf, at: 0) }
            indexArgs = [.buffer(buf), .u64(0)]
        }
        let scale = Float(sp.scale ?? 1 / Double(d).squareRoot())
        let (p, tiles) = try attentionProgram(q.desc.dtype, hd: d, hdv: dv, t.sparse)
        let (threads, bq) = (tiles.threads, tiles.bq)
        let lse: [KernelArg] = sp.returnLSE ? outs[1].args : [.null, .u64(0)]
        let g = h / hkv
        let groups = ceilDiv(g, bq) * tt * hkv
        let nsplit = splits(groups: groups, keys: ksel, bk: tiles.bk)
        let dims: [KernelArg] = [.int(tt), .int(h), .int(hkv), .int(s), .int(ksel), .f32(scale)]
        let global = [ceilDiv(g, bq) * threads, tt * hkv]
        let err: [KernelArg] = [.null, .u64(0)]
        if nsplit == 1 {
            try sub.launch(p, "sparse_attention_fwd", q.args + k.args + v.args + indexArgs + o.args + lse
                           + [.null, .u64(0), .null, .u64(0)] + err + dims + [.int(1), .int(ksel)],
                           global: global + [1], local: [threads, 1, 1])
            return
        }
        let rows = tt * h
        let splitLen = ceilDiv(ceilDiv(ksel, nsplit), tiles.bk) * tiles.bk
        let n = ceilDiv(ksel, splitLen)
        let op = try sub.scratch(rows * n * dv * 4), lp = try sub.scratch(rows * n * 4)
        try sub.launch(p, "sparse_attention_fwd", q.args + k.args + v.args + indexArgs + o.args + lse
                       + [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + err + dims + [.int(n), .int(splitLen)],
                       global: global + [n], local: [threads, 1, 1])
        try sub.launch(p, "attention_combine", [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + o.args + lse + [.int(rows), .int(n)],
                       global: [dv, rows], local: nil)
    }
}
