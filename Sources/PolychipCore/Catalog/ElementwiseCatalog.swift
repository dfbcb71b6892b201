extension Op {
    func validateElementwise(_ c: Check) throws -> [TensorDesc] {
        switch self {
        case .rmsNorm(let eps):
            try c.float("x"); try c.sameDType("weight", as: "x")
            let x = try c.nonEmpty("x")
            try c.equal("weight", [x.last!])
            try c.param("eps", eps.isFinite && eps >= 0, "must be finite and ≥ 0, got \(eps)")
            return [c["x"]]
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

    func elementwiseCost(_ i: [TensorDesc]) -> Cost {
        let dt = i[0].dtype
        let n = Double(i[0].elementCount)
        let perElement: Double
        switch self {
        case .rmsNorm: perElement = 4
        case .softmax: perElement = 5
        case .silu: perElement = 5
        case .swiglu: perElement = 6
        case .rope: perElement = 3
        case .add, .scale: perElement = 1
        default: perElement = 1
        }
        // Output has the first input's size; every input is read once.
        return Cost(flops: perElement * n, bytes: totalBytes(i) + Double(i[0].byteCount), unit: .vector, dtype: dt)
    }
}
