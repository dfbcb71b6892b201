// KernelCall+DSA.swift — OpenCL launches of the lightning indexer and top-k (one KernelCall extension per kernel family).

import Foundation
import PolychipCore

extension KernelCall {
    // MARK: DSA

    func lightningIndexer() throws {
        let q = self["q"], k = self["k"], w = self["w"], sc = outs[0]
        let (tt, hi, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2])
        let s = k.desc.shape[0]
        guard let it = device.indexerTokenTile(d: d) else { throw unsupported("head dim D = \(d) needs more local memory than the device has") }
        let p = try device.catalogProgram(.dsa, dtype: q.desc.dtype, [("HD", d), ("IT", it)])
        let local = [t.iS / t.rs, it / t.rt]
        try sub.launch(p, "lightning_indexer", q.args + k.args + w.args + sc.args + [.int(tt), .int(hi), .int(s)],
                       global: [ceilDiv(s, t.iS) * local[0], ceilDiv(tt, it) * local[1]], local: local)
    }

    func topK(_ k: Int) throws {
        let sc = self["scores"]
        let (tt, s) = (sc.desc.shape[0], sc.desc.shape[1])
        guard let sortMax = device.topKSortCapacity(k: k) else { throw unsupported("k = \(k) exceeds the local-memory sort capacity") }
        let p = try device.catalogProgram(.dsa, dtype: .f32, [("SORT_MAX", sortMax)])
        try sub.launch(p, "topk", sc.args + outs[0].args + outs[1].args + [.int(tt), .int(s), .int(k)],
                       global: [tt * t.topkWG], local: [t.topkWG])
    }
}
