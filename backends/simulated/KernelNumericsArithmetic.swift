// KernelNumericsArithmetic.swift — how a simulated device computes the per-kernel numerics of
// KernelNumerics.swift:
//
// - a 16-bit router accumulator (`moe-router`): scores, choice scores (score + bias), group
//   scores, the renormalization sum and the final weights are each rounded to the accumulator
//   dtype (sums through the vector unit's lane model), so near ties in the choice scores
//   resolve as that chip resolves them; selection then follows the contract's tie rule;
// - a 16-bit combine accumulator (`moe-combine`): each token's weighted sum over its k slots is
//   rounded after every add;
// - tf32/hf32 matrix modes: the float inputs of GEMM-like kernels (matmul, grouped and INT4
//   matmul's activations, attention, sparse attention, the indexer) are rounded to the format's
//   mantissa — TF32 10 bits, round to nearest with ties away (PTX `cvt.rna.tf32.f32`); HF32 11
//   bits, ties to even (CANN `SetHF32`, transMode 0) — then multiplied and accumulated in f32;
// - an output dtype (`numerics.kernels.<kernel>.output`): finite float results rounded to it
//   (an overflow becomes ±inf, as a half-precision store does);
// - `faults.outputPerturbation`: every float output element of the kernel times `1 ± ε`.

import Foundation
import PolychipCore
import PolychipCPU
import PolychipReference

extension LowPrecision {
    /// `moeRouter` with every intermediate held in the accumulator dtype.
    func router(_ p: RouterParams, _ ins: [HostOperand], _ outs: [HostOperand]) throws {
        let (t, e) = (ins[0].desc.shape[0], ins[0].desc.shape[1])
        let logits = ins[0].floats()
        let bias = p.hasBias ? ins[1].floats() : []
        var weights: [Float] = [], ids: [Int32] = []
        weights.reserveCapacity(t * p.topK)
        for row in 0..<t {
            let l = Array(logits[(row * e)..<((row + 1) * e)])
            let s: [Float]
            if p.scoring == .sigmoid {
                s = l.map { r(1 / (1 + Foundation.exp(-$0))) }
            } else {
                s = probabilities(l).map(r)
            }
            var c = s.indices.map { r(s[$0] + (bias.isEmpty ? 0 : bias[$0])) }
            if p.nGroup > 1 {
                let size = e / p.nGroup
                let g = (0..<p.nGroup).map { gi -> Float in
                    let top = c[(gi * size)..<((gi + 1) * size)].sorted(by: >).prefix(min(2, size))
                    return top.reduce(Float(0)) { r($0 + $1) }
                }
                let kept = Set(g.indices.sorted { g[$0] != g[$1] ? g[$0] > g[$1] : $0 < $1 }.prefix(p.topkGroup))
                for gi in 0..<p.nGroup where !kept.contains(gi) { for i in (gi * size)..<((gi + 1) * size) { c[i] = -.infinity } }
            }
            let chosen = Array(c.indices.sorted { c[$0] != c[$1] ? c[$0] > c[$1] : $0 < $1 }.prefix(p.topK))
            var w = chosen.map { s[$0] }
            if p.renormalize {
                let sum = sum(w) + 1e-20
                w = w.map { r($0 / sum) }
            }
            weights += w.map { r($0 * Float(p.routedScale)) }
            ids += chosen.map { Int32($0) }
        }
        try outs[0].store(floats: weights)
        try outs[1].store(HostTensor([t, p.topK], int32s: ids))
    }

    /// `moeCombine` with each token's sum over its slots rounded after every add.
    func combine(_ ins: [HostOperand], _ outs: [HostOperand]) throws {
        let (rows, h) = (ins[0].desc.shape[0], ins[0].desc.shape[1])
        let (t, k) = (ins[2].desc.shape[0], ins[2].desc.shape[1])
        let y = ins[0].floats(), w = ins[2].floats()
        let map = try ins[1].hostTensor().ints
        // Row of each (token, slot): the inverse of the source map, checked as the catalog does.
        var rowOf = [Int](repeating: -1, count: t * k)
        for (row, src) in map.enumerated() {
            guard src >= 0, src < t * k, rowOf[src] < 0 else {
                throw PolychipError.invalidArgument(kernel: OpKind.moeCombine.name, argument: "sourceMap",
                                                    reason: "entry \(row) is \(src): must be a permutation of 0..<\(t * k)")
            }
            rowOf[src] = row
        }
        var out = [Float](repeating: 0, count: t * h)
        for tok in 0..<t {
            for s in 0..<k {
                let row = rowOf[tok * k + s]
                guard row >= 0, row < rows else { continue }
                let ws = w[tok * k + s]
                for j in 0..<h { out[tok * h + j] = r(out[tok * h + j] + ws * y[row * h + j]) }
            }
        }
        try outs[0].store(floats: out)
    }
}

/// tf32/hf32 matrix modes: float inputs rounded to the format before an f32 GEMM.
enum MatrixInputRounding {
    /// `x` with `bits` explicit mantissa bits (TF32 10, HF32 11), round to nearest with ties
    /// away from zero (`tiesAway`) or to even; NaN and ±inf unchanged.
    static func round(_ x: Float, bits: Int, tiesAway: Bool) -> Float {
        guard x.isFinite else { return x }
        let drop = UInt32(23 - bits)
        let b = x.bitPattern
        let half: UInt32 = 1 << (drop - 1)
        let rest = b & ((1 << drop) - 1)
        var kept = b & ~((1 << drop) - 1)
        let odd = (b >> drop) & 1 == 1
        if rest > half || (rest == half && (tiesAway || odd)) { kept &+= 1 << drop }
        return Float(bitPattern: kept)
    }

    /// Mantissa bits and tie rule of a matrix mode.
    static func mode(_ d: ProfileDType) -> (bits: Int, tiesAway: Bool)? {
        switch d {
        case .tf32: return (10, true)
        case .hf32: return (11, false)
        default: return nil
        }
    }

    /// Runs `body` on copies of `inputs` whose f32 operands of the GEMM-like kernel are rounded
    /// to `mode` (integer operands, INT4 weights and their scales pass through).
    static func withRoundedInputs(_ op: Op, _ inputs: [HostOperand], mode d: ProfileDType, device: String,
                                  _ body: ([HostOperand]) throws -> Void) throws {
        guard let m = mode(d) else { return try body(inputs) }
        let names = op.inputNames
        var buffers: [HostBuffer] = []
        var rounded: [HostOperand] = []
        for (i, x) in inputs.enumerated() {
            let isScale = names[i].hasSuffix("scales") || names[i] == "bias" || names[i] == "weights"
            guard x.desc.dtype == .f32, !isScale else { rounded.append(x); continue }
            let buf = try HostBuffer.allocate(byteCount: try x.desc.checkedByteCount(), deviceID: device)
            buffers.append(buf)
            let values = x.floats().map { round($0, bits: m.bits, tiesAway: m.tiesAway) }
            let op = HostOperand(buf.pointer, x.desc)
            try op.store(floats: values)
            rounded.append(op)
        }
        try withExtendedLifetime(buffers) { try body(rounded) }
    }
}

extension DeviceProfile {
    /// Applies the kernel's output dtype (`numerics.kernels.<kernel>.output`) and the planted
    /// `faults.outputPerturbation` to a computed kernel's float outputs, in place.
    func finishOutputs(_ op: Op, _ outputs: [HostOperand]) throws {
        let roundTo: DType? = kernelNumerics(op.kind)?.output.flatMap { o in
            switch o.value {
            case .f16: return .f16
            case .bf16: return .bf16
            default: return nil
            }
        }
        let perturb = faults?.outputPerturbation.flatMap { $0.kernel == op.kind.name && $0.relativeError > 0 ? $0 : nil }
        guard roundTo != nil || perturb != nil else { return }
        for o in outputs where o.desc.dtype.isFloat {
            var v = o.floats()
            if let d = roundTo { v = v.map { $0.isFinite ? FloatBits.round($0, to: d) : $0 } }
            if let p = perturb {
                let eps = Float(p.relativeError), seed = UInt64(max(0, p.seed ?? 0))
                for i in v.indices {
                    // SplitMix64 of (seed, i): the same element gets the same sign in every call.
                    var z = (seed &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(i) &+ 0xD1B5_4A32_D192_ED03)
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    z ^= z >> 31
                    v[i] *= 1 + (z & 1 == 0 ? eps : -eps)
                }
            }
            try o.store(floats: v)
        }
    }
}
