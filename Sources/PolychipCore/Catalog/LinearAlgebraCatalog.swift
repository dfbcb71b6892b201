/// GEMMs: `matmul`, `grouped-matmul` (one GEMM per expert segment of rows) and the W4A16
/// `int4-matmul` / `int4-grouped-matmul` against group-wise INT4 weights `[.., N, K]`.
enum MatmulKernels: KernelFamily {
    static let kinds: [OpKind] = [.matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul]

    static func inputNames(_ op: Op) -> [String] {
        switch op {
        case .matmul: return ["a", "b"]
        case .groupedMatmul: return ["x", "w", "offsets"]
        case .int4Matmul(let f): return ["x"] + Op.int4Names(prefix: "", f)
        case .int4GroupedMatmul(let f): return ["x"] + Op.int4Names(prefix: "", f) + ["offsets"]
        default: return []
        }
    }

    static func outputNames(_ op: Op) -> [String] { op.kind == .matmul ? ["c"] : ["y"] }

    static func validate(_ op: Op, _ c: Check) throws -> [TensorDesc] {
        switch op {
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

    static func cost(_ op: Op, _ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let x = i[0].shape
        let out: Double
        switch op {
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

    static func tolerance(_ kind: OpKind) -> ToleranceTable { .reduction }

    static func timeClass(_ kind: OpKind) -> KernelClass { kind == .matmul || kind == .groupedMatmul ? .gemm : .int4Gemm }

    static func parameters(_ kind: OpKind) -> [KernelParameter] {
        switch kind {
        case .matmul, .groupedMatmul: return [KernelParameter("transpose-b", .flag(inverted: false), "B is [N,K] (weight layout)")]
        default: return [KernelParameter("group-size", .integer, default: "32", "INT4 group size (asymmetric when a 'zeros' input is given)")]
        }
    }

    static func op(_ kind: OpKind, _ a: KernelArguments) throws -> Op {
        let f = Int4Format(groupSize: try a.integer("group-size", 32), symmetric: !a.has("zeros"))
        switch kind {
        case .matmul: return .matmul(transposeB: a.flag("transpose-b"))
        case .groupedMatmul: return .groupedMatmul(transposeB: a.flag("transpose-b"))
        case .int4Matmul: return .int4Matmul(f)
        default: return .int4GroupedMatmul(f)
        }
    }

    static func dimensions(_ kind: OpKind) -> [String] {
        switch kind {
        case .matmul: return ["M", "K", "N"]
        case .groupedMatmul: return ["T", "K", "N", "E"]
        case .int4Matmul: return ["M", "N", "K"]
        default: return ["T", "N", "K", "E"]
        }
    }

    static func inputShapes(_ op: Op, _ d: [String: Int], _ dtype: DType) -> [TensorDesc] {
        func t(_ shape: [Int], _ dt: DType? = nil) -> TensorDesc { TensorDesc(shape, dt ?? dtype) }
        let (k, n, e) = (dim(d, "K"), dim(d, "N"), dim(d, "E"))
        switch op {
        case .matmul(let tb): return [t([dim(d, "M"), k]), t(tb ? [n, k] : [k, n])]
        case .groupedMatmul(let tb): return [t([dim(d, "T"), k]), t(tb ? [e, n, k] : [e, k, n]), t([e + 1], .i32)]
        case .int4Matmul(let f): return [t([dim(d, "M"), k])] + Op.int4Shapes([], n, k, f)
        case .int4GroupedMatmul(let f): return [t([dim(d, "T"), k])] + Op.int4Shapes([e], n, k, f) + [t([e + 1], .i32)]
        default: return []
        }
    }

    static func quickCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .matmul:
            return [(1, 1, 1, false), (7, 13, 5, false), (33, 65, 17, true), (64, 96, 80, false), (1, 300, 129, true), (70, 9, 130, true)].map {
                CaseSpec(.matmul(transposeB: $0.3), ["M": $0.0, "K": $0.1, "N": $0.2])
            }
        case .groupedMatmul:
            return [(1, 8, 4, 1, false), (37, 24, 19, 4, true), (64, 33, 40, 6, false)].map {
                CaseSpec(.groupedMatmul(transposeB: $0.4), ["T": $0.0, "K": $0.1, "N": $0.2, "E": $0.3])
            }
        case .int4Matmul:
            return [(1, 1, 2, 2, true), (1, 33, 256, 32, true), (2, 21, 192, 64, false), (3, 17, 128, 64, false), (8, 40, 96, 32, true),
                    (37, 24, 256, 128, false)].map {
                CaseSpec(.int4Matmul(Int4Format(groupSize: $0.3, symmetric: $0.4)), ["M": $0.0, "N": $0.1, "K": $0.2])
            }
        default:
            return [(1, 4, 32, 1, 32, true), (29, 20, 64, 4, 32, false), (40, 16, 128, 8, 64, true)].map {
                CaseSpec(.int4GroupedMatmul(Int4Format(groupSize: $0.4, symmetric: $0.5)), ["T": $0.0, "N": $0.1, "K": $0.2, "E": $0.3])
            }
        }
    }

    static func baseCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .matmul:
            return [CaseSpec(.matmul(transposeB: true), ["M": 5, "K": 9, "N": 7]), CaseSpec(.matmul(transposeB: false), ["M": 5, "K": 9, "N": 7])]
        case .groupedMatmul:
            return [CaseSpec(.groupedMatmul(transposeB: true), ["T": 9, "K": 9, "N": 7, "E": 3]),
                    CaseSpec(.groupedMatmul(transposeB: false), ["T": 9, "K": 9, "N": 7, "E": 3])]
        case .int4Matmul:
            return [CaseSpec(.int4Matmul(Int4Format(groupSize: 32, symmetric: false)), ["M": 1, "N": 9, "K": 96]),
                    CaseSpec(.int4Matmul(Int4Format(groupSize: 64, symmetric: true)), ["M": 3, "N": 9, "K": 128])]
        default:
            return [CaseSpec(.int4GroupedMatmul(Int4Format(groupSize: 32, symmetric: false)), ["T": 9, "N": 9, "K": 96, "E": 3])]
        }
    }

    static func blockedDimensions(_ kind: OpKind) -> [String] { kind == .matmul || kind == .int4Matmul ? ["M", "N", "K"] : ["T", "N", "K"] }

    static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int {
        if case .matmul(let tb) = op { return tb ? axis(inputs, 1, -1) : axis(inputs, 0, -1) }
        return axis(inputs, 0, -1)
    }

    static func benchmarkDims(_ kind: OpKind) -> [String: Int] {
        switch kind {
        case .matmul: return ["M": 2048, "N": 2048, "K": 2048]
        case .groupedMatmul: return ["T": 4096, "N": 1024, "K": 2048, "E": 64]
        case .int4Matmul: return ["M": 1, "N": 4096, "K": 14336, "G": 32]
        default: return ["T": 512, "N": 1024, "K": 2048, "E": 64, "G": 32]
        }
    }

    static func benchmarkOp(_ kind: OpKind, _ d: [String: Int]) throws -> Op {
        switch kind {
        case .matmul: return .matmul(transposeB: true)
        case .groupedMatmul: return .groupedMatmul(transposeB: true)
        case .int4Matmul: return .int4Matmul(Int4Format(groupSize: try required(d, "G", kind)))
        default: return .int4GroupedMatmul(Int4Format(groupSize: try required(d, "G", kind)))
        }
    }

    static func labelWords(_ op: Op) -> [String] {
        switch op {
        case .matmul(let tb), .groupedMatmul(let tb): return tb ? ["Bᵀ"] : []
        case .int4Matmul(let f), .int4GroupedMatmul(let f): return ["\(f)"]
        default: return []
        }
    }
}
