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
    /// then (standard and thorough) the boundary and adversarial cases, without duplicates,
    /// then the non-finite cases (every level).
    /// `skipped` counts derived cases over the level's cost budget.
    public static func cases(_ kind: OpKind, dtype: DType, seed: UInt64, level: ConformanceLevel,
                             tiling: DeviceTiling, skipped: inout Int) throws -> [ConformanceCase] {
        try specs(kind, dtype: dtype, level: level, tiling: tiling, skipped: &skipped).map { try CaseBuilder.make($0, dtype: dtype, seed: seed) }
    }

    /// The specs behind ``cases(_:dtype:seed:level:tiling:skipped:)``, before any input exists
    /// (what a worker process or a case bundle is given): the one list of what the suite runs.
    public static func specs(_ kind: OpKind, dtype: DType, level: ConformanceLevel, tiling: DeviceTiling, skipped: inout Int) -> [CaseSpec] {
        var specs = quickSpecs(kind)
        let quick = specs.count
        if level != .quick {
            specs += BoundaryCases.specs(kind, tiling: tiling, level: level)
            specs += AdversarialCases.specs(kind, tiling: tiling, level: level, dtype: dtype)
        }
        var seen = Set<String>()
        var out: [CaseSpec] = []
        for (i, spec) in specs.enumerated() {
            let normalized = CaseBuilder.normalized(spec)
            let key = "\(normalized.op)|\(normalized.dims.sorted { $0.key < $1.key })|\(normalized.pattern)|\(normalized.offsetViews)"
            guard seen.insert(key).inserted else { continue }
            if i >= quick, referenceCost(normalized, dtype) > level.costBudget { skipped += 1; continue }
            out.append(spec)
        }
        return out + NonFiniteCases.specs(kind)
    }

    /// The reference's work for a spec, before any data exists: the catalog's FLOPs plus
    /// one per input element.
    static func referenceCost(_ s: CaseSpec, _ dtype: DType) -> Double {
        let descs = CaseBuilder.inputDescs(s, dtype: dtype)
        return s.op.cost(descs).flops + Double(descs.reduce(0) { $0 + $1.elementCount })
    }

    /// The fixed quick cases of `kind` (from its descriptor).
    public static func quickSpecs(_ kind: OpKind) -> [CaseSpec] { kind.descriptor.quickCases }

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
