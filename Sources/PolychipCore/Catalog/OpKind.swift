/// Every kernel in the catalog, by name. See docs/kernels.md for the semantics.
public enum OpKind: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case matmul, groupedMatmul
    case rmsNorm, softmax, silu, swiglu, rope, add, scale
    case attention
    case lightningIndexer, topK, sparseAttention
    case moeRouter, moePermute, moeCombine, moeLayer
    case quantizeInt4, dequantizeInt4, int4Matmul, int4GroupedMatmul
    // Later additions go last: the order is the plugin ABI's kernel ids (polychip_backend.h).
    case addRmsNorm

    /// The kebab-case name used on the command line and in records (`int4-matmul`).
    public var name: String {
        var out = ""
        for ch in rawValue {
            if ch.isUppercase { out += "-" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    /// Looks a kernel up by its kebab-case or camelCase name.
    public init?(name: String) {
        if let k = OpKind(rawValue: name) { self = k; return }
        guard let k = OpKind.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = k
    }

    /// The family the kernel belongs to (cost model unit and tolerance class).
    public var family: OpFamily {
        switch self {
        case .matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul: return .linearAlgebra
        case .rmsNorm, .addRmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale: return .elementwise
        case .attention, .sparseAttention, .lightningIndexer: return .attention
        case .topK, .moeRouter, .moePermute, .moeCombine: return .routing
        case .moeLayer: return .composite
        case .quantizeInt4, .dequantizeInt4: return .quantization
        }
    }

    /// Which family file under `Catalog/` describes the kernel (``descriptor``).
    var familyType: any KernelFamily.Type {
        switch self {
        case .matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul: return MatmulKernels.self
        case .rmsNorm, .addRmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale: return ElementwiseKernels.self
        case .attention, .lightningIndexer, .topK, .sparseAttention: return AttentionKernels.self
        case .moeRouter, .moePermute, .moeCombine, .moeLayer: return MoEKernels.self
        case .quantizeInt4, .dequantizeInt4: return QuantizationKernels.self
        }
    }

    public var description: String { name }
}

/// Kernel families: they share a compute unit in the time model and a tolerance class.
public enum OpFamily: String, Sendable, Hashable, Codable {
    case linearAlgebra, elementwise, attention, routing, composite, quantization
}

/// Which unit of an accelerator runs a kernel in the time model.
public enum ComputeUnit: String, Sendable, Hashable, Codable {
    /// Matrix engine (tensor cores, Ascend cube unit).
    case matrix
    /// Vector / SIMT unit.
    case vector
}

/// A GEMM-shaped piece of work, for tile padding in the time model.
public struct GemmShape: Sendable, Hashable, Codable {
    public var m: Int, n: Int, k: Int, batch: Int
    /// Creates a GEMM shape (`batch` independent problems of `m×n×k`).
    public init(m: Int, n: Int, k: Int, batch: Int = 1) { self.m = m; self.n = n; self.k = k; self.batch = batch }
}

/// The cost model of one kernel call: arithmetic and minimum traffic.
public struct Cost: Sendable, Hashable, Codable {
    /// Floating-point (or integer multiply-add) operations.
    public var flops: Double
    /// Minimum bytes moved between memory and the compute units (each operand once).
    public var bytes: Double
    /// The unit that does the bulk of the work.
    public var unit: ComputeUnit
    /// GEMM shapes for matrix-engine work (tile padding); empty for vector work.
    public var gemms: [GemmShape]
    /// Dtype the arithmetic runs in (the storage dtype of the activations).
    public var dtype: DType

    /// Creates a cost.
    public init(flops: Double, bytes: Double, unit: ComputeUnit, gemms: [GemmShape] = [], dtype: DType) {
        self.flops = flops; self.bytes = bytes; self.unit = unit; self.gemms = gemms; self.dtype = dtype
    }

    /// FLOPs per byte.
    public var intensity: Double { bytes > 0 ? flops / bytes : 0 }
}
