extension Op {
    func validateLinearAlgebra(_ c: Check) throws -> [TensorDesc] {
        switch self {
        case .matmul(let tb):
            try c.float("a"); try c.sameDType("b", as: "a")
            let a = try c.rank("a", 2, "[M, K]")
            let b = try c.rank("b", 2, tb ? "[N, K]" : "[K, N]")
            let (bk, n) = tb ? (b[1], b[0]) : (b[0], b[1])
            try c.dim("b", "K", bk, equals: a[1], "inner dimension of 'a'")
            return [TensorDesc([a[0], n], c["a"].dtype)]
        case .groupedMatmul(let tb):
            try c.float("x"); try c.sameDType("w", as: "x")
            let x = try c.rank("x", 2, "[T, K]")
            let w = try c.rank("w", 3, tb ? "[E, N, K]" : "[E, K, N]")
            let e = try c.offsets("offsets")
            try c.dim("w", "E", w[0], equals: e, "experts = offsets count − 1")
            let (wk, n) = tb ? (w[2], w[1]) : (w[1], w[2])
            try c.dim("w", "K", wk, equals: x[1], "inner dimension of 'x'")
            return [TensorDesc([x[0], n], c["x"].dtype)]
        case .int4Matmul(let f):
            try c.float("x")
            let x = try c.rank("x", 2, "[M, K]")
            let (n, k) = try c.int4(prefix: "", f, lead: [])
            try c.dim("q", "K", k, equals: x[1], "inner dimension of 'x'")
            return [TensorDesc([x[0], n], c["x"].dtype)]
        case .int4GroupedMatmul(let f):
            try c.float("x")
            let x = try c.rank("x", 2, "[T, K]")
            let e = try c.offsets("offsets")
            let (n, k) = try c.int4(prefix: "", f, lead: [e])
            try c.dim("q", "K", k, equals: x[1], "inner dimension of 'x'")
            return [TensorDesc([x[0], n], c["x"].dtype)]
        default: return []
        }
    }

    func linearAlgebraCost(_ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let x = i[0].shape
        let out: Double
        switch self {
        case .matmul(let tb):
            let n = tb ? i[1].shape[0] : i[1].shape[1]
            let (m, k) = (x[0], x[1])
            out = dprod(m, n) * Double(dt.bitWidth / 8)
            return Cost(flops: 2 * Double(m) * Double(n) * Double(k), bytes: totalBytes(i) + out, unit: .matrix,
                        gemms: [GemmShape(m: m, n: n, k: k)], dtype: dt)
        case .groupedMatmul(let tb):
            let w = i[1].shape
            let e = w[0], n = tb ? w[1] : w[2], t = x[0], k = x[1]
            out = dprod(t, n) * Double(dt.bitWidth / 8)
            // Balanced routing: each expert gets T/E rows; every expert with rows reads its weights.
            let active = min(e, t)
            let wBytes = Double(i[1].byteCount) * Double(active) / Double(e)
            let mPer = max(1, t / e + (t % e == 0 ? 0 : 1))
            return Cost(flops: 2 * Double(t) * Double(n) * Double(k),
                        bytes: Double(i[0].byteCount) + wBytes + Double(i[2].byteCount) + out, unit: .matrix,
                        gemms: [GemmShape(m: mPer, n: n, k: k, batch: active)], dtype: dt)
        case .int4Matmul:
            let q = i[1].shape
            let (m, n, k) = (x[0], q[0], q[1])
            out = dprod(m, n) * Double(dt.bitWidth / 8)
            return Cost(flops: 2 * Double(m) * Double(n) * Double(k), bytes: totalBytes(i) + out, unit: .matrix,
                        gemms: [GemmShape(m: m, n: n, k: k)], dtype: dt)
        case .int4GroupedMatmul:
            let q = i[1].shape
            let (e, n, k, t) = (q[0], q[1], q[2], x[0])
            out = dprod(t, n) * Double(dt.bitWidth / 8)
            let active = min(e, t)
            let wBytes = totalBytes(Array(i[1..<(i.count - 1)])) * Double(active) / Double(e)
            let mPer = max(1, t / e + (t % e == 0 ? 0 : 1))
            return Cost(flops: 2 * Double(t) * Double(n) * Double(k),
                        bytes: Double(i[0].byteCount) + wBytes + Double(i.last!.byteCount) + out, unit: .matrix,
                        gemms: [GemmShape(m: mPer, n: n, k: k, batch: active)], dtype: dt)
        default:
            return Cost(flops: 0, bytes: 0, unit: .matrix, dtype: dt)
        }
    }
}
