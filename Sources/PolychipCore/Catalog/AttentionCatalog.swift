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

    func validateAttention(_ c: Check) throws -> [TensorDesc] {
        switch self {
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

    func attentionCost(_ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let eb = Double(dt.bitWidth / 8)
        switch self {
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
