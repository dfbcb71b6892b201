/// Norms and elementwise kernels: `rms-norm`, `add-rms-norm`, `softmax`, `silu`, `swiglu`,
/// `rope`, `add`, `scale`. Rows are the last dimension; shapes are `[L, R, D]`, `[R, D]` or `[D]`.
enum ElementwiseKernels: KernelFamily {
    static let kinds: [OpKind] = [.rmsNorm, .addRmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale]

    static func inputNames(_ op: Op) -> [String] {
        switch op {
        case .rmsNorm: return ["x", "weight"]
        case .addRmsNorm: return ["x", "residual", "weight"]
        case .add: return ["a", "b"]
        case .swiglu: return ["gate", "up"]
        case .rope: return ["x", "positions"]
        default: return ["x"]
        }
    }

    static func outputNames(_ op: Op) -> [String] {
        switch op {
        case .addRmsNorm: return ["y", "residualOut"]
        case .add: return ["c"]
        default: return ["y"]
        }
    }

    static func validate(_ op: Op, _ c: Check) throws -> [TensorDesc] {
        switch op {
        case .rmsNorm(let eps):
            try c.float("x"); try c.sameDType("weight", as: "x")
            let x = try c.nonEmpty("x")
            try c.equal("weight", [x.last!])
            try c.param("eps", eps.isFinite && eps >= 0, "must be finite and ≥ 0, got \(eps)")
            return [c["x"]]
        case .addRmsNorm(let eps):
            try c.float("x"); try c.sameDType("residual", as: "x"); try c.sameDType("weight", as: "x")
            let x = try c.nonEmpty("x")
            try c.equal("residual", x)
            try c.equal("weight", [x.last!])
            try c.param("eps", eps.isFinite && eps >= 0, "must be finite and ≥ 0, got \(eps)")
            return [c["x"], c["x"]]
        case .softmax, .silu:
            try c.float("x"); try c.nonEmpty("x")
            return [c["x"]]
        case .scale(let alpha):
            try c.float("x"); try c.nonEmpty("x")
            try c.param("alpha", alpha.isFinite, "must be finite, got \(alpha)")
            return [c["x"]]
        case .swiglu:
            try c.float("gate"); try c.sameDType("up", as: "gate")
            try c.nonEmpty("gate"); try c.equal("up", c.shape("gate"))
            return [c["gate"]]
        case .add:
            try c.float("a"); try c.sameDType("b", as: "a")
            try c.nonEmpty("a"); try c.equal("b", c.shape("a"))
            return [c["a"]]
        case .rope(let p):
            try c.float("x")
            let x = try c.rank("x", 3, "[T, H, D]")
            try c.dtype("positions", .i32)
            try c.equal("positions", [x[0]])
            let r = p.rotaryDim ?? x[2]
            try c.param("rotaryDim", r >= 2 && r % 2 == 0 && r <= x[2], "must be even, ≥ 2 and ≤ D = \(x[2]), got \(r)")
            try c.param("base", p.base.isFinite && p.base > 0, "must be finite and > 0, got \(p.base)")
            return [c["x"]]
        default: return []
        }
    }

    static func cost(_ op: Op, _ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let n = Double(i[0].elementCount)
        let perElement: Double
        switch op {
        case .rmsNorm: perElement = 4
        case .addRmsNorm: perElement = 5
        case .softmax, .silu: perElement = 5
        case .swiglu: perElement = 6
        case .rope: perElement = 3
        default: perElement = 1
        }
        // Every input is read once; each output has the first input's size.
        let outputs = Double(outputNames(op).count)
        return Cost(flops: perElement * n, bytes: totalBytes(i) + outputs * Double(i[0].byteCount), unit: .vector, dtype: dt)
    }

    static func tolerance(_ kind: OpKind) -> ToleranceTable { .elementwise }

    static func timeClass(_ kind: OpKind) -> KernelClass {
        switch kind {
        case .rmsNorm, .addRmsNorm: return .normalization
        case .softmax: return .softmax
        default: return .elementwise
        }
    }

    static func parameters(_ kind: OpKind) -> [KernelParameter] {
        switch kind {
        case .rmsNorm, .addRmsNorm: return [KernelParameter("eps", .real, default: "1e-6", "epsilon added to the mean square")]
        case .scale: return [KernelParameter("alpha", .real, default: "1", "multiplier")]
        case .rope:
            return [KernelParameter("style", .choice(RopeStyle.allCases.map(\.rawValue)), default: "neox", "pairing convention"),
                    KernelParameter("base", .real, default: "10000", "θ base of the frequencies"),
                    KernelParameter("rotary-dim", .integer, default: "D", "rotated dimensions (even, ≤ D)")]
        default: return []
        }
    }

    static func op(_ kind: OpKind, _ a: KernelArguments) throws -> Op {
        switch kind {
        case .rmsNorm: return .rmsNorm(eps: try a.real("eps", 1e-6))
        case .addRmsNorm: return .addRmsNorm(eps: try a.real("eps", 1e-6))
        case .softmax: return .softmax
        case .silu: return .silu
        case .swiglu: return .swiglu
        case .add: return .add
        case .scale: return .scale(alpha: try a.real("alpha", 1))
        default:
            return .rope(RopeParams(style: try a.choice("style", RopeStyle.neox), base: try a.real("base", 10000),
                                    rotaryDim: try a.integer("rotary-dim")))
        }
    }

    static func dimensions(_ kind: OpKind) -> [String] { kind == .rope ? ["T", "H", "D", "Rd"] : ["L", "R", "D"] }

    static func inputShapes(_ op: Op, _ d: [String: Int], _ dtype: DType) -> [TensorDesc] {
        let row = TensorDesc(rowShape(d), dtype)
        switch op {
        case .rmsNorm: return [row, TensorDesc([dim(d, "D")], dtype)]
        case .addRmsNorm: return [row, row, TensorDesc([dim(d, "D")], dtype)]
        case .swiglu, .add: return [row, row]
        case .rope: return [TensorDesc([dim(d, "T"), dim(d, "H"), dim(d, "D")], dtype), TensorDesc([dim(d, "T")], .i32)]
        default: return [row]
        }
    }

    static func quickCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .rmsNorm, .addRmsNorm:
            let op: Op = kind == .rmsNorm ? .rmsNorm(eps: 1e-6) : .addRmsNorm(eps: 1e-6)
            return [["D": 1], ["R": 3, "D": 7], ["L": 2, "R": 5, "D": 64], ["R": 4, "D": 4099]].map { CaseSpec(op, $0) }
        case .softmax, .silu, .scale:
            let op: Op = kind == .softmax ? .softmax : kind == .silu ? .silu : .scale(alpha: 0.731)
            return [["D": 1], ["R": 5, "D": 33], ["L": 3, "R": 2, "D": 129], ["R": 2, "D": 5000]].map { CaseSpec(op, $0) }
        case .swiglu, .add:
            let op: Op = kind == .swiglu ? .swiglu : .add
            return [["D": 1], ["R": 7, "D": 31], ["L": 2, "R": 3, "D": 257], ["R": 1, "D": 4100]].map { CaseSpec(op, $0) }
        default:
            return [(1, 1, 2, RopeStyle.neox, 0), (5, 3, 64, .neox, 0), (7, 2, 64, .gptj, 0), (4, 2, 96, .neox, 64), (3, 1, 34, .gptj, 18)].map {
                CaseSpec(.rope(RopeParams(style: $0.3, base: 10000, rotaryDim: $0.4 > 0 ? $0.4 : nil)), ["T": $0.0, "H": $0.1, "D": $0.2, "Rd": $0.4])
            }
        }
    }

    static func baseCases(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .rope: return [CaseSpec(.rope(RopeParams()), ["T": 3, "H": 2, "D": 16]), CaseSpec(.rope(RopeParams(style: .gptj)), ["T": 3, "H": 2, "D": 16])]
        default:
            let ops: [Op] = [.rmsNorm(eps: 1e-6), .addRmsNorm(eps: 1e-6), .softmax, .silu, .scale(alpha: 0.731), .swiglu, .add]
            return ops.filter { $0.kind == kind }.map { CaseSpec($0, ["R": 3, "D": 9]) }
        }
    }

    static func blockedDimensions(_ kind: OpKind) -> [String] { kind == .rope ? ["T", "D"] : ["R", "D"] }

    static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int {
        switch op {
        case .rmsNorm, .addRmsNorm, .softmax: return axis(inputs, 0, -1)
        default: return 1
        }
    }

    static func benchmarkDims(_ kind: OpKind) -> [String: Int] { kind == .rope ? ["T": 4096, "H": 32, "D": 128] : ["R": 4096, "D": 4096] }

    static func benchmarkOp(_ kind: OpKind, _ d: [String: Int]) throws -> Op {
        switch kind {
        case .rmsNorm: return .rmsNorm(eps: 1e-6)
        case .addRmsNorm: return .addRmsNorm(eps: 1e-6)
        case .scale: return .scale(alpha: 0.5)
        case .rope: return .rope(RopeParams())
        default: return try op(kind, KernelArguments(kind))
        }
    }

    static func labelWords(_ op: Op) -> [String] {
        if case .rope(let p) = op { return [p.style.rawValue] }
        return []
    }
}
