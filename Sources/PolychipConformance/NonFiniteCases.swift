import PolychipCore

/// Conformance cases with NaN and ±Inf inputs, for every kernel whose non-finite behaviour
/// docs/kernels.md defines ("Non-finite inputs"); ``CaseGenerator/specs(_:dtype:level:tiling:skipped:)``
/// adds them to every level, so every backend, worker process and case bundle is held to the
/// same rules (issue 14: OpenCL gave `lse = −inf` for a NaN query and NaN router weights for a
/// `+inf` logit while the random, finite cases all passed).
///
/// Most cases are the first three quick specs of a kernel (same shapes, so no new device
/// programs) with pattern ``InputPattern/nonFinite``: NaN, `+inf` and `−inf` written into one
/// float input of the seeded values. The router gets hand-made rows
/// (``InputPattern/nonFiniteLogits``) because NaN logits leave its choice unspecified.
/// `quantizeInt4` has none: its encoding of a non-finite group is unspecified.
public enum NonFiniteCases {
    /// The non-finite specs of `kind`, in the order the suite runs them.
    public static func specs(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .quantizeInt4: return []
        case .moeRouter: return routerSpecs()
        default: break
        }
        return CaseGenerator.quickSpecs(kind).prefix(3).compactMap { base in
            var s = base
            s.pattern = .nonFinite
            return target(s) == nil ? nil : s
        }
    }

    /// The non-finite cases of `kind` in `dtype`, built.
    public static func cases(_ kind: OpKind, dtype: DType, seed: UInt64) throws -> [ConformanceCase] {
        try specs(kind).map { try CaseBuilder.make($0, dtype: dtype, seed: seed) }
    }

    /// The input a non-finite case poisons: the first float input with at least two elements
    /// (moeLayer: an expert weight, not x — NaN tokens would make the routing, and so which rows
    /// are NaN, unspecified). Nil when the kernel has none.
    static func target(_ spec: CaseSpec) -> Int? {
        let s = CaseBuilder.normalized(spec)
        let descs = CaseBuilder.inputDescs(s, dtype: .f32)
        let i: Int?
        if case .moeLayer = s.op {
            i = s.op.inputNames.firstIndex { $0 == "gate" || $0 == "gate.scales" }
        } else {
            i = descs.firstIndex { $0.dtype.isFloat }
        }
        guard let i, i < descs.count, descs[i].elementCount >= 2 else { return nil }
        return i
    }

    /// `t` with NaN, `+inf` and `−inf` at elements 1, 4 and 7 (those that exist).
    static func poisoned(_ t: HostTensor) throws -> HostTensor {
        var v = t.floats
        for (j, special) in [Float.nan, .infinity, -.infinity].enumerated() where 3 * j + 1 < v.count { v[3 * j + 1] = special }
        return try HostTensor(t.desc.shape, t.desc.dtype, floats: v)
    }

    /// Router specs: the rows of ``routerRows(t:e:)`` under softmax and sigmoid scoring, with
    /// and without groups and bias.
    static func routerSpecs() -> [CaseSpec] {
        let configs: [RouterParams] = [
            RouterParams(scoring: .softmax, topK: 2, renormalize: true),
            RouterParams(scoring: .softmax, topK: 3, renormalize: false, routedScale: 2),
            RouterParams(scoring: .sigmoid, topK: 2, nGroup: 4, topkGroup: 2, renormalize: true, routedScale: 2.5, hasBias: true),
            RouterParams(scoring: .sigmoid, topK: 3, nGroup: 2, topkGroup: 1, renormalize: true),
        ]
        return configs.map { CaseSpec(.moeRouter($0), ["T": 4, "E": 8], pattern: .nonFiniteLogits) }
    }

    /// Router logits `[t, e]`: a `+inf` logit, two `+inf` logits (they share the mass), an
    /// all-`−inf` row, `−inf` entries; rows and columns past 4 × 8 repeat them.
    static func routerRows(t: Int, e: Int) -> [Float] {
        let inf = Float.infinity
        let rows: [[Float]] = [
            [1, 2, inf, 0, 0.5, 0.25, 3, 1.5],
            [inf, 0.5, 1, inf, 2, 0.1, 0.2, 0.3],
            [-inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf],
            [0.5, -inf, 2, -inf, 1, 0.75, -inf, 0.25],
        ]
        return (0..<t).flatMap { r in (0..<e).map { rows[r % 4][$0 % 8] } }
    }
}
