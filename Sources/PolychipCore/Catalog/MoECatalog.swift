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

extension Op {
    func validateMoE(_ c: Check) throws -> [TensorDesc] {
        switch self {
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

    func moeCost(_ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        switch self {
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
            return Op.moeLayerCost(p, i)
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
}
