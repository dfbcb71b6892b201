import PolychipCore
import PolychipReference

/// One conformance case: a kernel call with concrete inputs.
public struct ConformanceCase: Sendable {
    /// The kernel and its parameters.
    public var op: Op
    /// Inputs, already in the case's dtype.
    public var inputs: [HostTensor]
    /// The activation dtype under test.
    public var dtype: DType
    /// Short shape/parameter label for reports.
    public var label: String
    /// The seed the inputs came from.
    public var seed: UInt64
    /// Upload every input at an odd element offset inside a larger buffer (a view).
    public var offsetViews = false
    /// Float outputs must equal the reference's bit for bit (the rounding-tie cases, whose
    /// exact results one correctly rounded operation reproduces), not only pass the NMSE.
    public var exact = false

    /// Creates a case.
    public init(op: Op, inputs: [HostTensor], dtype: DType, label: String, seed: UInt64) {
        self.op = op; self.inputs = inputs; self.dtype = dtype; self.label = label; self.seed = seed
    }
}

/// How many cases `polychip conform` runs.
public enum ConformanceLevel: String, Sendable, Hashable, Codable, CaseIterable {
    /// The fixed hand-picked cases only: a smoke test in seconds.
    case quick
    /// Quick plus the boundary shapes of the device's tiling (one below, one above and a
    /// multi-block size with a remainder, per block size and threshold) and the adversarial
    /// cases: what CI runs on every backend.
    case standard
    /// Standard plus every boundary value (1, b−1, b, b+1, 2b, 3b+r) on every base shape,
    /// pairs of boundaries, and every adversarial case in every dtype: before a release.
    case thorough

    /// Largest reference cost (FLOPs) of a derived case; larger ones are skipped and counted.
    public var costBudget: Double {
        switch self {
        case .quick: return .infinity
        case .standard: return 2e7
        case .thorough: return 2e8
        }
    }
}

/// Generates seeded cases per kernel and dtype: the fixed quick set (edge shapes: 1, odd
/// sizes, long rows), the boundary shapes derived from a device's tiling, and adversarial
/// inputs. Inputs are never zeros.
public enum CaseGenerator {
    /// The dtypes a kernel is checked with (its activation dtype).
    public static func dtypes(for kind: OpKind) -> [DType] {
        kind == .topK ? [.f32] : DType.floats
    }

    /// The quick cases of `kind` in `dtype` (the fixed set).
    public static func cases(_ kind: OpKind, dtype: DType, seed: UInt64) throws -> [ConformanceCase] {
        try quickSpecs(kind).map { try CaseBuilder.make($0, dtype: dtype, seed: seed) }
    }

    /// Every case of `kind` in `dtype` at `level` for a device with `tiling`: the quick set,
    /// then (standard and thorough) the boundary and adversarial cases, without duplicates.
    /// `skipped` counts derived cases over the level's cost budget.
    public static func cases(_ kind: OpKind, dtype: DType, seed: UInt64, level: ConformanceLevel,
                             tiling: DeviceTiling, skipped: inout Int) throws -> [ConformanceCase] {
        var specs = quickSpecs(kind)
        let quick = specs.count
        if level != .quick {
            specs += BoundaryCases.specs(kind, tiling: tiling, level: level)
            specs += AdversarialCases.specs(kind, tiling: tiling, level: level, dtype: dtype)
        }
        var seen = Set<String>()
        var out: [ConformanceCase] = []
        for (i, spec) in specs.enumerated() {
            let normalized = CaseBuilder.normalized(spec)
            let key = "\(normalized.op)|\(normalized.dims.sorted { $0.key < $1.key })|\(normalized.pattern)|\(normalized.offsetViews)"
            guard seen.insert(key).inserted else { continue }
            if i >= quick, referenceCost(normalized, dtype) > level.costBudget { skipped += 1; continue }
            out.append(try CaseBuilder.make(spec, dtype: dtype, seed: seed))
        }
        return out
    }

    /// The reference's work for a spec, before any data exists: the catalog's FLOPs plus
    /// one per input element.
    static func referenceCost(_ s: CaseSpec, _ dtype: DType) -> Double {
        let descs = CaseBuilder.inputDescs(s, dtype: dtype)
        return s.op.cost(descs).flops + Double(descs.reduce(0) { $0 + $1.elementCount })
    }

    /// The fixed quick cases of `kind`.
    public static func quickSpecs(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .matmul:
            return [(1, 1, 1, false), (7, 13, 5, false), (33, 65, 17, true), (64, 96, 80, false), (1, 300, 129, true), (70, 9, 130, true)].map {
                CaseSpec(.matmul(transposeB: $0.3), ["M": $0.0, "K": $0.1, "N": $0.2])
            }
        case .groupedMatmul:
            return [(1, 8, 4, 1, false), (37, 24, 19, 4, true), (64, 33, 40, 6, false)].map {
                CaseSpec(.groupedMatmul(transposeB: $0.4), ["T": $0.0, "K": $0.1, "N": $0.2, "E": $0.3])
            }
        case .rmsNorm:
            return [["D": 1], ["R": 3, "D": 7], ["L": 2, "R": 5, "D": 64], ["R": 4, "D": 4099]].map { CaseSpec(.rmsNorm(eps: 1e-6), $0) }
        case .softmax, .silu, .scale:
            let op: Op = kind == .softmax ? .softmax : kind == .silu ? .silu : .scale(alpha: 0.731)
            return [["D": 1], ["R": 5, "D": 33], ["L": 3, "R": 2, "D": 129], ["R": 2, "D": 5000]].map { CaseSpec(op, $0) }
        case .swiglu, .add:
            let op: Op = kind == .swiglu ? .swiglu : .add
            return [["D": 1], ["R": 7, "D": 31], ["L": 2, "R": 3, "D": 257], ["R": 1, "D": 4100]].map { CaseSpec(op, $0) }
        case .rope:
            return [(1, 1, 2, RopeStyle.neox, 0), (5, 3, 64, .neox, 0), (7, 2, 64, .gptj, 0), (4, 2, 96, .neox, 64), (3, 1, 34, .gptj, 18)].map {
                CaseSpec(.rope(RopeParams(style: $0.3, base: 10000, rotaryDim: $0.4 > 0 ? $0.4 : nil)), ["T": $0.0, "H": $0.1, "D": $0.2, "Rd": $0.4])
            }
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
        case .sparseAttention:
            return [(1, 1, 1, 1, 8, 8, 1), (6, 4, 1, 20, 16, 16, 8), (9, 4, 2, 9, 32, 24, 12), (4, 2, 1, 64, 64, 64, 40)].map {
                CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)),
                         ["T": $0.0, "H": $0.1, "Hkv": $0.2, "S": $0.3, "D": $0.4, "Dv": $0.5, "k": $0.6])
            }
        case .moeRouter:
            let configs: [(Int, Int, RouterParams)] = [
                (1, 1, RouterParams(scoring: .softmax, topK: 1, renormalize: false)),
                (9, 16, RouterParams(scoring: .softmax, topK: 4, renormalize: true)),
                (7, 64, RouterParams(scoring: .sigmoid, topK: 8, nGroup: 8, topkGroup: 4, renormalize: true, routedScale: 2.5, hasBias: true)),
                (5, 12, RouterParams(scoring: .sigmoid, topK: 3, nGroup: 4, topkGroup: 2, renormalize: false, routedScale: 1.5, hasBias: true)),
            ]
            return configs.map { CaseSpec(.moeRouter($0.2), ["T": $0.0, "E": $0.1]) }
        case .moePermute:
            return [(1, 1, 1, 1), (9, 7, 2, 4), (33, 16, 8, 64)].map {
                CaseSpec(.moePermute(numExperts: $0.3), ["T": $0.0, "H": $0.1, "k": $0.2, "E": $0.3])
            }
        case .moeCombine:
            return [(1, 1, 1), (9, 7, 2), (20, 33, 8)].map { CaseSpec(.moeCombine, ["T": $0.0, "H": $0.1, "k": $0.2]) }
        case .moeLayer:
            let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2.5, hasBias: true)
            let configs: [(Int, Int, Int, Int, ExpertFormat, Bool, RouterParams)] = [
                (1, 8, 4, 1, .float, false, RouterParams(scoring: .softmax, topK: 1)),
                (11, 16, 8, 4, .float, true, router),
                (6, 32, 16, 4, .int4(Int4Format(groupSize: 16, symmetric: true)), true, router),
                (5, 32, 8, 4, .int4(Int4Format(groupSize: 8, symmetric: false)), false, RouterParams(scoring: .softmax, topK: 2)),
            ]
            return configs.map { (t, h, ff, e, fmt, shared, rp) in
                CaseSpec(.moeLayer(MoELayerParams(router: rp, experts: fmt, hasShared: shared)), ["T": t, "H": h, "F": ff, "E": e])
            }
        case .quantizeInt4:
            return [(1, 2, 2, true), (5, 64, 32, true), (7, 96, 32, false), (3, 256, 128, false), (4, 48, 16, true)].map {
                CaseSpec(.quantizeInt4(Int4Format(groupSize: $0.2, symmetric: $0.3)), ["N": $0.0, "K": $0.1])
            } + [CaseSpec(.quantizeInt4(Int4Format(groupSize: 32, symmetric: false)), ["N": 3, "K": 64], note: "one-sided groups")]
        case .dequantizeInt4:
            return [(1, 2, 2, true), (5, 64, 32, false), (9, 384, 128, true)].map {
                // The output dtype is the case's dtype; CaseBuilder.make sets it.
                CaseSpec(.dequantizeInt4(Int4Format(groupSize: $0.2, symmetric: $0.3), output: .f32), ["N": $0.0, "K": $0.1])
            }
        case .int4Matmul:
            return [(1, 1, 2, 2, true), (1, 33, 256, 32, true), (2, 21, 192, 64, false), (3, 17, 128, 64, false), (8, 40, 96, 32, true),
                    (37, 24, 256, 128, false)].map {
                CaseSpec(.int4Matmul(Int4Format(groupSize: $0.3, symmetric: $0.4)), ["M": $0.0, "N": $0.1, "K": $0.2])
            }
        case .int4GroupedMatmul:
            return [(1, 4, 32, 1, 32, true), (29, 20, 64, 4, 32, false), (40, 16, 128, 8, 64, true)].map {
                CaseSpec(.int4GroupedMatmul(Int4Format(groupSize: $0.4, symmetric: $0.5)), ["T": $0.0, "N": $0.1, "K": $0.2, "E": $0.3])
            }
        }
    }

    /// Random segment offsets for `rows` rows over `experts` experts, some segments empty.
    public static func offsets(_ rows: Int, _ experts: Int, _ r: inout SeededRandom) throws -> HostTensor {
        var cuts = (0..<(experts - 1)).map { _ in r.int(0..<(rows + 1)) }.sorted()
        cuts = [0] + cuts + [rows]
        return try HostTensor([experts + 1], int32s: cuts.map { Int32($0) })
    }

    /// `k` distinct expert ids per token, as a router produces them.
    public static func distinctIDs(_ t: Int, _ k: Int, _ e: Int, _ r: inout SeededRandom) -> [Int32] {
        (0..<t).flatMap { _ in Array(0..<e).shuffled(using: &r).prefix(k).map { Int32($0) } }
    }

    /// Random INT4 weights `[lead..., n, k]`: every nibble value, positive scales, valid zero points.
    public static func int4Weights(_ lead: [Int], _ n: Int, _ k: Int, _ f: Int4Format, _ r: inout SeededRandom) throws -> [HostTensor] {
        let count = lead.reduce(1, *) * n * k
        let groups = lead.reduce(1, *) * n * (k / f.groupSize)
        let nibbles = (0..<count).map { _ in UInt8(r.int(0..<16)) }
        var out = [try HostTensor(TensorDesc(lead + [n, k], .int4), bytes: Int4Packing.pack(nibbles)),
                   try HostTensor(lead + [n, k / f.groupSize], .f32, floats: (0..<groups).map { _ in Float.random(in: 0.005...0.05, using: &r) })]
        if !f.symmetric { out.append(try HostTensor(lead + [n, k / f.groupSize], int8s: (0..<groups).map { _ in Int8(r.int(0..<16)) })) }
        return out
    }
}
