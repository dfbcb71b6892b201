// OpenCLSupport.swift — what a call needs from the device's local memory, decided from its
// descriptors: the support query refuses a call the kernels cannot take before anything is
// launched, and the launches pick their tiles with the same functions.

import PolychipCore

extension OpenCLDevice {
    /// The first attention tiling of `candidates` whose work-group local memory fits.
    func fittingAttentionTiles(hd: Int, hdv: Int, _ candidates: [AttentionTiles]) -> AttentionTiles? {
        candidates.first { $0.localBytes(hd: hd, hdv: hdv) <= limits.localMemBytes }
    }

    /// The first row-private CPU prefill tiling valid for the chunk widths that fits, or nil
    /// when the tuning does not use that kernel or none fits.
    func fittingRowsTiles(hd: Int, hdv: Int) -> AttentionTiles? {
        let t = tuning
        guard t.attRows else { return nil }
        return t.rowsPrefill.first {
            $0.rq >= 1 && $0.bq % $0.rq == 0 && $0.bk % (8 * t.attKC) == 0
                && $0.rowsLocalBytes(hd: hd, hdv: hdv, dc: t.attDC) <= limits.localMemBytes
        }
    }

    /// The indexer's token tile for head dim `d`: the tuned tile halved until it fits, nil
    /// when even the register tile does not.
    func indexerTokenTile(d: Int) -> Int? {
        let t = tuning
        var it = t.it
        while 4 * (t.iS * (d + 1) + it * d + it) > limits.localMemBytes {
            guard it > t.rt else { return nil }
            it /= 2
        }
        return it
    }

    /// The top-k sort capacity for `k`: the tuned SORT_MAX doubled until it holds k, nil when
    /// that no longer fits local memory.
    func topKSortCapacity(k: Int) -> Int? {
        let t = tuning
        var sortMax = t.sortMax
        while k > sortMax {
            sortMax *= 2
            guard 8 * sortMax + 4 * (256 + t.topkWG + 8) <= limits.localMemBytes else { return nil }
        }
        return sortMax
    }

    /// Why the call's tiles cannot fit local memory, or nil when they can.
    func localMemoryRefusal(_ call: ValidatedCall) -> String? {
        let ins = call.inputs, t = tuning
        switch call.op {
        case .attention:
            let (hq, lq, d) = (ins[0].shape[1], ins[0].shape[2], ins[0].shape[3])
            let (hkv, dv) = (ins[1].shape[1], ins[2].shape[3])
            let g = hq / hkv
            if g * lq > 8, fittingRowsTiles(hd: d, hdv: dv) != nil { return nil }
            guard fittingAttentionTiles(hd: d, hdv: dv, g * lq <= 8 ? t.decode : t.prefill) != nil else {
                return "head dims D = \(d), Dv = \(dv) need more local memory than the device's \(limits.localMemBytes) bytes"
            }
        case .sparseAttention:
            let (d, dv) = (ins[0].shape[2], ins[2].shape[2])
            guard fittingAttentionTiles(hd: d, hdv: dv, t.sparse) != nil else {
                return "head dims D = \(d), Dv = \(dv) need more local memory than the device's \(limits.localMemBytes) bytes"
            }
        case .lightningIndexer:
            let d = ins[0].shape[2]
            guard indexerTokenTile(d: d) != nil else { return "head dim D = \(d) needs more local memory than the device has" }
        case .topK(let k):
            guard topKSortCapacity(k: k) != nil else { return "k = \(k) exceeds the local-memory sort capacity" }
        default: break
        }
        return nil
    }
}
