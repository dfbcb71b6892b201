/// A class of kernels that share an implementation strategy, and so a fraction of the
/// device's roofline: the key of a profile's optional `kernelEfficiency` table.
///
/// The time model prices every kernel from its catalog cost (FLOPs and minimum bytes) at the
/// unit's peak and the memory bandwidth. That is a good floor for GEMM-shaped work but not for
/// kernels whose time goes into work the FLOP count does not see — the exp and rescaling of an
/// online softmax, heap operations of a top-k, gathers of scattered rows, several passes over a
/// row. A class's efficiency is the achieved fraction of the roofline that such a kernel
/// reaches; `polychip calibrate` measures it with one or two kernels of the class on shapes of
/// its own (docs/device-profiles.md, "Kernel-class efficiency").
public enum KernelClass: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// Dense GEMM microkernels: `matmul`, `grouped-matmul`, `lightning-indexer` (a GEMM of
    /// queries and keys with a ReLU epilogue) and `moe-layer` (its time is the expert GEMMs).
    /// The matrix unit's peak is measured on square GEMMs, so this class's efficiency is 1
    /// unless a profile says otherwise.
    case gemm
    /// GEMMs and GEMVs that dequantise INT4 weights in registers: `int4-matmul`,
    /// `int4-grouped-matmul`. `polychip calibrate` measures `memory.readBandwidth` on INT4
    /// GEMVs, so it writes no entry for this class.
    case int4Gemm
    /// Dense fused attention with an online softmax (exp and rescaling per score): `attention`.
    case attention
    /// Attention over gathered (top-k selected) keys: `sparse-attention`.
    case sparseAttention
    /// Element-wise kernels, one pass: `silu`, `swiglu`, `rope`, `add`, `scale`,
    /// `moe-permute`, `moe-combine`. The vector unit's peak is measured on `silu`/`swiglu`.
    case elementwise
    /// Row normalisation (a sum-of-squares pass, then a scaling pass): `rms-norm`,
    /// `add-rms-norm`.
    case normalization
    /// Row-wise softmax: max, exp-and-sum and scaling passes, an exp per element: `softmax`.
    case softmax
    /// Per-row selection (a heap per row): `top-k`.
    case selection
    /// MoE routing: scoring (exp), group selection and top-k per token: `moe-router`.
    case routing
    /// Group-wise INT4 quantisation and dequantisation: `quantize-int4`, `dequantize-int4`.
    case quantization

    /// The class of a catalog kernel (from its family's descriptor).
    public init(_ kind: OpKind) { self = kind.descriptor.timeClass }

    /// The catalog kernels of this class.
    public var kernels: [OpKind] { OpKind.allCases.filter { KernelClass($0) == self } }

    /// The class's name (the profile key).
    public var description: String { rawValue }
}
