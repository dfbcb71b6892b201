extension OpKind {
    /// Conformance threshold on NMSE = Σ(a−b)²/Σa² for float outputs of this kernel
    /// in `dtype` (docs/kernels.md, "Conformance tolerances").
    public func tolerance(_ dtype: DType) -> Double {
        let table: (f32: Double, f16: Double, bf16: Double)
        switch self {
        case .rmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale, .moeRouter, .moePermute, .moeCombine,
             .quantizeInt4, .dequantizeInt4, .topK:
            table = (1e-10, 1e-6, 2e-5)
        case .matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul, .attention, .lightningIndexer, .sparseAttention:
            table = (1e-9, 5e-6, 1e-4)
        case .moeLayer:
            table = (1e-8, 5e-5, 1e-3)
        }
        switch dtype {
        case .f16: return table.f16
        case .bf16: return table.bf16
        default: return table.f32
        }
    }
}
