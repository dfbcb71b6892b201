/// How a communicator accumulates the sums of all-reduce and reduce-scatter.
public enum SumAccumulation: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// f64, in rank order, rounded to the dtype at the end: ``Collective/evaluate(_:)``.
    case f64
    /// f32, in rank order: element `i` is `((x₀[i] + x₁[i]) + x₂[i]) + … + x_{p−1}[i]`, each `x`
    /// widened exactly to f32, each `+` an f32 addition, the result rounded once to the dtype
    /// (f16/bf16: to nearest, ties to even; f32: as is). Equal to the f64 order bit for bit
    /// whenever every partial sum is exact in f32 — always for two f32 ranks, since one f32
    /// addition is correctly rounded — and within `(p − 1)·2⁻²⁴·Σ|xᵣ[i]|` (plus the dtype's
    /// final rounding) otherwise.
    case f32

    public var description: String { rawValue }
}

extension Collective {
    /// The collective's result with sums accumulated as `accumulation` says (``SumAccumulation``);
    /// identical to ``evaluate(_:)`` for `.f64` and for the collectives that only move data.
    public func evaluate(_ inputs: [HostTensor], accumulation: SumAccumulation) throws -> [HostTensor] {
        guard accumulation == .f32, self == .allReduce || self == .reduceScatter else { return try evaluate(inputs) }
        let outDescs = try validate(inputs.map(\.desc))
        let dtype = inputs[0].desc.dtype
        let n = inputs[0].desc.elementCount
        guard n > 0 else { return try outDescs.map { try HostTensor(zeros: $0) } }
        var acc = [Float](repeating: 0, count: n)
        var sum = [UInt8](repeating: 0, count: n * dtype.bitWidth / 8)
        acc.withUnsafeMutableBufferPointer { a in
            for (r, x) in inputs.enumerated() {
                x.bytes.withUnsafeBytes { RankOrderSum.accumulate($0.baseAddress!, dtype: dtype, count: n, into: a.baseAddress!, first: r == 0) }
            }
            sum.withUnsafeMutableBytes { RankOrderSum.store(a.baseAddress!, count: n, dtype: dtype, to: $0.baseAddress!) }
        }
        if self == .allReduce { return try outDescs.map { try HostTensor($0, bytes: sum) } }
        let blockBytes = sum.count / inputs.count
        return try outDescs.enumerated().map { r, d in try HostTensor(d, bytes: Array(sum[(r * blockBytes)..<((r + 1) * blockBytes)])) }
    }
}

/// The f32 rank-order accumulation of ``SumAccumulation/f32`` on raw buffers: the one
/// implementation both ``Collective/evaluate(_:accumulation:)`` and communicators use.
public enum RankOrderSum {
    /// `acc[i] = Float(src[i])` when `first`, else `acc[i] += Float(src[i])`, for `count`
    /// elements of the float dtype `dtype` at `src` (little-endian storage).
    @inlinable
    public static func accumulate(_ src: UnsafeRawPointer, dtype: DType, count: Int, into acc: UnsafeMutablePointer<Float>, first: Bool) {
        switch dtype {
        case .f32:
            let x = src.assumingMemoryBound(to: Float.self)
            if first { acc.update(from: x, count: count) } else { for i in 0..<count { acc[i] += x[i] } }
        case .f16:
            let x = src.assumingMemoryBound(to: UInt16.self)
            if first { for i in 0..<count { acc[i] = FloatBits.float(fromF16: x[i]) } }
            else { for i in 0..<count { acc[i] += FloatBits.float(fromF16: x[i]) } }
        case .bf16:
            let x = src.assumingMemoryBound(to: UInt16.self)
            if first { for i in 0..<count { acc[i] = FloatBits.float(fromBF16: x[i]) } }
            else { for i in 0..<count { acc[i] += FloatBits.float(fromBF16: x[i]) } }
        default:
            break  // sums are validated to float dtypes before any data moves
        }
    }

    /// Rounds `count` f32 accumulators once to `dtype` and stores them at `dst`.
    @inlinable
    public static func store(_ acc: UnsafePointer<Float>, count: Int, dtype: DType, to dst: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32:
            dst.assumingMemoryBound(to: Float.self).update(from: acc, count: count)
        case .f16:
            let y = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { y[i] = FloatBits.f16Bits(acc[i]) }
        case .bf16:
            let y = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { y[i] = FloatBits.bf16Bits(acc[i]) }
        default:
            break
        }
    }
}
