import CPolychipPluginABI
import PolychipCore

// The one place where catalog kernels become ABI values: kernel ids, dtypes and the per-family
// parameter structs of `polychip_op` (backends/plugin/abi/include/polychip_backend.h). Every switch
// here is exhaustive over `Op`/`OpKind`/`DType`, so a kernel added to the catalog does not
// compile until it has an ABI id and its parameters have a family.

/// Conversions between catalog values and the plugin ABI's C values.
public enum PluginABI {
    /// The ABI version this host speaks.
    public static let version = UInt32(POLYCHIP_BACKEND_ABI_VERSION)

    /// The ABI id of a kernel (`polychip_kernel`).
    public static func kernelID(_ kind: OpKind) -> UInt32 {
        let k: polychip_kernel
        switch kind {
        case .matmul: k = POLYCHIP_KERNEL_MATMUL
        case .groupedMatmul: k = POLYCHIP_KERNEL_GROUPED_MATMUL
        case .rmsNorm: k = POLYCHIP_KERNEL_RMS_NORM
        case .addRmsNorm: k = POLYCHIP_KERNEL_ADD_RMS_NORM
        case .softmax: k = POLYCHIP_KERNEL_SOFTMAX
        case .silu: k = POLYCHIP_KERNEL_SILU
        case .swiglu: k = POLYCHIP_KERNEL_SWIGLU
        case .rope: k = POLYCHIP_KERNEL_ROPE
        case .add: k = POLYCHIP_KERNEL_ADD
        case .scale: k = POLYCHIP_KERNEL_SCALE
        case .attention: k = POLYCHIP_KERNEL_ATTENTION
        case .lightningIndexer: k = POLYCHIP_KERNEL_LIGHTNING_INDEXER
        case .topK: k = POLYCHIP_KERNEL_TOP_K
        case .sparseAttention: k = POLYCHIP_KERNEL_SPARSE_ATTENTION
        case .moeRouter: k = POLYCHIP_KERNEL_MOE_ROUTER
        case .moePermute: k = POLYCHIP_KERNEL_MOE_PERMUTE
        case .moeCombine: k = POLYCHIP_KERNEL_MOE_COMBINE
        case .moeLayer: k = POLYCHIP_KERNEL_MOE_LAYER
        case .quantizeInt4: k = POLYCHIP_KERNEL_QUANTIZE_INT4
        case .dequantizeInt4: k = POLYCHIP_KERNEL_DEQUANTIZE_INT4
        case .int4Matmul: k = POLYCHIP_KERNEL_INT4_MATMUL
        case .int4GroupedMatmul: k = POLYCHIP_KERNEL_INT4_GROUPED_MATMUL
        }
        return k.rawValue
    }

    /// The ABI id of a dtype (`polychip_dtype`).
    public static func dtypeID(_ dtype: DType) -> Int32 {
        let d: polychip_dtype
        switch dtype {
        case .f32: d = POLYCHIP_DTYPE_F32
        case .f16: d = POLYCHIP_DTYPE_F16
        case .bf16: d = POLYCHIP_DTYPE_BF16
        case .i8: d = POLYCHIP_DTYPE_I8
        case .i32: d = POLYCHIP_DTYPE_I32
        case .int4: d = POLYCHIP_DTYPE_INT4
        }
        return Int32(d.rawValue)
    }

    /// The dtypes of a `dtype_mask`.
    static func dtypes(mask: UInt32) -> [DType] {
        DType.allCases.filter { mask & (1 << UInt32(dtypeID($0))) != 0 }
    }

    /// `op` as the ABI's `polychip_op`, with every default resolved from the inputs (the RoPE
    /// rotary dim, the attention scale), so a plugin never guesses one.
    public static func op(_ op: Op, inputs: [TensorDesc]) -> polychip_op {
        var o = polychip_op()
        o.struct_size = UInt32(MemoryLayout<polychip_op>.size)
        o.kernel = kernelID(op.kind)
        func headDim(_ input: Int) -> Double { Double(inputs.indices.contains(input) ? inputs[input].shape.last ?? 1 : 1) }
        switch op {
        case .matmul(let tb), .groupedMatmul(let tb):
            o.matmul.transpose_b = tb ? 1 : 0
        case .rmsNorm(let eps), .addRmsNorm(let eps):
            o.elementwise.eps = eps
        case .scale(let alpha):
            o.elementwise.alpha = alpha
        case .softmax, .silu, .swiglu, .add, .lightningIndexer, .moeCombine:
            break
        case .rope(let p):
            o.rope.style = Int32(p.style == .neox ? POLYCHIP_ROPE_NEOX.rawValue : POLYCHIP_ROPE_GPTJ.rawValue)
            o.rope.rotary_dim = Int32(clamping: p.rotaryDim ?? Int(headDim(0)))
            o.rope.base = p.base
        case .attention(let p):
            o.attention.causal = p.causal ? 1 : 0
            o.attention.return_lse = p.returnLSE ? 1 : 0
            o.attention.scale = p.scale ?? 1 / headDim(0).squareRoot()
        case .sparseAttention(let p):
            o.attention.return_lse = p.returnLSE ? 1 : 0
            o.attention.scale = p.scale ?? 1 / headDim(0).squareRoot()
        case .topK(let k):
            o.top_k.k = Int64(k)
        case .moeRouter(let p):
            o.router = router(p)
        case .moePermute(let e):
            o.moe.num_experts = Int32(clamping: e)
        case .moeLayer(let p):
            o.router = router(p.router)
            o.moe.has_shared = p.hasShared ? 1 : 0
            if case .int4(let f) = p.experts {
                o.moe.int4_experts = 1
                o.int4 = int4(f, output: nil)
            }
        case .quantizeInt4(let f), .int4Matmul(let f), .int4GroupedMatmul(let f):
            o.int4 = int4(f, output: nil)
        case .dequantizeInt4(let f, let out):
            o.int4 = int4(f, output: out)
        }
        return o
    }

    static func router(_ p: RouterParams) -> polychip_router_params {
        var r = polychip_router_params()
        r.scoring = Int32(p.scoring == .softmax ? POLYCHIP_ROUTER_SOFTMAX.rawValue : POLYCHIP_ROUTER_SIGMOID.rawValue)
        r.top_k = Int32(clamping: p.topK)
        r.n_group = Int32(clamping: p.nGroup)
        r.topk_group = Int32(clamping: p.topkGroup)
        r.renormalize = p.renormalize ? 1 : 0
        r.has_bias = p.hasBias ? 1 : 0
        r.routed_scale = p.routedScale
        return r
    }

    static func int4(_ f: Int4Format, output: DType?) -> polychip_int4_params {
        var p = polychip_int4_params()
        p.group_size = Int32(clamping: f.groupSize)
        p.symmetric = f.symmetric ? 1 : 0
        p.output_dtype = output.map(dtypeID) ?? dtypeID(.f32)
        return p
    }

    /// A tensor descriptor as a `polychip_tensor` view (`buffer` NULL for a query). The caller
    /// has checked the rank against `POLYCHIP_MAX_RANK`.
    static func tensor(_ desc: TensorDesc, name: UnsafePointer<CChar>?, buffer: OpaquePointer?, byteOffset: Int) -> polychip_tensor {
        var t = polychip_tensor()
        t.struct_size = UInt32(MemoryLayout<polychip_tensor>.size)
        t.dtype = dtypeID(desc.dtype)
        t.rank = Int32(desc.rank)
        withUnsafeMutableBytes(of: &t.shape) { raw in
            let dims = raw.bindMemory(to: Int64.self)
            for (i, d) in desc.shape.prefix(Int(POLYCHIP_MAX_RANK)).enumerated() { dims[i] = Int64(d) }
        }
        t.buffer = buffer
        t.byte_offset = UInt64(byteOffset)
        t.name = name
        return t
    }

    /// The device kind of a `polychip_device_kind`.
    static func deviceKind(_ raw: Int32) -> DeviceKind {
        switch UInt32(bitPattern: raw) {
        case POLYCHIP_DEVICE_CPU.rawValue: return .cpu
        case POLYCHIP_DEVICE_GPU.rawValue: return .gpu
        default: return .accelerator
        }
    }

    /// A `polychip_support` value with its reason as a ``Support``; an out-of-range value is
    /// unsupported, naming it.
    static func support(_ raw: Int32, reason: String) -> Support {
        switch UInt32(bitPattern: raw) {
        case POLYCHIP_SUPPORT_NATIVE.rawValue: return .native
        case POLYCHIP_SUPPORT_EMULATED.rawValue: return .emulated(reason.isEmpty ? "the plugin gave no reason" : reason)
        case POLYCHIP_SUPPORT_UNSUPPORTED.rawValue: return .unsupported(reason.isEmpty ? "the plugin gave no reason" : reason)
        default: return .unsupported("the plugin answered \(raw), not a polychip_support value")
        }
    }
}
