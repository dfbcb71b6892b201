extension Op {
    /// Number of (query, key) pairs visible under the bottom-right causal rule:
    /// query `i` sees key `j` iff `j ≤ i + lk − lq` (as a Double: it can exceed `Int`).
    public static func visiblePairs(lq: Int, lk: Int, causal: Bool) -> Double {
        guard causal else { return dprod(lq, lk) }
        let (q, k) = (Double(lq), Double(lk))
        // Closed form, no loop over lq. lq ≤ lk: row i sees lk − lq + 1 + i keys (an arithmetic
        // series); lq > lk: the first lq − lk rows see none and the last lk rows see 1…lk.
        if lq <= lk { return q * ((k - q + 1) + k) / 2 }
        return k * (k + 1) / 2
    }
}

/// Attention and DeepSeek Sparse Attention: dense `attention` (GQA, bottom-right causal,
/// optional LSE), the DSA `lightning-indexer`, row `top-k` (lower index wins ties) and
/// `sparse-attention` over the selected keys.
enum AttentionKernels: KernelFamily {
    static let kinds: [OpKind] = [.attention, .lightningIndexer, .topK, .sparseAttention]

    static func inputNames(_ op: Op) -> [String] {
        switch op {
        case .attention: return ["q", "k", "v"]
        case .lightningIndexer: return ["q", "k", "w"]
        case .topK: return ["scores"]
        default: return ["q", "k", "v", "indices"]
        }
    }

    static func outputNames(_ op: Op) -> [String] {
        switch op {
        case .attention(let p): return p.returnLSE ? ["o", "lse"] : ["o"]
        case .sparseAttention(let p): return p.returnLSE ? ["o", "lse"] : ["o"]
        case .lightningIndexer: return ["scores"]
        default: return ["indices", "values"]
        }
    }

    static func validate(_ op: Op, _ c: Check) throws -> [TensorDesc] {
        switch op {
        case .attention(let p):
            try c.float("q"); try c.sameDType("k", as: "q"); try c.sameDType("v", as: "q")
            let q = try c.rank("q", 4, "[B, Hq, Lq, D]")
            let k = try c.rank("k", 4, "[B, Hkv, Lk, D]")
            let v = try c.rank("v", 4, "[B, Hkv, Lk, Dv]")
            try c.dim("k", "B", k[0], equals: q[0], "batch of 'q'")
            try c.dim("k", "D", k[3], equals: q[3], "head dim of 'q'")
            try c.equal("v", [k[0], k[1], k[2], v[3]])
            guard q[1] % k[1] == 0 else {
                throw PolychipError.shapeMismatch(kernel: c.kernel, argument: "k", expected: "Hkv dividing Hq = \(q[1])", got: shapeString(k))
            }
            if let s = p.scale { try c.param("scale", s.isFinite && s > 0, "must be finite and > 0, got \(s)") }
            var outs = [TensorDesc([q[0], q[1], q[2], v[3]], c["q"].dtype)]
            if p.returnLSE { outs.append(TensorDesc([q[0], q[1], q[2]], .f32)) }
            return outs
        case .lightningIndexer:
            try c.float("q"); try c.sameDType("k", as: "q"); try c.sameDType("w", as: "q")
            let q = try c.rank("q", 3, "[T, Hi, D]")
            let k = try c.rank("k", 2, "[S, D]")
            try c.dim("k", "D", k[1], equals: q[2], "head dim of 'q'")
            try c.equal("w", [q[0], q[1]])
            try c.param("k", k[0] >= q[0], "S = \(k[0]) keys must be ≥ T = \(q[0]) queries (bottom-right causal)")
            return [TensorDesc([q[0], k[0]], .f32)]
        case .topK(let k):
            try c.dtype("scores", .f32)
            let s = try c.rank("scores", 2, "[T, S]")
            try c.param("k", k >= 1, "must be ≥ 1, got \(k)")
            _ = s
            return [TensorDesc([s[0], k], .i32), TensorDesc([s[0], k], .f32)]
        case .sparseAttention(let p):
            try c.float("q"); try c.sameDType("k", as: "q"); try c.sameDType("v", as: "q")
            let q = try c.rank("q", 3, "[T, H, D]")
            let k = try c.rank("k", 3, "[S, Hkv, D]")
            let v = try c.rank("v", 3, "[S, Hkv, Dv]")
            try c.dim("k", "D", k[2], equals: q[2], "head dim of 'q'")
            try c.equal("v", [k[0], k[1], v[2]])
            guard q[1] % k[1] == 0 else {
                throw PolychipError.shapeMismatch(kernel: c.kernel, argument: "k", expected: "Hkv dividing H = \(q[1])", got: shapeString(k))
            }
            try c.dtype("indices", .i32)
            let ix = try c.rank("indices", 2, "[T, topK]")
            try c.dim("indices", "T", ix[0], equals: q[0], "tokens of 'q'")
            if let s = p.scale { try c.param("scale", s.isFinite && s > 0, "must be finite and > 0, got \(s)") }
            var outs = [TensorDesc([q[0], q[1], v[2]], c["q"].dtype)]
            if p.returnLSE { outs.append(TensorDesc([q[0], q[1]], .f32)) }
            return outs
        default: return []
        }
    }

    static func cost(_ op: Op, _ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let eb = Double(dt.bitWidth / 8)
        switch op {
        case .attention(let p):
            let q = i[0].shape, k = i[1].shape, v = i[2].shape
            let (b, hq, lq, d, lk, dv) = (q[0], q[1], q[2], q[3], k[2], v[3])
            let pairs = Op.visiblePairs(lq: lq, lk: lk, causal: p.causal)
            let flops = dprod(b, hq) * pairs * (2 * Double(d) + 2 * Double(dv))
            let outBytes = dprod(b, hq, lq, dv) * eb + (p.returnLSE ? dprod(b, hq, lq, 4) : 0)
            // Two GEMMs per head: S = Q·Kᵀ (lq×lk×d) and O = P·V (lq×dv×lk).
            let gemms = [GemmShape(m: lq, n: lk, k: d, batch: b * hq), GemmShape(m: lq, n: dv, k: lk, batch: b * hq)]
            return Cost(flops: flops, bytes: totalBytes(i) + outBytes, unit: .matrix, gemms: gemms, dtype: dt)
        case .lightningIndexer:
            let q = i[0].shape, k = i[1].shape
            let (t, hi, d, s) = (q[0], q[1], q[2], k[0])
            let pairs = Op.visiblePairs(lq: t, lk: s, causal: true)
            let flops = pairs * Double(hi) * (2 * Double(d) + 2)  // dot, ReLU, weight FMA
            return Cost(flops: flops, bytes: totalBytes(i) + dprod(t, s, 4), unit: .matrix,
                        gemms: [GemmShape(m: t * hi, n: s, k: d)], dtype: dt)
        case .topK(let k):
            let s = i[0].shape
            return Cost(flops: dprod(s[0], s[1]) * 2, bytes: totalBytes(i) + dprod(s[0], k, 8), unit: .vector, dtype: .f32)
        case .sparseAttention:
            let q = i[0].shape, v = i[2].shape, ix = i[3].shape
            let (t, h, d, dv, kk) = (q[0], q[1], q[2], v[2], ix[1])
            let flops = dprod(t, h, kk) * (2 * Double(d) + 2 * Double(dv))
            // Each token gathers its selected key/value rows once for all heads sharing them.
            let hkv = i[1].shape[1]
            let gathered = dprod(t, kk, hkv) * (Double(d) + Double(dv)) * eb
            let bytes = Double(i[0].byteCount) + Double(i[3].byteCount) + gathered + dprod(t, h, dv) * eb
            return Cost(flops: flops, bytes: bytes, unit: .matrix,
                        gemms: [GemmShape(m: h / hkv, n: kk, k: d, batch: t * hkv), GemmShape(m: h / hkv, n: dv, k: kk, batch: t * hkv)],
                        dtype: dt)
        default:
            return Cost(flops: 0, bytes: 0, unit: .vector, dtype: dt)
        }
    }

    static func tolerance(_ kind: OpKind) -> ToleranceTable { kind == .topK ? .elementwise : .reduction }

    static func timeClass(_ kind: OpKind) -> KernelClass {
        switch kind {
        case .attention: return .attention
        case .lightningIndexer: return .gemm
        case .topK: return .selection
        default: return .sparseAttention
        }
    }

    static func parameters(_ kind: OpKind) -> [KernelParameter] {
        let scale = KernelParameter("scale", .real, default: "1/sqrt(D)", "logit scale")
        let lse = KernelParameter("lse", .flag(inverted: false), "also output the log-sum-exp per query row")
        switch kind {
        case .attention: return [KernelParameter("causal", .flag(inverted: false), "bottom-right causal mask"), scale, lse]
        case .sparseAttention: return [scale, lse]
        case .topK: return [KernelParameter("k", .integer, default: "1", "values kept per row")]
        default: return []
        }
    }

    static func op(_ kind: OpKind, _ a: KernelArguments) throws -> Op {
        switch kind {
        case .attention: return .attention(AttentionParams(causal: a.flag("causal"), scale: try a.real("scale"), returnLSE: a.flag("lse")))
        case .lightningIndexer: return .lightningIndexer
        case .topK: return .topK(k: try a.integer("k", 1))
        default: return .sparseAttention(SparseAttentionParams(scale: try a.real("scale"), returnLSE: a.flag("lse")))
        }
    }

    static func dimensions(_ kind: OpKind) -> [String] {
        switch kind {
        case .attention: return ["B", "Hq", "Hkv", "Lq", "Lk", "D", "Dv"]
        case .lightningIndexer: return ["T", "Hi", "D", "S"]
        case .topK: return ["T", "S", "k"]
        default: return ["T", "H", "Hkv", "S", "D", "Dv", "k"]
        }
    }

    static func inputShapes(_ op: Op, _ d: [String: Int], _ dtype: DType) -> [TensorDesc] {
        func t(_ shape: [Int], _ dt: DType? = nil) -> TensorDesc { TensorDesc(shape, dt ?? dtype) }
        let dk = dim(d, "D"), dv = d["Dv"] ?? dk  // value head dim defaults to the key's
        switch op {
        case .attention:
            let (b, hkv, lk) = (dim(d, "B"), dim(d, "Hkv"), dim(d, "Lk"))
            return [t([b, dim(d, "Hq"), dim(d, "Lq"), dk]), t([b, hkv, lk, dk]), t([b, hkv, lk, dv])]
        case .lightningIndexer:
            return [t([dim(d, "T"), dim(d, "Hi"), dk]), t([dim(d, "S"), dk]), t([dim(d, "T"), dim(d, "Hi")])]
        case .topK:
            return [t([dim(d, "T"), dim(d, "S")], .f32)]
        default:
            let (sn, hkv) = (dim(d, "S"), dim(d, "Hkv"))
            return [t([dim(d, "T"), dim(d, "H"), dk]), t([sn, hkv, dk]), t([sn, hkv, dv]), t([dim(d, "T"), dim(d, "k")], .i32)]
        }
    }

    static func quickCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .attention:
            let shapes: [(Int, Int, Int, Int, Int, Int, Int, Bool, Bool)] = [
                (1, 1, 1, 1, 1, 8, 8, false, false),      // one key: output is V
                (2, 4, 2, 7, 7, 16, 16, true, true),      // GQA 2:1, causal square
                (1, 8, 2, 1, 37, 32, 32, true, true),     // decode Lq = 1
                (1, 2, 2, 9, 5, 8, 12, true, true),       // Lq > Lk: fully masked rows
                (1, 3, 1, 5, 70, 24, 16, true, false),    // MQA, Lq < Lk causal
                (2, 2, 1, 13, 13, 64, 64, false, false),
                // GPU register-tiled prefill (64-row/64-key tiles): partial tiles, bottom-right
                // causal diagonal across tile edges, GQA, Dv ≠ D
                (1, 4, 2, 70, 100, 128, 128, true, true),
                (1, 2, 1, 33, 129, 128, 64, true, true),
            ]
            return shapes.map { (b, hq, hkv, lq, lk, d, dv, causal, lse) in
                CaseSpec(.attention(AttentionParams(causal: causal, scale: nil, returnLSE: lse)),
                         ["B": b, "Hq": hq, "Hkv": hkv, "Lq": lq, "Lk": lk, "D": d, "Dv": dv])
            }
        case .lightningIndexer:
            return [(1, 1, 4, 1), (5, 4, 16, 9), (16, 8, 32, 40), (3, 2, 128, 3), (21, 3, 64, 300)].map {
                CaseSpec(.lightningIndexer, ["T": $0.0, "Hi": $0.1, "D": $0.2, "S": $0.3])
            }
        case .topK:
            return [(1, 1, 1, false), (4, 50, 8, false), (3, 20, 25, false), (6, 64, 16, true), (2, 1000, 33, false)].map {
                CaseSpec(.topK(k: $0.2), ["T": $0.0, "S": $0.1, "k": $0.2], pattern: $0.3 ? .ties : .random)
            }
        default:
            return [(1, 1, 1, 1, 8, 8, 1), (6, 4, 1, 20, 16, 16, 8), (9, 4, 2, 9, 32, 24, 12), (4, 2, 1, 64, 64, 64, 40)].map {
                CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)),
                         ["T": $0.0, "H": $0.1, "Hkv": $0.2, "S": $0.3, "D": $0.4, "Dv": $0.5, "k": $0.6])
            }
        }
    }

    static func baseCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .attention:
            let dims = ["B": 1, "Hq": 4, "Hkv": 2, "Lq": 5, "Lk": 9, "D": 16, "Dv": 16]
            return [CaseSpec(.attention(AttentionParams(causal: true, returnLSE: true)), dims),
                    CaseSpec(.attention(AttentionParams(causal: false, returnLSE: true)), dims)]
        case .lightningIndexer: return [CaseSpec(.lightningIndexer, ["T": 4, "Hi": 2, "D": 16, "S": 9])]
        case .topK: return [CaseSpec(.topK(k: 5), ["T": 3, "S": 20, "k": 5])]
        default:
            return [CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)), ["T": 3, "H": 4, "Hkv": 2, "S": 12, "D": 16, "Dv": 16, "k": 5])]
        }
    }

    static func blockedDimensions(_ kind: OpKind) -> [String] {
        switch kind {
        case .attention: return ["Lq", "Lk"]
        case .lightningIndexer: return ["T", "S"]
        case .topK: return ["S", "k"]
        default: return ["k", "S"]
        }
    }

    static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int {
        switch op {
        case .attention: return max(axis(inputs, 0, -1), axis(inputs, 1, 2))
        case .sparseAttention: return max(axis(inputs, 0, -1), axis(inputs, 3, -1))
        case .lightningIndexer: return axis(inputs, 0, -1) * axis(inputs, 0, 1)
        default: return 1
        }
    }

    static func benchmarkDims(_ kind: OpKind) -> [String: Int] {
        switch kind {
        case .attention: return ["B": 1, "Hq": 32, "Hkv": 8, "Lq": 2048, "Lk": 2048, "D": 128, "causal": 1]
        case .lightningIndexer: return ["T": 256, "Hi": 32, "D": 64, "S": 2048]
        case .topK: return ["T": 64, "S": 8192, "k": 2048]
        default: return ["T": 256, "H": 32, "Hkv": 1, "S": 8192, "D": 128, "k": 2048]
        }
    }

    static func benchmarkOp(_ kind: OpKind, _ d: [String: Int]) throws -> Op {
        switch kind {
        case .attention: return .attention(AttentionParams(causal: (d["causal"] ?? 1) != 0))
        case .lightningIndexer: return .lightningIndexer
        case .topK: return .topK(k: try required(d, "k", kind))
        default: return .sparseAttention(SparseAttentionParams())
        }
    }

    static func labelWords(_ op: Op) -> [String] {
        switch op {
        case .attention(let p): return (p.causal ? ["causal"] : []) + (p.returnLSE ? ["lse"] : [])
        case .topK(let k): return ["k\(k)"]
        default: return []
        }
    }
}

// MARK: Repeated sparse indices: counted once

extension SparseAttentionParams {
    /// `indices [rows, k]` with every repeat of an index inside a row replaced by −1, or nil
    /// when no row repeats one (the common case, checked in O(rows·k) with a bitmap of `keys`
    /// bits). docs/kernels.md: a key listed twice is attended once, as DeepSeek's reference
    /// builds its index mask with `scatter_` (a set), so every backend runs on this form.
    /// Indices must already be in `-1..<keys`.
    public static func firstOccurrences(_ indices: UnsafeBufferPointer<Int32>, rows: Int, k: Int, keys: Int) -> [Int32]? {
        var seen = [UInt64](repeating: 0, count: (keys + 63) / 64)
        var out: [Int32]? = nil
        for r in 0..<rows {
            let row = indices[(r * k)..<((r + 1) * k)]
            for (j, x) in row.enumerated() where x >= 0 {
                let (w, bit) = (Int(x) / 64, UInt64(1) << UInt64(Int(x) % 64))
                if seen[w] & bit != 0 {
                    if out == nil { out = Array(indices) }
                    out![r * k + j] = -1
                } else {
                    seen[w] |= bit
                }
            }
            for x in row where x >= 0 { seen[Int(x) / 64] = 0 }
        }
        return out
    }
}
