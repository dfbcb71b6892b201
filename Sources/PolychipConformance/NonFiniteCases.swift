import PolychipCore

/// Conformance cases with NaN and ±Inf inputs, for every kernel whose non-finite behaviour
/// docs/kernels.md defines ("Non-finite inputs"); the runner adds them to the seeded cases, so
/// every backend is held to the same rules (issue 14: OpenCL gave `lse = −inf` for a NaN query
/// and NaN router weights for a `+inf` logit while the random, finite cases all passed).
///
/// Most cases are the first seeded cases of a kernel (same shapes, so no new device programs)
/// with NaN, `+inf` and `−inf` written into one float input; the router gets hand-made rows
/// (a `+inf` logit, an all-`−inf` row, `−inf` entries) because NaN logits leave its choice
/// unspecified. `quantizeInt4` has none: its encoding of a non-finite group is unspecified.
public enum NonFiniteCases {
    /// The non-finite cases of `kind` in `dtype`.
    public static func cases(_ kind: OpKind, dtype: DType, seed: UInt64) throws -> [ConformanceCase] {
        switch kind {
        case .quantizeInt4: return []
        case .moeRouter: return try routerCases(dtype: dtype, seed: seed)
        default: break
        }
        var out: [ConformanceCase] = []
        for base in try CaseGenerator.cases(kind, dtype: dtype, seed: seed).prefix(3) {
            // moeLayer: poison an expert weight, not x — NaN tokens would make the routing
            // (and so which rows are NaN) unspecified.
            let target: Int?
            if case .moeLayer = base.op {
                target = base.op.inputNames.firstIndex { $0 == "gate" || $0 == "gate.scales" }
            } else {
                target = base.inputs.firstIndex { $0.desc.dtype.isFloat }
            }
            guard let i = target, base.inputs[i].desc.elementCount >= 2 else { continue }
            var inputs = base.inputs
            inputs[i] = try poisoned(inputs[i])
            out.append(ConformanceCase(op: base.op, inputs: inputs, dtype: dtype,
                                       label: "non-finite \(base.op.inputNames[i]): \(base.label)", seed: base.seed))
        }
        return out
    }

    /// `t` with NaN, `+inf` and `−inf` at elements 1, 4 and 7 (those that exist).
    static func poisoned(_ t: HostTensor) throws -> HostTensor {
        var v = t.floats
        for (j, special) in [Float.nan, .infinity, -.infinity].enumerated() where 3 * j + 1 < v.count { v[3 * j + 1] = special }
        return try HostTensor(t.desc.shape, t.desc.dtype, floats: v)
    }

    /// Router rows: a `+inf` logit, two `+inf` logits (they share the mass), an all-`−inf` row,
    /// `−inf` entries, under softmax and sigmoid scoring, with and without groups and bias.
    static func routerCases(dtype: DType, seed: UInt64) throws -> [ConformanceCase] {
        let inf = Float.infinity
        let rows: [[Float]] = [
            [1, 2, inf, 0, 0.5, 0.25, 3, 1.5],
            [inf, 0.5, 1, inf, 2, 0.1, 0.2, 0.3],
            [-inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf],
            [0.5, -inf, 2, -inf, 1, 0.75, -inf, 0.25],
        ]
        let configs: [RouterParams] = [
            RouterParams(scoring: .softmax, topK: 2, renormalize: true),
            RouterParams(scoring: .softmax, topK: 3, renormalize: false, routedScale: 2),
            RouterParams(scoring: .sigmoid, topK: 2, nGroup: 4, topkGroup: 2, renormalize: true, routedScale: 2.5, hasBias: true),
            RouterParams(scoring: .sigmoid, topK: 3, nGroup: 2, topkGroup: 1, renormalize: true),
        ]
        return try configs.map { p in
            var inputs = [try HostTensor([rows.count, 8], dtype, floats: rows.flatMap { $0 })]
            if p.hasBias { inputs.append(try HostTensor([8], .f32, floats: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08])) }
            let label = "non-finite logits: T4 E8 k\(p.topK) \(p.scoring) g\(p.nGroup)/\(p.topkGroup)\(p.hasBias ? " bias" : "")"
            return ConformanceCase(op: .moeRouter(p), inputs: inputs, dtype: dtype, label: label, seed: seed)
        }
    }
}
