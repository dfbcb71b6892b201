import PolychipCore

/// Builds cases from specs: normalizes the dimensions to what the kernel accepts, makes
/// seeded inputs and labels them.
public enum CaseBuilder {
    /// The dimensions a kernel's spec names, in label order (from the kernel's descriptor).
    public static func dimensionNames(_ kind: OpKind) -> [String] { kind.descriptor.dimensions }

    /// Dimensions that may be 0 in a spec (absent: the shape has no such axis).
    static let optionalDims: Set<String> = ["L", "R", "Rd"]

    /// The spec with its dimensions made valid for the kernel: every dimension ≥ 1, head
    /// counts that divide, group sizes that divide K, enough keys for the causal rules.
    /// Boundary derivation sets one dimension at a time; this keeps the rest consistent.
    public static func normalized(_ s: CaseSpec) -> CaseSpec {
        var s = s
        var d = s.dims
        for n in dimensionNames(s.kind) where !optionalDims.contains(n) { d[n] = max(1, d[n] ?? 1) }
        func roundUp(_ v: Int, _ m: Int) -> Int { (v + m - 1) / m * m }
        switch s.op {
        case .attention:
            if d["Hq"]! % d["Hkv"]! != 0 { d["Hq"] = roundUp(d["Hq"]!, d["Hkv"]!) }
        case .sparseAttention:
            if d["H"]! % d["Hkv"]! != 0 { d["H"] = roundUp(d["H"]!, d["Hkv"]!) }
            d["S"] = max(d["S"]!, d["T"]!)
        case .lightningIndexer:
            d["S"] = max(d["S"]!, d["T"]!)
        case .rope(var p):
            d["D"] = roundUp(d["D"]!, 2)
            if let r = d["Rd"], r > 0 { d["Rd"] = min(roundUp(r, 2), d["D"]!); p.rotaryDim = d["Rd"] } else { d["Rd"] = nil; p.rotaryDim = nil }
            s.op = .rope(p)
        case .moeRouter(var p):
            p.nGroup = max(1, min(p.nGroup, d["E"]!))
            if d["E"]! % p.nGroup != 0 { d["E"] = roundUp(d["E"]!, p.nGroup) }
            p.topkGroup = max(1, min(p.topkGroup, p.nGroup))
            p.topK = max(1, min(p.topK, p.topkGroup * d["E"]! / p.nGroup))
            s.op = .moeRouter(p)
        case .moePermute:
            d["k"] = min(d["k"]!, d["E"]!)
        case .moeLayer(var p):
            p.router.nGroup = max(1, min(p.router.nGroup, d["E"]!))
            if d["E"]! % p.router.nGroup != 0 { d["E"] = roundUp(d["E"]!, p.router.nGroup) }
            p.router.topkGroup = max(1, min(p.router.topkGroup, p.router.nGroup))
            p.router.topK = max(1, min(p.router.topK, p.router.topkGroup * d["E"]! / p.router.nGroup))
            if case .int4(let f) = p.experts {
                d["H"] = roundUp(d["H"]!, f.groupSize); d["F"] = roundUp(d["F"]!, f.groupSize)
            }
            s.op = .moeLayer(p)
        case .quantizeInt4(var f), .dequantizeInt4(var f, _), .int4Matmul(var f), .int4GroupedMatmul(var f):
            // A `G` dimension sets the group size (even); K is then a multiple of it.
            if let g = d["G"] { f.groupSize = roundUp(max(2, g), 2); d["G"] = nil }
            d["K"] = roundUp(d["K"]!, f.groupSize)
            switch s.op {
            case .quantizeInt4: s.op = .quantizeInt4(f)
            case .dequantizeInt4(_, let out): s.op = .dequantizeInt4(f, output: out)
            case .int4Matmul: s.op = .int4Matmul(f)
            default: s.op = .int4GroupedMatmul(f)
            }
        case .topK:
            s.op = .topK(k: d["k"]!)
        default:
            break
        }
        s.dims = d
        return s
    }

    /// The case's label: dimensions, parameters, pattern and note. Non-finite cases are
    /// `non-finite NAME: ` and the label of the same spec with random inputs.
    public static func label(_ s: CaseSpec) -> String {
        switch s.pattern {
        case .nonFinite:
            let name = NonFiniteCases.target(s).map { s.op.inputNames[$0] } ?? "?"
            return "non-finite \(name): " + label(randomVariant(s))
        case .nonFiniteLogits:
            return "non-finite logits: " + label(randomVariant(s))
        default: break
        }
        var parts = dimensionNames(s.kind).compactMap { n -> String? in
            guard let v = s.dims[n], !(optionalDims.contains(n) && v == 0) else { return nil }
            return "\(n)\(v)"
        }
        parts += parameterWords(s.op)
        if s.pattern != .random { parts.append(s.pattern.rawValue) }
        if s.offsetViews { parts.append("offset views") }
        var text = parts.joined(separator: " ")
        if let note = s.note { text += " [\(note)]" }
        return text
    }

    static func parameterWords(_ op: Op) -> [String] { op.kind.descriptor.labelWords(op) }

    /// Builds the case: seeded inputs (never zeros; data-dependent operands valid) in `dtype`.
    public static func make(_ spec: CaseSpec, dtype: DType, seed: UInt64) throws -> ConformanceCase {
        var s = normalized(spec)
        if case .dequantizeInt4(let f, _) = s.op { s.op = .dequantizeInt4(f, output: dtype) }
        let label = label(s)
        let caseSeed = self.seed(s, dtype: dtype, base: seed)
        var r = SeededRandom(seed: caseSeed)
        var c = ConformanceCase(op: s.op, inputs: try inputs(s, dtype, &r), dtype: dtype, label: label, seed: caseSeed)
        c.offsetViews = s.offsetViews
        c.exact = s.comparesExactly
        return c
    }

    /// The seed a (normalized) spec's inputs come from, derived from the run's `base` seed, the
    /// kernel, the dtype and the label. A non-finite case poisons the inputs of its random
    /// variant, so it takes that variant's seed.
    public static func seed(_ s: CaseSpec, dtype: DType, base: UInt64) -> UInt64 {
        caseSeed(base, s.kind.name, dtype.rawValue, label(s.pattern == .nonFinite ? randomVariant(s) : s))
    }

    /// The spec with pattern `random`.
    static func randomVariant(_ s: CaseSpec) -> CaseSpec {
        var r = s
        r.pattern = .random
        return r
    }

    /// The input descriptors of a (normalized) spec, in the op's input order: what a case
    /// allocates, and what its cost is computed from before any data exists.
    public static func inputDescs(_ s: CaseSpec, dtype: DType) -> [TensorDesc] {
        s.kind.descriptor.inputShapes(s.op, dims: s.dims, dtype: dtype)
    }

    /// Seeded values for each input descriptor, chosen by the operand's name: valid
    /// data-dependent operands (offsets, ids, indices, source maps, INT4 weights), value
    /// ranges per operand, and the spec's pattern.
    static func inputs(_ s: CaseSpec, _ dtype: DType, _ r: inout SeededRandom) throws -> [HostTensor] {
        let descs = inputDescs(s, dtype: dtype)
        let names = s.op.inputNames
        var out: [HostTensor] = []
        var i = 0
        while i < descs.count {
            let desc = descs[i], name = names[i]
            func floats(_ lo: Float, _ hi: Float) throws -> HostTensor {
                try HostTensor(desc.shape, desc.dtype, floats: r.floats(desc.elementCount, lo, hi))
            }
            if desc.dtype == .int4 {
                // q, scales and (asymmetric) zeros together.
                guard case .some(let f) = int4Format(s.op) else { throw PolychipError.invalidTensor(reason: "int4 operand of \(s.op.kind.name)") }
                let (n, k) = (desc.shape[desc.rank - 2], desc.shape[desc.rank - 1])
                let group = try CaseGenerator.int4Weights(Array(desc.shape.dropLast(2)), n, k, f, &r)
                out += group
                i += group.count
                continue
            }
            switch (s.op, name) {
            case (.groupedMatmul, "offsets"), (.int4GroupedMatmul, "offsets"):
                out.append(try CaseGenerator.offsets(descs[0].shape[0], desc.shape[0] - 1, &r))
            case (.rope, "positions"):
                out.append(try HostTensor(desc.shape, int32s: (0..<desc.elementCount).map { _ in Int32(r.int(0..<4096)) }))
            case (.moePermute(let e), "ids"):
                out.append(try HostTensor(desc.shape, int32s: CaseGenerator.distinctIDs(desc.shape[0], desc.shape[1], e, &r)))
            case (.moeCombine, "sourceMap"):
                out.append(try HostTensor(desc.shape, int32s: Array(0..<desc.elementCount).shuffled(using: &r).map { Int32($0) }))
            case (.sparseAttention, "indices"):
                out.append(try sparseIndices(t: desc.shape[0], k: desc.shape[1], s: descs[1].shape[0], &r))
            case (.rmsNorm, "weight"), (.addRmsNorm, "weight"): out.append(try floats(0.5, 1.5))
            case (.moeRouter, "bias"), (.moeLayer, "bias"): out.append(try floats(0.001, 0.1))
            case (.moeRouter, "logits"): out.append(try floats(0.05, 3))
            case (.moeCombine, "weights"): out.append(try floats(0.05, 1))
            case (.softmax, _): out.append(try floats(0.05, 8))
            case (.silu, _), (.scale, _), (.swiglu, _), (.add, _): out.append(try floats(0.05, 4))
            case (.quantizeInt4, _):
                out.append(s.note == "one-sided groups"
                    ? try HostTensor(desc.shape, desc.dtype, floats: r.floats(desc.elementCount, 0.5, 3).map { abs($0) + 1 })
                    : try floats(0.01, 3))
            case (.moeLayer, _) where name != "x" && name != "routerWeight": out.append(try floats(0.05, 0.5))
            case (.topK, _): out.append(try topKScores(desc, s, &r))
            default: out.append(try floats(0.05, 1))
            }
            i += 1
        }
        switch (s.op, s.pattern) {
        case (.attention, .risingLogits), (.attention, .fallingLogits): shapeLogits(&out, s.pattern)
        case (.rmsNorm, .smallRows), (.addRmsNorm, .smallRows):
            // x (and the residual added to it) small enough that eps matters.
            for i in 0..<(s.kind == .addRmsNorm ? 2 : 1) {
                out[i] = try HostTensor(descs[i].shape, descs[i].dtype, floats: out[i].floats.map { $0 * 3e-3 })
            }
        case (.add, .roundingTies), (.scale, .roundingTies):
            out = try roundingTieInputs(s.op, descs, &r)
        case (.moeRouter(let p), .ties):
            var logits = out[0].floats, bias = p.hasBias ? out[1].floats : []
            tieRouterInputs(&logits, &bias, t: descs[0].shape[0], e: descs[0].shape[1], p)
            out[0] = try HostTensor(descs[0].shape, descs[0].dtype, floats: logits)
            if p.hasBias { out[1] = try HostTensor(descs[1].shape, .f32, floats: bias) }
        case (.moeRouter(let p), .nonFiniteLogits):
            out[0] = try HostTensor(descs[0].shape, descs[0].dtype, floats: NonFiniteCases.routerRows(t: descs[0].shape[0], e: descs[0].shape[1]))
            if p.hasBias { out[1] = try HostTensor(descs[1].shape, .f32, floats: (1...descs[1].elementCount).map { Float($0) * 0.01 }) }
        case (_, .nonFinite):
            if let i = NonFiniteCases.target(s) { out[i] = try NonFiniteCases.poisoned(out[i]) }
        default: break
        }
        return out
    }

    /// Inputs whose exact result sits on or near a rounding tie of the dtype. `x` has a
    /// random sign, an exponent in −4…4 and a random mantissa; for `add`, `y` is x's ulp
    /// times ±½ (a tie), ±¼ or ±¾ (either side of it), which the dtype holds exactly and an f32
    /// sum keeps exactly; for `scale` (α = 1.5 or 0.75 makes one more bit) the odd mantissas
    /// give ties.
    static func roundingTieInputs(_ op: Op, _ descs: [TensorDesc], _ r: inout SeededRandom) throws -> [HostTensor] {
        let dtype = descs[0].dtype
        let mantissa = dtype == .bf16 ? 7 : dtype == .f16 ? 10 : 23
        let n = descs[0].elementCount
        var x = [Float](), y = [Float]()
        x.reserveCapacity(n); y.reserveCapacity(n)
        let fractions: [Float] = [0.5, -0.5, 0.25, -0.25, 0.75, -0.75]
        for i in 0..<n {
            let e = r.int(-4..<5), m = r.int(0..<(1 << mantissa))
            let sign: Float = r.int(0..<2) == 0 ? 1 : -1
            let v = sign * Float(sign: .plus, exponent: e, significand: 1 + Float(m) / Float(1 << mantissa))
            x.append(v)
            y.append(Float(sign: .plus, exponent: e - mantissa, significand: 1) * fractions[i % fractions.count] * sign)
        }
        if case .scale = op { return [try HostTensor(descs[0].shape, dtype, floats: x)] }
        return [try HostTensor(descs[0].shape, dtype, floats: x), try HostTensor(descs[1].shape, dtype, floats: y)]
    }

    static func int4Format(_ op: Op) -> Int4Format? {
        switch op {
        case .quantizeInt4(let f), .dequantizeInt4(let f, _), .int4Matmul(let f), .int4GroupedMatmul(let f): return f
        case .moeLayer(let p): if case .int4(let f) = p.experts { return f }; return nil
        default: return nil
        }
    }

    /// Indices as the indexer + top-k make them: causal, distinct, −1 padded.
    static func sparseIndices(t: Int, k: Int, s: Int, _ r: inout SeededRandom) throws -> HostTensor {
        var idx: [Int32] = []
        for ti in 0..<t {
            let chosen = Array(0...(ti + s - t)).shuffled(using: &r).prefix(k)
            idx += chosen.map { Int32($0) } + [Int32](repeating: -1, count: k - chosen.count)
        }
        return try HostTensor([t, k], int32s: idx)
    }

    /// Top-k scores: random with −inf (masked) entries; ties at the k cut or all equal.
    static func topKScores(_ desc: TensorDesc, _ s: CaseSpec, _ r: inout SeededRandom) throws -> HostTensor {
        let (t, sn) = (desc.shape[0], desc.shape[1])
        guard case .topK(let k) = s.op else { return try HostTensor(desc.shape, .f32, floats: r.floats(t * sn)) }
        if s.pattern == .allEqual { return try HostTensor([t, sn], .f32, floats: [Float](repeating: 0.5, count: t * sn)) }
        if s.pattern == .signedZeros {
            // About k/2 positive values, then zeros of random sign past the cut, a few negatives.
            let vals = (0..<(t * sn)).map { i -> Float in
                let j = i % sn
                if j % 7 == 3 && j < 2 * k { return Float(j + 1) / 8 }
                if j % 11 == 5 { return -Float(j + 1) / 8 }
                return r.int(0..<2) == 0 ? 0 : -0.0
            }
            return try HostTensor([t, sn], .f32, floats: vals)
        }
        var vals = r.floats(t * sn)
        if s.pattern == .ties { vals = vals.map { ($0 * 4).rounded() / 4 + 0.01 } }
        for i in vals.indices where r.int(0..<7) == 0 { vals[i] = -.infinity }
        if s.pattern == .ties {
            // Quarter steps repeat values exactly; also make each row's k-th and (k+1)-th
            // largest equal, so the tie rule decides at the k cut.
            for row in 0..<t where k < sn {
                let base = row * sn
                let order = (0..<sn).sorted { vals[base + $0] > vals[base + $1] || (vals[base + $0] == vals[base + $1] && $0 < $1) }
                if vals[base + order[k - 1]].isFinite { vals[base + order[k]] = vals[base + order[k - 1]] }
            }
        }
        return try HostTensor([t, sn], .f32, floats: vals)
    }

    /// Attention with logits rising (or falling) along the keys: q made positive, so q·k
    /// grows with k's scale, and key j scaled by a factor rising with j puts each later
    /// block's keys above every earlier one.
    static func shapeLogits(_ ins: inout [HostTensor], _ pattern: InputPattern) {
        let q = ins[0], k = ins[1]
        let (bh, lk, dd) = (k.desc.shape[0] * k.desc.shape[1], k.desc.shape[2], k.desc.shape[3])
        var kf = k.floats.map(abs)
        for h in 0..<bh {
            for j in 0..<lk {
                let t = Float(j) / Float(max(1, lk - 1))
                let scale: Float = 0.25 + 1.5 * (pattern == .risingLogits ? t : 1 - t)
                for x in 0..<dd { kf[(h * lk + j) * dd + x] *= scale }
            }
        }
        if let qp = try? HostTensor(q.desc.shape, q.desc.dtype, floats: q.floats.map(abs)),
           let kp = try? HostTensor(k.desc.shape, k.desc.dtype, floats: kf) {
            ins[0] = qp; ins[1] = kp
        }
    }

    /// Router ties at the boundaries that decide: each token's logits repeat a few values
    /// exactly (equal bias too), so experts tie at the top-k cut and, with groups, whole
    /// groups tie at the top-k-group cut. The lower index must win every tie.
    static func tieRouterInputs(_ logits: inout [Float], _ bias: inout [Float], t: Int, e: Int, _ p: RouterParams) {
        let groupSize = e / max(1, p.nGroup)
        if !bias.isEmpty { bias = [Float](repeating: 0.05, count: e) }
        for tok in 0..<t {
            let base = tok * e
            // Every group holds the same multiset of values, so group scores tie exactly
            // (sums of equal values in the same order); within a group values repeat.
            let offset: Float = tok % 2 == 0 ? 0 : 0.25
            let pattern = (0..<groupSize).map { j -> Float in Float(j % 3 + 1) * 0.5 + offset }
            for g in 0..<max(1, p.nGroup) {
                for j in 0..<groupSize { logits[base + g * groupSize + j] = pattern[(j + g) % groupSize] }
            }
        }
    }
}
