import PolychipCore

/// How the weights are stored and which dtype the GEMMs compute in.
public enum WeightScheme: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Every linear layer INT4 (native symmetric layout, f32 scale per group) with bf16
    /// activations (W4A16); embeddings, LM head and norms bf16.
    case int4
    /// GLM-5's serving recipe: routed and shared experts INT4 with int8 activations (W4A8),
    /// attention and dense FFN int8 (W8A8); embeddings, LM head and norms bf16.
    case w4a8
    /// Everything bf16.
    case bf16

    public var description: String {
        switch self {
        case .int4: return "int4 (W4A16: INT4 linear weights, bf16 activations)"
        case .w4a8: return "w4a8 (experts INT4 × int8 activations, attention/dense int8 W8A8)"
        case .bf16: return "bf16"
        }
    }
}

/// Which part of the model a weight belongs to (decides its storage under a ``WeightScheme``).
public enum WeightKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// Attention projections (MLA, DSA indexer).
    case attention
    /// Dense FFN layers.
    case dense
    /// Routed experts.
    case experts
    /// Shared experts.
    case shared
    /// Router weight and bias.
    case router
    /// Embedding table and LM head.
    case embedding
    /// Norm weights.
    case norm
}

extension WeightScheme {
    /// Bytes per parameter of `kind` with INT4 group size `groupSize` (f32 scale per group).
    public func bytesPerParam(_ kind: WeightKind, groupSize: Int) -> Double {
        let int4 = 0.5 + 4.0 / Double(max(1, groupSize))
        switch (self, kind) {
        case (_, .embedding), (_, .norm), (_, .router), (.bf16, _): return 2
        case (.int4, _): return int4
        case (.w4a8, .experts), (.w4a8, .shared): return int4
        case (.w4a8, .attention), (.w4a8, .dense): return 1
        }
    }
}

/// How a weight is stored under a ``WeightScheme``.
public enum WeightStorage: String, Sendable, Hashable, Codable {
    /// In the activations' float dtype.
    case float
    /// int8 weights with int8 activations (W8A8; priced by the simulator, run as float GEMMs by
    /// the executable stack, since the catalog has no int8 GEMM).
    case int8
    /// INT4, native symmetric layout with an f32 scale per group.
    case int4
}

extension WeightScheme {
    /// Where a weight of `kind` is stored: the rule both the simulator and the executable stack use.
    public func storage(_ kind: WeightKind) -> WeightStorage {
        switch (self, kind) {
        case (.bf16, _), (_, .embedding), (_, .router), (_, .norm): return .float
        case (.w4a8, .attention), (.w4a8, .dense): return .int8
        default: return .int4
        }
    }

    /// The INT4 group size of a weight with `k` input features: `preferred` where it divides
    /// `k`, else the whole row (even `k`), else 2.
    public static func int4Group(k: Int, preferred: Int) -> Int {
        k % preferred == 0 ? preferred : (k % 2 == 0 ? k : 2)
    }
}

/// The phase a step models.
public enum SimulationPhase: String, Sendable, Hashable, Codable, CaseIterable {
    /// Process `context` prompt tokens of each of `batch` sequences (time to first token).
    case prefill
    /// Generate one token for each of `batch` sequences that already hold `context` tokens.
    case decode
}

/// How tokens pick experts in the model (the router's real choices are data; the simulator samples).
public enum RoutingModel: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Each token picks `k` distinct experts uniformly at random (seeded): the natural
    /// statistical imbalance of a well-trained, load-balanced router.
    case uniform
    /// Exactly even counts: the best case.
    case balanced
    /// Expert popularity ∝ 1/rankˢ (a random ranking per layer): skewed routing.
    case zipf(Double)

    /// Parses `uniform`, `balanced` or `zipf:S`.
    public static func parse(_ s: String) throws -> RoutingModel {
        switch s {
        case "uniform": return .uniform
        case "balanced": return .balanced
        default:
            if s.hasPrefix("zipf:"), let v = Double(s.dropFirst(5)), v.isFinite, v >= 0 { return .zipf(v) }
            throw PolychipError.invalidArgument(kernel: "simulate", argument: "--routing",
                                                reason: "expected uniform, balanced or zipf:S (S ≥ 0), got \(Quoted(s))")
        }
    }

    public var description: String {
        switch self {
        case .uniform: return "uniform"
        case .balanced: return "balanced"
        case .zipf(let s): return "zipf:\(s)"
        }
    }
}

/// A parallel plan: `pp` pipeline stages of `tp × dp` devices each; attention, dense FFN and
/// shared expert are tensor-parallel over `tp` and data-parallel over `dp`; routed experts are
/// expert-parallel over `ep` with expert tensor parallelism `etp = tp·dp / ep`.
public struct ParallelPlan: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Tensor parallelism of attention / dense / shared expert.
    public var tp: Int
    /// Data parallelism of attention / dense / shared expert (inside a stage).
    public var dp: Int
    /// Expert parallelism.
    public var ep: Int
    /// Pipeline stages.
    public var pp: Int

    /// Devices per stage.
    public var stageSize: Int { tp * dp }
    /// Expert tensor parallelism (each expert split over this many devices).
    public var etp: Int { stageSize / ep }
    /// Devices in all.
    public var world: Int { stageSize * pp }

    /// Creates a plan (unchecked; see ``resolve(world:model:tp:dp:ep:pp:)``).
    public init(tp: Int, dp: Int, ep: Int, pp: Int) { self.tp = tp; self.dp = dp; self.ep = ep; self.pp = pp }

    public var description: String {
        "TP \(tp) · DP \(dp) · EP \(ep)\(etp > 1 ? " (ETP \(etp))" : "") · PP \(pp)"
    }

    /// Fills in the unspecified degrees and checks the plan against the model and `world`.
    /// Defaults: `pp = 1`; `tp` = the devices of a node (so TP stays inside a node) or of a
    /// stage, whichever is smaller, and `dp` the rest, unless one of them is given; `ep = stage size`.
    public static func resolve(world: Int, model: MoEModelConfig, tp: Int?, dp: Int?, ep: Int?, pp: Int?,
                               devicesPerNode: Int? = nil) throws -> ParallelPlan {
        func bad(_ a: String, _ r: String) -> PolychipError { .invalidArgument(kernel: "simulate", argument: a, reason: r) }
        guard world >= 1, world <= SimulationLimits.maxWorld else {
            throw bad("--devices", "the plan needs 1…\(SimulationLimits.maxWorld) devices in all, got \(world)")
        }
        if let devicesPerNode, devicesPerNode < 1 { throw bad("--devices", "must be ≥ 1, got \(devicesPerNode)") }
        for (n, v) in [("--tp", tp), ("--dp", dp), ("--ep", ep), ("--pp", pp)] {
            if let v, v < 1 || v > world { throw bad(n, "must be in 1…\(world) (the devices in all), got \(v)") }
        }
        let p = pp ?? 1
        guard world % p == 0 else { throw bad("--pp", "\(p) stages do not divide the \(world) devices") }
        guard p <= model.numLayers else { throw bad("--pp", "\(p) stages for \(model.numLayers) layers") }
        let s = world / p
        let t: Int, d: Int
        switch (tp, dp) {
        case let (t0?, d0?): t = t0; d = d0
        case let (t0?, nil): t = t0; d = s / max(1, t0)
        case let (nil, d0?): d = d0; t = s / max(1, d0)
        case (nil, nil):
            let node = min(s, devicesPerNode ?? s)
            t = s % node == 0 && model.heads % node == 0 ? node : s
            d = s / t
        }
        guard t >= 1, d >= 1, t.multipliedReportingOverflow(by: d) == (s, false) else { throw bad("--tp", "TP \(t) × DP \(d) must equal the \(s) devices of a stage (\(world) devices / PP \(p))") }
        guard model.heads % t == 0 else { throw bad("--tp", "TP \(t) does not divide the \(model.heads) attention heads") }
        let e = ep ?? s
        guard s % e == 0 else { throw bad("--ep", "EP \(e) does not divide the \(s) devices of a stage") }
        guard model.routedExperts % e == 0 else { throw bad("--ep", "EP \(e) does not divide the \(model.routedExperts) experts") }
        guard model.moeIntermediate % (s / e) == 0 else {
            throw bad("--ep", "expert TP \(s / e) does not divide the expert intermediate size \(model.moeIntermediate)")
        }
        return ParallelPlan(tp: t, dp: d, ep: e, pp: p)
    }
}
