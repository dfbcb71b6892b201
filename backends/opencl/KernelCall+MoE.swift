// KernelCall+MoE.swift — OpenCL launches of router, permute, combine (one KernelCall extension per kernel family).

import Foundation
import PolychipCore

extension KernelCall {
    // MARK: MoE

    /// Extra macros for a MoE program handling `experts` experts.
    func moeMacros(_ experts: Int) -> [(String, Int)] {
        var emax = 512
        while emax < experts { emax *= 2 }
        return [("EMAX", emax)]
    }

    func moeRouter(_ rp: RouterParams) throws {
        let l = self["logits"]
        let (tt, e) = (l.desc.shape[0], l.desc.shape[1])
        let p = try device.catalogProgram(.moe, dtype: l.desc.dtype, moeMacros(e))
        let bias: [KernelArg] = rp.hasBias ? self["bias"].args : [.null, .u64(0)]
        try sub.launch(p, "moe_router", l.args + bias + outs[0].args + outs[1].args + routerArgs(rp, tokens: tt, experts: e),
                       global: [tt * t.rowWG], local: [t.rowWG])
    }

    func routerArgs(_ rp: RouterParams, tokens: Int, experts: Int) -> [KernelArg] {
        [.int(tokens), .int(experts), .int(rp.topK), .int(rp.scoring == .softmax ? 0 : 1), .int(rp.nGroup),
         .int(rp.topkGroup), .int(rp.renormalize ? 1 : 0), .f32(Float(rp.routedScale))]
    }

    /// Counts, prefix sums and stable placement of the (token, slot) pairs by expert, on
    /// device: writes `offsets [E+1]`, `sourceMap [P]` and (when given) its inverse.
    func permute(ids: Operand, tokens: Int, k: Int, experts: Int, dtype: DType,
                 offsets: [KernelArg], sourceMap: [KernelArg], inverse: [KernelArg]) throws {
        let p = try device.catalogProgram(.moe, dtype: dtype, moeMacros(experts))
        let pairs = tokens * k
        let nblk = ceilDiv(pairs, t.permuteBlock)
        let bc = try sub.scratch(nblk * experts * 4)
        try sub.launch(p, "moe_perm_hist", ids.args + [.buffer(bc), .int(pairs), .int(experts), .null, .u64(0)],
                       global: [nblk * t.permuteBlock], local: [t.permuteBlock])
        try sub.launch(p, "moe_perm_scan", [.buffer(bc)] + offsets + [.int(nblk), .int(experts)],
                       global: [t.rowWG], local: [t.rowWG])
        try sub.launch(p, "moe_perm_scatter", ids.args + [.buffer(bc)] + offsets + sourceMap + inverse + [.int(pairs), .int(experts)],
                       global: [nblk * t.permuteBlock], local: [t.permuteBlock])
    }

    func gatherRows(_ x: Operand, sourceMap: [KernelArg], rows: [KernelArg], pairs: Int, k: Int, h: Int) throws {
        let p = try device.catalogProgram(.moe, dtype: x.desc.dtype)
        try sub.launch(p, "moe_gather_rows", x.args + sourceMap + rows + [.int(pairs), .int(k), .int(h)],
                       global: [h, pairs], local: nil)
    }

    func moePermute(_ e: Int) throws {
        let x = self["x"], ids = self["ids"]
        let (tt, h) = (x.desc.shape[0], x.desc.shape[1])
        let k = ids.desc.shape[1]
        if let bad = try readInts(ids).first(where: { $0 < 0 || $0 >= e }) {
            throw invalid(.moePermute, "ids", "expert id \(bad) is outside 0..<\(e)")
        }
        try permute(ids: ids, tokens: tt, k: k, experts: e, dtype: x.desc.dtype,
                    offsets: outs[1].args, sourceMap: outs[2].args, inverse: [.null, .u64(0)])
        try gatherRows(x, sourceMap: outs[2].args, rows: outs[0].args, pairs: tt * k, k: k, h: h)
    }

    func moeCombine() throws {
        let y = self["y"], map = self["sourceMap"], w = self["weights"], out = outs[0]
        let (tt, k) = (w.desc.shape[0], w.desc.shape[1])
        let h = y.desc.shape[1], pairs = tt * k
        let sourceMap = try readInts(map)
        var seen = [Bool](repeating: false, count: pairs)
        for (row, flat) in sourceMap.enumerated() {
            guard flat >= 0, flat < pairs, !seen[flat] else {
                throw invalid(.moeCombine, "sourceMap", "must be a permutation of 0..<\(pairs); entry \(row) is \(flat)")
            }
            seen[flat] = true
        }
        let p = try device.catalogProgram(.moe, dtype: y.desc.dtype)
        let inv = try sub.scratch(pairs * 4)
        try sub.launch(p, "moe_invert_map", map.args + [.buffer(inv), .u64(0), .int(pairs)], global: [pairs], local: nil)
        try sub.launch(p, "moe_combine", y.args + [.buffer(inv), .u64(0)] + w.args + [.null, .u64(0)] + out.args
                       + [.int(tt), .int(k), .int(h)], global: [h, tt], local: nil)
    }
}
