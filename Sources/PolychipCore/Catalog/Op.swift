/// RoPE pairing convention.
public enum RopeStyle: String, Sendable, Hashable, Codable, CaseIterable {
    /// Pairs `(i, i + R/2)` (GPT-NeoX, Llama).
    case neox
    /// Pairs `(2i, 2i + 1)` (GPT-J).
    case gptj
}

/// Parameters of ``Op/rope(_:)``.
public struct RopeParams: Sendable, Hashable, Codable {
    /// Pairing convention.
    public var style: RopeStyle
    /// θ base of the frequencies.
    public var base: Double
    /// Rotated dimensions R (even, ≤ D); `nil` means all of D.
    public var rotaryDim: Int?
    /// Creates RoPE parameters.
    public init(style: RopeStyle = .neox, base: Double = 10000, rotaryDim: Int? = nil) {
        self.style = style; self.base = base; self.rotaryDim = rotaryDim
    }
}

/// Parameters of ``Op/attention(_:)``.
public struct AttentionParams: Sendable, Hashable, Codable {
    /// Bottom-right aligned causal mask.
    public var causal: Bool
    /// Logit scale; `nil` means `1/sqrt(D)`.
    public var scale: Double?
    /// Also output the log-sum-exp per query row.
    public var returnLSE: Bool
    /// Creates attention parameters.
    public init(causal: Bool = false, scale: Double? = nil, returnLSE: Bool = false) {
        self.causal = causal; self.scale = scale; self.returnLSE = returnLSE
    }
}

/// Parameters of ``Op/sparseAttention(_:)``.
public struct SparseAttentionParams: Sendable, Hashable, Codable {
    /// Logit scale; `nil` means `1/sqrt(D)`.
    public var scale: Double?
    /// Also output the log-sum-exp per query row.
    public var returnLSE: Bool
    /// Creates sparse attention parameters.
    public init(scale: Double? = nil, returnLSE: Bool = false) { self.scale = scale; self.returnLSE = returnLSE }
}

/// Router scoring function.
public enum RouterScoring: String, Sendable, Hashable, Codable, CaseIterable { case softmax, sigmoid }

/// Parameters of ``Op/moeRouter(_:)`` (also used inside ``Op/moeLayer(_:)``).
public struct RouterParams: Sendable, Hashable, Codable {
    /// Scoring function applied to logits.
    public var scoring: RouterScoring
    /// Experts per token.
    public var topK: Int
    /// Number of expert groups (1 = no group limit).
    public var nGroup: Int
    /// Groups kept per token.
    public var topkGroup: Int
    /// Divide the chosen weights by their sum.
    public var renormalize: Bool
    /// Routed scaling factor applied last.
    public var routedScale: Double
    /// Whether a selection-bias input is present.
    public var hasBias: Bool
    /// Creates router parameters.
    public init(scoring: RouterScoring = .softmax, topK: Int, nGroup: Int = 1, topkGroup: Int = 1,
                renormalize: Bool = true, routedScale: Double = 1, hasBias: Bool = false) {
        self.scoring = scoring; self.topK = topK; self.nGroup = nGroup; self.topkGroup = topkGroup
        self.renormalize = renormalize; self.routedScale = routedScale; self.hasBias = hasBias
    }
}

/// A group-wise INT4 format (see docs/kernels.md, "Native INT4 layout").
public struct Int4Format: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Elements per scale group (even, divides K).
    public var groupSize: Int
    /// Symmetric (zero point 8, no zeros tensor) or asymmetric (i8 zeros tensor).
    public var symmetric: Bool
    /// Creates a format.
    public init(groupSize: Int = 32, symmetric: Bool = true) { self.groupSize = groupSize; self.symmetric = symmetric }
    public var description: String { "g\(groupSize)\(symmetric ? "-sym" : "-asym")" }
}

/// How MoE expert weights are stored.
public enum ExpertFormat: Sendable, Hashable, Codable {
    /// Float weights in the activation dtype.
    case float
    /// Native INT4 weights.
    case int4(Int4Format)
}

/// Parameters of ``Op/moeLayer(_:)``.
public struct MoELayerParams: Sendable, Hashable, Codable {
    /// Routing.
    public var router: RouterParams
    /// Expert weight storage.
    public var experts: ExpertFormat
    /// Whether a shared expert is present.
    public var hasShared: Bool
    /// Creates MoE layer parameters.
    public init(router: RouterParams, experts: ExpertFormat = .float, hasShared: Bool = false) {
        self.router = router; self.experts = experts; self.hasShared = hasShared
    }
}

/// One kernel of the catalog with its parameters. Inputs and outputs are positional;
/// ``inputNames`` and ``outputNames`` give their names (which depend on the parameters).
/// Codable (the synthesized form: `{"matmul": {"transposeB": true}}`), so a call can cross a
/// process boundary or be stored in a case bundle's manifest.
public enum Op: Sendable, Hashable, Codable {
    /// `a[M,K] · b` with `b[K,N]`, or `b[N,K]` when `transposeB`.
    case matmul(transposeB: Bool)
    /// One GEMM per expert segment of rows.
    case groupedMatmul(transposeB: Bool)
    /// RMS normalization over the last dimension.
    case rmsNorm(eps: Double)
    /// Fused residual add + RMSNorm: `h = x + residual`, `y = rmsNorm(h)·weight`; outputs
    /// `y` and the new residual `h`.
    case addRmsNorm(eps: Double)
    /// Row-wise stable softmax.
    case softmax
    /// `x·σ(x)`.
    case silu
    /// `silu(gate)·up`.
    case swiglu
    /// Rotary position embedding.
    case rope(RopeParams)
    /// Element-wise sum.
    case add
    /// Multiply by a constant.
    case scale(alpha: Double)
    /// Dense attention (GQA, causal bottom-right, optional LSE).
    case attention(AttentionParams)
    /// DSA lightning indexer scores.
    case lightningIndexer
    /// Row-wise top-k with the lower-index tie rule.
    case topK(k: Int)
    /// Attention over selected keys.
    case sparseAttention(SparseAttentionParams)
    /// MoE router.
    case moeRouter(RouterParams)
    /// Group token copies by expert.
    case moePermute(numExperts: Int)
    /// Weighted scatter-add of expert outputs back to tokens.
    case moeCombine
    /// The composite MoE layer.
    case moeLayer(MoELayerParams)
    /// Group-wise INT4 quantization.
    case quantizeInt4(Int4Format)
    /// INT4 to float.
    case dequantizeInt4(Int4Format, output: DType)
    /// W4A16 matmul against a weight `[N,K]`.
    case int4Matmul(Int4Format)
    /// W4A16 grouped matmul for MoE experts.
    case int4GroupedMatmul(Int4Format)

    /// The catalog entry.
    public var kind: OpKind {
        switch self {
        case .matmul: return .matmul
        case .groupedMatmul: return .groupedMatmul
        case .rmsNorm: return .rmsNorm
        case .addRmsNorm: return .addRmsNorm
        case .softmax: return .softmax
        case .silu: return .silu
        case .swiglu: return .swiglu
        case .rope: return .rope
        case .add: return .add
        case .scale: return .scale
        case .attention: return .attention
        case .lightningIndexer: return .lightningIndexer
        case .topK: return .topK
        case .sparseAttention: return .sparseAttention
        case .moeRouter: return .moeRouter
        case .moePermute: return .moePermute
        case .moeCombine: return .moeCombine
        case .moeLayer: return .moeLayer
        case .quantizeInt4: return .quantizeInt4
        case .dequantizeInt4: return .dequantizeInt4
        case .int4Matmul: return .int4Matmul
        case .int4GroupedMatmul: return .int4GroupedMatmul
        }
    }

    /// Names of the inputs this call takes, in order (from the kernel's family).
    public var inputNames: [String] { kind.familyType.inputNames(self) }

    /// Names of the outputs this call produces, in order.
    public var outputNames: [String] { kind.familyType.outputNames(self) }

    static func int4Names(prefix: String, _ f: Int4Format) -> [String] {
        f.symmetric ? [prefix + "q", prefix + "scales"] : [prefix + "q", prefix + "scales", prefix + "zeros"]
    }

    /// Descriptors of an INT4 weight `[lead..., n, k]`: codes, f32 scales, i8 zero points when asymmetric.
    static func int4Shapes(_ lead: [Int], _ n: Int, _ k: Int, _ f: Int4Format) -> [TensorDesc] {
        let g = lead + [n, k / max(1, f.groupSize)]
        return [TensorDesc(lead + [n, k], .int4), TensorDesc(g, .f32)] + (f.symmetric ? [] : [TensorDesc(g, .i8)])
    }

    /// The dtype a device's ``Device/supports(_:dtype:)`` is asked about: the activation dtype.
    public func primaryDType(_ inputs: [TensorDesc]) -> DType {
        switch self {
        case .dequantizeInt4(_, let out): return out
        case .moePermute: return inputs.first?.dtype ?? .f32
        case .moeCombine: return inputs.first?.dtype ?? .f32
        default: return inputs.first?.dtype ?? .f32
        }
    }
}
