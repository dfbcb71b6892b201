extension RouterParams {
    /// Checks the routing parameters against the expert count.
    func validate(_ c: Check, experts e: Int) throws {
        try c.param("topK", topK >= 1 && topK <= e, "must be in 1…\(e) (experts), got \(topK)")
        try c.param("nGroup", nGroup >= 1 && e % nGroup == 0, "must be ≥ 1 and divide the \(e) experts, got \(nGroup)")
        try c.param("topkGroup", topkGroup >= 1 && topkGroup <= nGroup, "must be in 1…nGroup (\(nGroup)), got \(topkGroup)")
        try c.param("topK", topK <= topkGroup * (e / nGroup), "\(topK) experts cannot be chosen from \(topkGroup) groups of \(e / nGroup)")
        try c.param("routedScale", routedScale.isFinite, "must be finite, got \(routedScale)")
    }
}

/// Mixture of experts: `moe-router` (softmax or sigmoid scoring, group-limited top-k),
/// `moe-permute` / `moe-combine` (group token copies by expert and scatter them back) and the
/// composite `moe-layer` (router, SwiGLU experts in float or INT4, optional shared expert).
enum MoEKernels: KernelFamily {
    static let kinds: [OpKind] = [.moeRouter, .moePermute, .moeCombine, .moeLayer]

    static func inputNames(_ op: Op) -> [String] {
        switch op {
        case .moeRouter(let p): return p.hasBias ? ["logits", "bias"] : ["logits"]
        case .moePermute: return ["x", "ids"]
        case .moeCombine: return ["y", "sourceMap", "weights"]
        case .moeLayer(let p):
            var names = ["x", "routerWeight"]
            if p.router.hasBias { names.append("bias") }
            for w in ["gate", "up", "down"] {
                switch p.experts {
                case .float: names.append(w)
                case .int4(let f): names += Op.int4Names(prefix: w + ".", f)
                }
            }
            if p.hasShared { names += ["sharedGate", "sharedUp", "sharedDown"] }
            return names
        default: return []
        }
    }

    static func outputNames(_ op: Op) -> [String] {
        switch op {
        case .moeRouter: return ["weights", "ids"]
        case .moePermute: return ["rows", "offsets", "sourceMap"]
        case .moeCombine: return ["out"]
        default: return ["y"]
        }
    }

    static func validate(_ op: Op, _ c: Check) throws -> [TensorDesc] {
        switch op {
        case .moeRouter(let p):
            try c.float("logits")
            let l = try c.rank("logits", 2, "[T, E]")
            if p.hasBias { try c.dtype("bias", .f32); try c.equal("bias", [l[1]]) }
            try p.validate(c, experts: l[1])
            return [TensorDesc([l[0], p.topK], .f32), TensorDesc([l[0], p.topK], .i32)]
        case .moePermute(let e):
            try c.float("x")
            let x = try c.rank("x", 2, "[T, H]")
            try c.dtype("ids", .i32)
            let ids = try c.rank("ids", 2, "[T, k]")
            try c.dim("ids", "T", ids[0], equals: x[0], "tokens of 'x'")
            try c.param("numExperts", e >= 1, "must be ≥ 1, got \(e)")
            let (rows, overflow) = x[0].multipliedReportingOverflow(by: ids[1])
            if overflow { throw PolychipError.sizeOverflow(shape: [x[0], ids[1], x[1]], dtype: c["x"].dtype) }
            return [TensorDesc([rows, x[1]], c["x"].dtype), TensorDesc([e + 1], .i32), TensorDesc([rows], .i32)]
        case .moeCombine:
            try c.float("y")
            try c.dtype("weights", .f32)
            let w = try c.rank("weights", 2, "[T, k]")
            let y = try c.rank("y", 2, "[T·k, H]")
            try c.dim("y", "rows", y[0], equals: w[0] * w[1], "T·k of 'weights'")
            try c.dtype("sourceMap", .i32)
            try c.equal("sourceMap", [y[0]])
            return [TensorDesc([w[0], y[1]], c["y"].dtype)]
        case .moeLayer(let p):
            try c.float("x")
            let x = try c.rank("x", 2, "[T, H]")
            let h = x[1]
            try c.sameDType("routerWeight", as: "x")
            let rw = try c.rank("routerWeight", 2, "[E, H]")
            try c.dim("routerWeight", "H", rw[1], equals: h, "hidden size of 'x'")
            let e = rw[0]
            if p.router.hasBias { try c.dtype("bias", .f32); try c.equal("bias", [e]) }
            try p.router.validate(c, experts: e)
            switch p.experts {
            case .float:
                for w in ["gate", "up", "down"] { try c.sameDType(w, as: "x") }
                let g = try c.rank("gate", 3, "[E, F, H]")
                try c.equal("gate", [e, g[1], h])
                try c.equal("up", [e, g[1], h])
                try c.equal("down", [e, h, g[1]])
            case .int4(let f):
                let (f1, k1) = try c.int4(prefix: "gate.", f, lead: [e])
                try c.dim("gate.q", "K", k1, equals: h, "hidden size")
                let (f2, k2) = try c.int4(prefix: "up.", f, lead: [e])
                try c.dim("up.q", "N", f2, equals: f1, "intermediate size of 'gate'")
                try c.dim("up.q", "K", k2, equals: h, "hidden size")
                let (n3, k3) = try c.int4(prefix: "down.", f, lead: [e])
                try c.dim("down.q", "N", n3, equals: h, "hidden size")
                try c.dim("down.q", "K", k3, equals: f1, "intermediate size of 'gate'")
            }
            if p.hasShared {
                for w in ["sharedGate", "sharedUp", "sharedDown"] { try c.sameDType(w, as: "x") }
                let sg = try c.rank("sharedGate", 2, "[Fs, H]")
                try c.dim("sharedGate", "H", sg[1], equals: h, "hidden size")
                try c.equal("sharedUp", sg)
                try c.equal("sharedDown", [h, sg[0]])
            }
            return [c["x"]]
        default: return []
        }
    }

    static func cost(_ op: Op, _ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        switch op {
        case .moeRouter(let p):
            let l = i[0].shape
            return Cost(flops: dprod(l[0], l[1]) * 8, bytes: totalBytes(i) + dprod(l[0], p.topK, 8), unit: .vector, dtype: dt)
        case .moePermute:
            let x = i[0].shape, ids = i[1].shape
            let rows = dprod(x[0], ids[1])
            return Cost(flops: rows, bytes: totalBytes(i) + rows * Double(x[1] * dt.bitWidth / 8) + rows * 4, unit: .vector, dtype: dt)
        case .moeCombine:
            let y = i[0].shape, w = i[2].shape
            return Cost(flops: 2 * dprod(y[0], y[1]), bytes: totalBytes(i) + dprod(w[0], y[1]) * Double(dt.bitWidth / 8), unit: .vector, dtype: dt)
        case .moeLayer(let p):
            return moeLayerCost(p, i)
        default:
            return Cost(flops: 0, bytes: 0, unit: .vector, dtype: dt)
        }
    }

    /// Cost of the composite MoE layer under balanced routing: router GEMM, the three
    /// expert GEMMs over T·k routed rows, SwiGLU, and the shared expert.
    static func moeLayerCost(_ p: MoELayerParams, _ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let eb = Double(dt.bitWidth / 8)
        let t = i[0].shape[0], h = i[0].shape[1], e = i[1].shape[0]
        let names = Op.moeLayer(p).inputNames
        func desc(_ n: String) -> TensorDesc? { names.firstIndex(of: n).map { i[$0] } }
        let f: Int
        var expertBytes = 0.0
        switch p.experts {
        case .float:
            f = desc("gate")?.shape[1] ?? 0
            expertBytes = ["gate", "up", "down"].compactMap(desc).reduce(0) { $0 + Double($1.byteCount) }
        case .int4:
            f = desc("gate.q")?.shape[1] ?? 0
            expertBytes = names.filter { $0.contains(".") }.compactMap(desc).reduce(0) { $0 + Double($1.byteCount) }
        }
        let k = p.router.topK
        // Costs never trap: saturate t·k instead of overflowing.
        let rows = t.multipliedReportingOverflow(by: k).overflow ? Int.max : t * k
        let active = min(e, rows)
        let rowsPerExpert = max(1, rows / e + (rows % e == 0 ? 0 : 1))
        var flops = 2.0 * dprod(t, e, h)                      // router logits
        flops += 2.0 * Double(rows) * dprod(h, f) * 3         // gate, up, down
        flops += 6.0 * dprod(rows, f)                          // SwiGLU
        var gemms = [GemmShape(m: t, n: e, k: h), GemmShape(m: rowsPerExpert, n: 2 * f, k: h, batch: active),
                     GemmShape(m: rowsPerExpert, n: h, k: f, batch: active)]
        var bytes = Double(i[0].byteCount) + Double(i[1].byteCount) + expertBytes * Double(active) / Double(e)
        bytes += dprod(t, h) * eb  // output
        if p.hasShared, let sg = desc("sharedGate") {
            let fs = sg.shape[0]
            flops += 2.0 * dprod(t, h, fs) * 3 + 6.0 * dprod(t, fs)
            gemms += [GemmShape(m: t, n: 2 * fs, k: h), GemmShape(m: t, n: h, k: fs)]
            bytes += ["sharedGate", "sharedUp", "sharedDown"].compactMap(desc).reduce(0) { $0 + Double($1.byteCount) }
        }
        return Cost(flops: flops, bytes: bytes, unit: .matrix, gemms: gemms, dtype: dt)
    }

    static func tolerance(_ kind: OpKind) -> ToleranceTable { kind == .moeLayer ? .composite : .elementwise }

    static func timeClass(_ kind: OpKind) -> KernelClass {
        switch kind {
        case .moeRouter: return .routing
        case .moeLayer: return .gemm
        default: return .elementwise
        }
    }

    static let routerParameters = [
        KernelParameter("scoring", .choice(RouterScoring.allCases.map(\.rawValue)), default: "softmax", "scoring function"),
        KernelParameter("top-k", .integer, default: "1", "experts per token"),
        KernelParameter("n-group", .integer, default: "1", "expert groups"),
        KernelParameter("topk-group", .integer, default: "1", "groups kept per token"),
        KernelParameter("renormalize", .flag(inverted: true), default: "on", "divide the chosen weights by their sum"),
        KernelParameter("routed-scale", .real, default: "1", "routed scaling factor"),
    ]

    static func parameters(_ kind: OpKind) -> [KernelParameter] {
        switch kind {
        case .moeRouter: return routerParameters
        case .moeLayer: return routerParameters + [KernelParameter("group-size", .integer, default: "32", "INT4 expert group size (INT4 experts when 'gate.q' is given)")]
        case .moePermute: return [KernelParameter("num-experts", .integer, "number of experts (required)")]
        default: return []
        }
    }

    static func router(_ a: KernelArguments) throws -> RouterParams {
        // Ranges are the catalog's validation's job (one rule, one place).
        RouterParams(scoring: try a.choice("scoring", RouterScoring.softmax), topK: try a.integer("top-k", 1),
                            nGroup: try a.integer("n-group", 1), topkGroup: try a.integer("topk-group", 1),
                            renormalize: a.flag("renormalize", true), routedScale: try a.real("routed-scale", 1), hasBias: a.has("bias"))
    }

    static func op(_ kind: OpKind, _ a: KernelArguments) throws -> Op {
        switch kind {
        case .moeRouter: return .moeRouter(try router(a))
        case .moePermute:
            guard let e = try a.integer("num-experts") else {
                throw PolychipError.invalidArgument(kernel: kind.name, argument: "num-experts", reason: "is required")
            }
            return .moePermute(numExperts: e)
        case .moeCombine: return .moeCombine
        default:
            let f = Int4Format(groupSize: try a.integer("group-size", 32), symmetric: !a.has("gate.zeros"))
            return .moeLayer(MoELayerParams(router: try router(a), experts: a.has("gate.q") ? .int4(f) : .float, hasShared: a.has("sharedGate")))
        }
    }

    static func dimensions(_ kind: OpKind) -> [String] {
        switch kind {
        case .moeRouter: return ["T", "E"]
        case .moePermute: return ["T", "H", "k", "E"]
        case .moeCombine: return ["T", "H", "k"]
        default: return ["T", "H", "F", "E"]
        }
    }

    static func inputShapes(_ op: Op, _ d: [String: Int], _ dtype: DType) -> [TensorDesc] {
        func t(_ shape: [Int], _ dt: DType? = nil) -> TensorDesc { TensorDesc(shape, dt ?? dtype) }
        let (tt, e, h, k) = (dim(d, "T"), dim(d, "E"), dim(d, "H"), dim(d, "k"))
        switch op {
        case .moeRouter(let p): return [t([tt, e])] + (p.hasBias ? [t([e], .f32)] : [])
        case .moePermute: return [t([tt, h]), t([tt, k], .i32)]
        case .moeCombine: return [t([tt * k, h]), t([tt * k], .i32), t([tt, k], .f32)]
        case .moeLayer(let p):
            let ff = dim(d, "F")
            var out = [t([tt, h]), t([e, h])] + (p.router.hasBias ? [t([e], .f32)] : [])
            for (n, kk) in [(ff, h), (ff, h), (h, ff)] {
                switch p.experts {
                case .float: out.append(t([e, n, kk]))
                case .int4(let f): out += Op.int4Shapes([e], n, kk, f)
                }
            }
            return out + (p.hasShared ? [t([ff, h]), t([ff, h]), t([h, ff])] : [])
        default: return []
        }
    }

    static func quickCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .moeRouter:
            let configs: [(Int, Int, RouterParams)] = [
                (1, 1, RouterParams(scoring: .softmax, topK: 1, renormalize: false)),
                (9, 16, RouterParams(scoring: .softmax, topK: 4, renormalize: true)),
                (7, 64, RouterParams(scoring: .sigmoid, topK: 8, nGroup: 8, topkGroup: 4, renormalize: true, routedScale: 2.5, hasBias: true)),
                (5, 12, RouterParams(scoring: .sigmoid, topK: 3, nGroup: 4, topkGroup: 2, renormalize: false, routedScale: 1.5, hasBias: true)),
            ]
            return configs.map { CaseSpec(.moeRouter($0.2), ["T": $0.0, "E": $0.1]) }
        case .moePermute:
            return [(1, 1, 1, 1), (9, 7, 2, 4), (33, 16, 8, 64)].map {
                CaseSpec(.moePermute(numExperts: $0.3), ["T": $0.0, "H": $0.1, "k": $0.2, "E": $0.3])
            }
        case .moeCombine:
            return [(1, 1, 1), (9, 7, 2), (20, 33, 8)].map { CaseSpec(.moeCombine, ["T": $0.0, "H": $0.1, "k": $0.2]) }
        default:
            let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2.5, hasBias: true)
            let configs: [(Int, Int, Int, Int, ExpertFormat, Bool, RouterParams)] = [
                (1, 8, 4, 1, .float, false, RouterParams(scoring: .softmax, topK: 1)),
                (11, 16, 8, 4, .float, true, router),
                (6, 32, 16, 4, .int4(Int4Format(groupSize: 16, symmetric: true)), true, router),
                (5, 32, 8, 4, .int4(Int4Format(groupSize: 8, symmetric: false)), false, RouterParams(scoring: .softmax, topK: 2)),
            ]
            return configs.map { (t, h, ff, e, fmt, shared, rp) in
                CaseSpec(.moeLayer(MoELayerParams(router: rp, experts: fmt, hasShared: shared)), ["T": t, "H": h, "F": ff, "E": e])
            }
        }
    }

    static func baseCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .moeRouter:
            return [CaseSpec(.moeRouter(RouterParams(scoring: .sigmoid, topK: 4, nGroup: 4, topkGroup: 2, renormalize: true,
                                                     routedScale: 2.5, hasBias: true)), ["T": 5, "E": 16]),
                    CaseSpec(.moeRouter(RouterParams(scoring: .softmax, topK: 2)), ["T": 5, "E": 16])]
        case .moePermute: return [CaseSpec(.moePermute(numExperts: 4), ["T": 5, "H": 7, "k": 2, "E": 4])]
        case .moeCombine: return [CaseSpec(.moeCombine, ["T": 5, "H": 7, "k": 2])]
        default:
            let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2.5, hasBias: true)
            return [CaseSpec(.moeLayer(MoELayerParams(router: router, experts: .int4(Int4Format(groupSize: 16, symmetric: false)), hasShared: true)),
                             ["T": 5, "H": 32, "F": 16, "E": 4]),
                    CaseSpec(.moeLayer(MoELayerParams(router: router, experts: .float, hasShared: true)), ["T": 5, "H": 16, "F": 8, "E": 4])]
        }
    }

    static func blockedDimensions(_ kind: OpKind) -> [String] {
        switch kind {
        case .moeRouter: return ["T", "E"]
        case .moeLayer: return ["T"]
        default: return ["T", "H"]
        }
    }

    static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int {
        switch op {
        case .moeRouter, .moeLayer: return axis(inputs, 0, -1)
        case .moeCombine: return axis(inputs, 2, -1)
        default: return 1
        }
    }

    static func benchmarkDims(_ kind: OpKind) -> [String: Int] {
        switch kind {
        case .moeRouter: return ["T": 4096, "E": 256, "k": 8, "groups": 8, "keep": 4]
        case .moePermute: return ["T": 4096, "H": 2048, "k": 8, "E": 64]
        case .moeCombine: return ["T": 4096, "H": 2048, "k": 8]
        default: return ["T": 512, "H": 2048, "F": 1024, "E": 64, "k": 8, "G": 32]
        }
    }

    static func benchmarkOp(_ kind: OpKind, _ d: [String: Int]) throws -> Op {
        switch kind {
        case .moeRouter:
            return .moeRouter(RouterParams(scoring: .sigmoid, topK: try required(d, "k", kind), nGroup: d["groups"] ?? 1,
                                           topkGroup: d["keep"] ?? 1, renormalize: true, routedScale: 2.5, hasBias: true))
        case .moePermute: return .moePermute(numExperts: try required(d, "E", kind))
        case .moeCombine: return .moeCombine
        default:
            let router = RouterParams(scoring: .sigmoid, topK: try required(d, "k", kind), renormalize: true, routedScale: 2.5)
            return .moeLayer(MoELayerParams(router: router, experts: .int4(Int4Format(groupSize: try required(d, "G", kind))), hasShared: true))
        }
    }

    static func labelWords(_ op: Op) -> [String] {
        switch op {
        case .moeRouter(let p): return routerWords(p)
        case .moeLayer(let p):
            var w = routerWords(p.router)
            if p.hasShared { w.append("shared") }
            if case .int4(let f) = p.experts { w.append("int4 \(f)") }
            return w
        default: return []
        }
    }

    static func routerWords(_ p: RouterParams) -> [String] {
        ["k\(p.topK)", p.scoring.rawValue, "g\(p.nGroup)/\(p.topkGroup)"] + (p.hasBias ? ["bias"] : [])
    }
}
