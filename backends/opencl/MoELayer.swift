import PolychipCore

extension KernelCall {
    /// A device temporary of `shape` and `dtype`, kept alive until the call completes.
    func temp(_ shape: [Int], _ dtype: DType) throws -> Operand {
        let desc = TensorDesc(shape, dtype)
        return Operand(buffer: try sub.scratch(try desc.checkedByteCount()), offset: 0, desc: desc)
    }

    /// The composite MoE layer, entirely on device (no host round-trip of activations,
    /// routing or counts): router GEMM in f32 → router → permute (device prefix sums) →
    /// gate/up grouped GEMM → SwiGLU → down grouped GEMM → combine (+ shared expert).
    func moeLayer(_ p: MoELayerParams) throws {
        let x = self["x"], rw = self["routerWeight"], y = outs[0]
        let dt = x.desc.dtype
        let (tt, h) = (x.desc.shape[0], x.desc.shape[1])
        let e = rw.desc.shape[0]
        let k = p.router.topK
        let pairs = tt * k

        // Route.
        let logits = try temp([tt, e], .f32)
        try gemm(x, rw, logits, m: tt, n: e, k: h, transposed: true, f32Out: true)
        let weights = try temp([tt, k], .f32), ids = try temp([tt, k], .i32)
        let moe = try device.catalogProgram(.moe, dtype: dt, moeMacros(e))
        let bias: [KernelArg] = p.router.hasBias ? self["bias"].args : [.null, .u64(0)]
        try sub.launch(moe, "moe_router_f32", logits.args + bias + weights.args + ids.args + routerArgs(p.router, tokens: tt, experts: e),
                       global: [tt * t.rowWG], local: [t.rowWG])

        // Permute.
        let offsets = try temp([e + 1], .i32), smap = try temp([pairs], .i32), inv = try temp([pairs], .i32)
        try permute(ids: ids, tokens: tt, k: k, experts: e, dtype: dt, offsets: offsets.args, sourceMap: smap.args, inverse: inv.args)
        let rows = try temp([pairs, h], dt)
        try gatherRows(x, sourceMap: smap.args, rows: rows.args, pairs: pairs, k: k, h: h)

        // Experts.
        let f: Int
        let gate: Operand, up: Operand, down: Operand
        switch p.experts {
        case .float:
            f = self["gate"].desc.shape[1]
            gate = try temp([pairs, f], dt); up = try temp([pairs, f], dt); down = try temp([pairs, h], dt)
            try groupedGemm(rows, self["gate"], offsets, gate, rows: pairs, n: f, k: h, experts: e, transposed: true)
            try groupedGemm(rows, self["up"], offsets, up, rows: pairs, n: f, k: h, experts: e, transposed: true)
            try swiglu(gate, up, gate, n: pairs * f)
            try groupedGemm(gate, self["down"], offsets, down, rows: pairs, n: h, k: f, experts: e, transposed: true)
        case .int4(let fmt):
            f = self["gate.q"].desc.shape[1]
            gate = try temp([pairs, f], dt); up = try temp([pairs, f], dt); down = try temp([pairs, h], dt)
            // GEMV kernels (GV_MAXM rows of an expert at a time) when experts average ≤ 8 rows;
            // on CPU devices GV_MAXM follows the average (segments longer than it re-read W)
            let gemvRows: Int? = ceilDiv(pairs, e) <= 8 ? ceilDiv(pairs, e) : nil
            for (name, out, n, kk, src) in [("gate", gate, f, h, rows), ("up", up, f, h, rows)] {
                try int4GroupedGemm(src, self[name + ".q"], self[name + ".scales"], zerosArgs(fmt, prefix: name + "."), offsets.args,
                                    out, rows: pairs, n: n, k: kk, experts: e, f: fmt, gemvRows: gemvRows)
            }
            try swiglu(gate, up, gate, n: pairs * f)
            try int4GroupedGemm(gate, self["down.q"], self["down.scales"], zerosArgs(fmt, prefix: "down."), offsets.args,
                                down, rows: pairs, n: h, k: f, experts: e, f: fmt, gemvRows: gemvRows)
        }

        // Shared expert, added inside the combine.
        var shared: [KernelArg] = [.null, .u64(0)]
        if p.hasShared {
            let fs = self["sharedGate"].desc.shape[0]
            let sg = try temp([tt, fs], dt), su = try temp([tt, fs], dt), sd = try temp([tt, h], dt)
            try gemm(x, self["sharedGate"], sg, m: tt, n: fs, k: h, transposed: true)
            try gemm(x, self["sharedUp"], su, m: tt, n: fs, k: h, transposed: true)
            try swiglu(sg, su, sg, n: tt * fs)
            try gemm(sg, self["sharedDown"], sd, m: tt, n: h, k: fs, transposed: true)
            shared = sd.args
        }
        try sub.launch(moe, "moe_combine", down.args + inv.args + weights.args + shared + y.args + [.int(tt), .int(k), .int(h)],
                       global: [h, tt], local: nil)
    }
}
