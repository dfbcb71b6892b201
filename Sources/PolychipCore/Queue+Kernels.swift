// Queue+Kernels.swift — named operands for library users (as mlx-swift's
// `quantizedMatmul(x, w, scales:, biases:, groupSize:, bits:)`), on top of `Op`: each call
// validates once, allocates its outputs on the queue's device (meta outputs for meta inputs,
// which a simulated device models) and returns them.

extension Queue {
    /// Runs `op` on `inputs` (in ``Op/inputNames`` order) into freshly allocated outputs.
    /// - Throws: ``PolychipError`` for an invalid call, an unsupported one or a device fault.
    @discardableResult
    public func call(_ op: Op, _ inputs: [Tensor]) throws -> [Tensor] {
        let call = try op.validated(inputs.map(\.desc))
        let meta = inputs.contains(where: \.isMeta)
        let outputs = try call.outputs.map { meta ? Tensor.meta($0) : try device.allocate($0) }
        _ = try submit(call, inputs: inputs, outputs: outputs, attempt: nil)
        return outputs
    }

    /// `a · b`; `b` is `[N, K]` (weight layout) when `transposeB`.
    public func matmul(_ a: Tensor, _ b: Tensor, transposeB: Bool = false) throws -> Tensor {
        try call(.matmul(transposeB: transposeB), [a, b])[0]
    }

    /// One GEMM per expert segment: rows `offsets[e]..<offsets[e+1]` of `x` times `w[e]`.
    public func groupedMatmul(_ x: Tensor, _ w: Tensor, offsets: Tensor, transposeB: Bool = false) throws -> Tensor {
        try call(.groupedMatmul(transposeB: transposeB), [x, w, offsets])[0]
    }

    /// W4A16 `x · Wᵀ` against group-wise INT4 weights `q [N, K]` with f32 `scales` and, for
    /// the asymmetric format, i8 `zeros` (zero point 8 when nil).
    public func quantizedMatmul(_ x: Tensor, _ q: Tensor, scales: Tensor, zeros: Tensor? = nil, groupSize: Int = 32) throws -> Tensor {
        let f = Int4Format(groupSize: groupSize, symmetric: zeros == nil)
        return try call(.int4Matmul(f), [x, q, scales] + (zeros.map { [$0] } ?? []))[0]
    }

    /// Group-wise INT4 quantization of `x [N, K]`: codes, scales and (asymmetric) zero points.
    public func quantizeInt4(_ x: Tensor, groupSize: Int = 32, symmetric: Bool = true) throws -> [Tensor] {
        try call(.quantizeInt4(Int4Format(groupSize: groupSize, symmetric: symmetric)), [x])
    }

    /// RMS normalization over the last dimension.
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Double = 1e-6) throws -> Tensor {
        try call(.rmsNorm(eps: eps), [x, weight])[0]
    }

    /// Fused residual add + RMSNorm: `(y, residual)` with `residual = x + residual` rounded to
    /// the dtype and `y = rmsNorm(residual) · weight`.
    public func addRmsNorm(_ x: Tensor, residual: Tensor, weight: Tensor, eps: Double = 1e-6) throws -> (y: Tensor, residual: Tensor) {
        let out = try call(.addRmsNorm(eps: eps), [x, residual, weight])
        return (out[0], out[1])
    }

    /// Row-wise softmax over the last dimension.
    public func softmax(_ x: Tensor) throws -> Tensor { try call(.softmax, [x])[0] }

    /// `silu(gate) · up`.
    public func swiglu(_ gate: Tensor, _ up: Tensor) throws -> Tensor { try call(.swiglu, [gate, up])[0] }

    /// Rotary position embedding of `x [T, H, D]` at i32 `positions [T]`.
    public func rope(_ x: Tensor, positions: Tensor, style: RopeStyle = .neox, base: Double = 10000, rotaryDim: Int? = nil) throws -> Tensor {
        try call(.rope(RopeParams(style: style, base: base, rotaryDim: rotaryDim)), [x, positions])[0]
    }

    /// Attention of `q [B, Hq, Lq, D]` over `k`, `v [B, Hkv, Lk, ·]` (GQA, bottom-right causal
    /// when `causal`); the log-sum-exp per row too when `returnLSE`.
    public func attention(q: Tensor, k: Tensor, v: Tensor, causal: Bool = false, scale: Double? = nil,
                          returnLSE: Bool = false) throws -> [Tensor] {
        try call(.attention(AttentionParams(causal: causal, scale: scale, returnLSE: returnLSE)), [q, k, v])
    }

    /// Attention of `q [T, H, D]` over the keys `indices [T, k]` selects (−1 = none).
    public func sparseAttention(q: Tensor, k: Tensor, v: Tensor, indices: Tensor, scale: Double? = nil) throws -> Tensor {
        try call(.sparseAttention(SparseAttentionParams(scale: scale)), [q, k, v, indices])[0]
    }

    /// The k largest of each row of f32 `scores [T, S]`: `(indices, values)`, lower index first on ties.
    public func topK(_ scores: Tensor, k: Int) throws -> (indices: Tensor, values: Tensor) {
        let out = try call(.topK(k: k), [scores])
        return (out[0], out[1])
    }

    /// MoE routing of `logits [T, E]`: `(weights, ids)` per token.
    public func moeRouter(_ logits: Tensor, bias: Tensor? = nil, scoring: RouterScoring = .softmax, topK: Int,
                          nGroup: Int = 1, topkGroup: Int = 1, renormalize: Bool = true,
                          routedScale: Double = 1) throws -> (weights: Tensor, ids: Tensor) {
        let p = RouterParams(scoring: scoring, topK: topK, nGroup: nGroup, topkGroup: topkGroup, renormalize: renormalize,
                             routedScale: routedScale, hasBias: bias != nil)
        let out = try call(.moeRouter(p), [logits] + (bias.map { [$0] } ?? []))
        return (out[0], out[1])
    }
}
