// SimulatedArithmetic.swift — how a simulated device computes a kernel's values.
//
// The arithmetic runs on the host through the fast CPU engine (PolychipCPU) in the profile's
// numerics:
//
// - storage dtypes: inputs arrive in their storage dtype; outputs are rounded once to theirs;
// - accumulators (`numerics.accumulator.matmul | attention | vector`, or a kernel's own in
//   `numerics.kernels.<kernel>.accumulator`): f32 → the CPU engine, which accumulates in f32;
//   the reduced-mantissa matrix modes tf32/hf32 → the CPU engine on inputs rounded to that
//   format (KernelNumericsArithmetic.swift); f64 → the reference arithmetic (f64 loops);
//   f16/bf16 → the low-precision model below, which rounds every intermediate sum to the
//   accumulator dtype;
// - a matrix unit without INT4 that emulates it through a float dtype (MTT S4000, H100:
//   W4A16 via bf16) expands the INT4 weights into the activations' 16-bit storage dtype before
//   the GEMM, as W4A16 kernels do; with f32 activations the expansion is exact. Emulation
//   through int8 (W4A8 on Ascend 910C, MLU590) holds INT4 values exactly.
//
// Low-precision accumulation (f16/bf16):
//
// - GEMM-like products (matmul, grouped and INT4 matmul, attention's QKᵀ and PV, the DSA
//   indexer's dot products): K is split into chunks of the matrix unit's tile depth `tile.k`;
//   each chunk's product is formed in f32 (as inside one MMA instruction) and added to the
//   accumulator, which is rounded after every chunk.
// - Reductions on the vector unit (softmax's row sum, rmsNorm's sum of squares, the indexer's
//   sum over heads): `tile.n` lane accumulators, each rounded after every add, then a pairwise
//   tree, rounded after every add.
//
// - The router and the combine (KernelNumericsArithmetic.swift): the router's scores, choice
//   scores, group scores and weights held in the accumulator dtype; the combine's per-token
//   sum over slots rounded after every add.
//
// Kernels with no accumulation (element-wise, rope, top-k, permute, INT4 (de)quantization)
// are unaffected by the accumulator. The composite MoE layer does not model an f16/bf16
// accumulator: it runs in f32 and `SimulatedDevice.supports` says so. After any path, a
// kernel's output dtype and a planted output perturbation apply (KernelNumerics.swift).

import Foundation
import PolychipCore
import PolychipCPU
import PolychipReference

/// How a simulated device computes one kernel, from the profile's accumulator for the
/// kernel's family (see the top of SimulatedArithmetic.swift).
public enum ArithmeticPath: Sendable, Hashable, CustomStringConvertible {
    /// The fast CPU engine: f32 accumulation, one rounding to the storage dtype.
    case cpuEngine
    /// The reference arithmetic: f64 accumulation (an f64 accumulator).
    case reference
    /// Intermediate sums rounded to this 16-bit accumulator (`f16` or `bf16`).
    case lowPrecision(DType)
    /// The profile asks for this 16-bit accumulator but the simulator does not model it for
    /// the kernel: it runs in f32 on the CPU engine (reported as emulated).
    case unmodeledAccumulator(DType)
    /// A tf32/hf32 matrix mode: the GEMM-like kernel's float inputs rounded to that format,
    /// then f32 arithmetic on the CPU engine.
    case roundedInputs(ProfileDType)

    /// A short description (`"cpu engine (f32 accumulation)"`).
    public var description: String {
        switch self {
        case .cpuEngine: return "cpu engine (f32 accumulation)"
        case .reference: return "reference (f64 accumulation)"
        case .lowPrecision(let d): return "\(d) accumulation (rounded per tile chunk / lane add)"
        case .unmodeledAccumulator(let d): return "f32 accumulation (the profile's \(d) accumulator is not modeled for this kernel)"
        case .roundedInputs(let d): return "\(d) matrix mode (inputs rounded to \(d), f32 accumulation)"
        }
    }
}

extension DeviceProfile {
    /// The profile's accumulator for a kernel (GEMM family → `matmul`, attention family →
    /// `attention`, everything else → `vector`; the composite MoE layer → `matmul`).
    public func accumulator(for kind: OpKind) -> ProfileDType {
        if let own = kernelNumerics(kind)?.accumulator?.value { return own }
        switch kind.family {
        case .linearAlgebra, .composite: return numerics.accumulator.matmul.value
        case .attention: return numerics.accumulator.attention.value
        case .elementwise, .routing, .quantization: return numerics.accumulator.vector.value
        }
    }

    /// How a simulated device of this profile computes `kind` (see ``ArithmeticPath``).
    public func arithmeticPath(for kind: OpKind) -> ArithmeticPath {
        func low(_ p: ProfileDType) -> DType? {
            switch p {
            case .f16: return .f16
            case .bf16: return .bf16
            default: return nil
            }
        }
        if kind == .moeLayer {
            let accs = [numerics.accumulator.matmul.value, numerics.accumulator.vector.value]
            if let d = accs.compactMap(low).first { return .unmodeledAccumulator(d) }
            return accs.contains(.f64) ? .reference : .cpuEngine
        }
        let acc = accumulator(for: kind)
        if acc == .f64 { return .reference }
        let gemmLike: Set<OpKind> = [.matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul, .attention, .sparseAttention, .lightningIndexer]
        if acc == .tf32 || acc == .hf32 { return gemmLike.contains(kind) ? .roundedInputs(acc) : .cpuEngine }
        guard let d = low(acc) else { return .cpuEngine }
        switch kind {
        case .matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul, .attention, .sparseAttention,
             .lightningIndexer, .softmax, .rmsNorm, .addRmsNorm, .moeRouter, .moeCombine:
            return .lowPrecision(d)
        case .silu, .swiglu, .rope, .add, .scale, .topK, .moePermute, .quantizeInt4, .dequantizeInt4:
            return .cpuEngine  // nothing accumulates
        case .moeLayer:
            return .unmodeledAccumulator(d)
        }
    }

    /// Whether INT4 GEMM weights are expanded into the activations' 16-bit dtype: the matrix
    /// unit lacks INT4 and the profile emulates it through a float dtype.
    func expandsInt4(activation: DType) -> Bool {
        guard activation == .f16 || activation == .bf16 else { return false }
        guard case .emulated(let r) = dtypeSupport(unit: .matrix, dtype: .int4) else { return false }
        return [.f32, .tf32, .hf32, .f16, .bf16, .f64].contains(r.effective)
    }
}

/// The arithmetic of a simulated device: computes a kernel from host inputs into host
/// outputs (temporaries owned by the caller) through the CPU engine in the profile's numerics.
struct SimulatedArithmetic {
    let profile: DeviceProfile
    let engine: CPUDevice

    /// Computes `op` from `inputs` into `outputs` (descriptors already validated).
    func compute(_ call: ValidatedCall, inputs: [HostOperand], outputs: [HostOperand]) throws {
        let op = call.op
        let path = profile.arithmeticPath(for: op.kind)
        switch path {
        case .reference:
            try viaReference(op, inputs, outputs)
        case .lowPrecision(let acc):
            let lp = LowPrecision(acc: acc, kc: max(1, profile.compute.matrix.tile.k),
                                  lanes: max(1, profile.compute.vector.tile.n), engine: engine)
            try lowPrecision(call, lp, inputs, outputs)
        case .cpuEngine, .unmodeledAccumulator:
            try onEngine(call, inputs, outputs)
        case .roundedInputs(let mode):
            try MatrixInputRounding.withRoundedInputs(op, inputs, mode: mode, device: "sim:\(profile.name)") { try onEngine(call, $0, outputs) }
        }
        try profile.finishOutputs(op, outputs)
    }

    /// f32 arithmetic on the CPU engine (INT4 weights expanded as the profile says).
    private func onEngine(_ call: ValidatedCall, _ inputs: [HostOperand], _ outputs: [HostOperand]) throws {
        let op = call.op
        switch op {
        case .int4Matmul(let f) where profile.expandsInt4(activation: inputs[0].desc.dtype):
            try int4Expanded(op, f, grouped: false, inputs, outputs, gemm: nil)
        case .int4GroupedMatmul(let f) where profile.expandsInt4(activation: inputs[0].desc.dtype):
            try int4Expanded(op, f, grouped: true, inputs, outputs, gemm: nil)
        default:
            if engine.supports(op.kind, dtype: op.primaryDType(inputs.map(\.desc))).isRunnable {
                try engine.run(call, hostInputs: inputs, hostOutputs: outputs)
            } else {
                try viaReference(op, inputs, outputs)
            }
        }
    }

    private func viaReference(_ op: Op, _ inputs: [HostOperand], _ outputs: [HostOperand]) throws {
        let values = try inputs.map { try $0.hostTensor() }
        let results = try Reference.evaluate(op, values)
        for (o, r) in zip(outputs, results) { try o.store(r) }
    }

    // MARK: Low precision

    private func lowPrecision(_ call: ValidatedCall, _ lp: LowPrecision, _ ins: [HostOperand], _ outs: [HostOperand]) throws {
        let op = call.op
        switch op {
        case .matmul(let tb):
            let a = ins[0].floats(), b = ins[1].floats()
            let (m, k) = (ins[0].desc.shape[0], ins[0].desc.shape[1]), n = outs[0].desc.shape[1]
            try outs[0].store(floats: try lp.gemm(a, b, m: m, n: n, k: k, transposeB: tb))
        case .groupedMatmul(let tb):
            let x = ins[0].floats(), w = ins[1].floats()
            let (t, k) = (ins[0].desc.shape[0], ins[0].desc.shape[1]), n = outs[0].desc.shape[1]
            let offsets = try Self.offsets(ins[2], rows: t, kernel: op.kind.name)
            var y = [Float](repeating: 0, count: t * n)
            for e in 0..<(offsets.count - 1) where offsets[e + 1] > offsets[e] {
                let (r0, r1) = (offsets[e], offsets[e + 1])
                let seg = try lp.gemm(Array(x[(r0 * k)..<(r1 * k)]), Array(w[(e * k * n)..<((e + 1) * k * n)]),
                                      m: r1 - r0, n: n, k: k, transposeB: tb)
                y.replaceSubrange((r0 * n)..<(r1 * n), with: seg)
            }
            try outs[0].store(floats: y)
        case .int4Matmul(let f):
            try int4Expanded(op, f, grouped: false, ins, outs, gemm: lp)
        case .int4GroupedMatmul(let f):
            try int4Expanded(op, f, grouped: true, ins, outs, gemm: lp)
        case .attention(let p):
            try lp.attention(p, ins, outs)
        case .sparseAttention(let p):
            try lp.sparseAttention(p, ins, outs, kernel: op.kind.name)
        case .lightningIndexer:
            try lp.lightningIndexer(ins, outs)
        case .softmax:
            try outs[0].store(floats: lp.softmax(ins[0].floats(), rowLength: ins[0].desc.shape.last ?? 1))
        case .rmsNorm(let eps):
            try outs[0].store(floats: lp.rmsNorm(ins[0].floats(), weight: ins[1].floats(), eps: Float(eps)))
        case .addRmsNorm(let eps):
            // The new residual is stored in the activation dtype; y normalizes the stored value.
            try outs[1].store(floats: zip(ins[0].floats(), ins[1].floats()).map { $0 + $1 })
            try outs[0].store(floats: lp.rmsNorm(outs[1].floats(), weight: ins[2].floats(), eps: Float(eps)))
        case .moeRouter(let p):
            try lp.router(p, ins, outs)
        case .moeCombine:
            try lp.combine(ins, outs)
        default:
            try engine.run(call, hostInputs: ins, hostOutputs: outs)
        }
    }

    /// INT4 GEMMs through expanded weights: dequantize on the CPU engine (exact, f32), round
    /// to the activations' dtype when the profile emulates INT4 through a float dtype, then
    /// GEMM (`x · Wᵀ`) on the engine or with the low-precision accumulator.
    private func int4Expanded(_ op: Op, _ f: Int4Format, grouped: Bool, _ ins: [HostOperand], _ outs: [HostOperand],
                              gemm lp: LowPrecision?) throws {
        let x = ins[0], q = ins[1], scales = ins[2], zeros: HostOperand? = f.symmetric ? nil : ins[3]
        let (t, k) = (x.desc.shape[0], x.desc.shape[1])
        let experts = grouped ? q.desc.shape[0] : 1
        let n = q.desc.shape[grouped ? 1 : 0]
        let round = profile.expandsInt4(activation: x.desc.dtype) ? x.desc.dtype : DType.f32
        // Expert e's weights are slices [n, k] of q (k/2 bytes per row), scales and zeros (k/g per row).
        func expanded(_ e: Int) throws -> [Float] {
            let qs = TensorDesc([n, k], .int4), ss = TensorDesc([n, k / f.groupSize], .f32), zs = TensorDesc([n, k / f.groupSize], .i8)
            var operands = [HostOperand(q.address + e * qs.byteCount, qs), HostOperand(scales.address + e * ss.byteCount, ss)]
            if let zeros { operands.append(HostOperand(zeros.address + e * zs.byteCount, zs)) }
            var w = [Float](repeating: 0, count: n * k)
            try w.withUnsafeMutableBytes { raw in
                try engine.run(.dequantizeInt4(f, output: .f32), hostInputs: operands,
                               hostOutputs: [HostOperand(raw.baseAddress!, TensorDesc([n, k], .f32))])
            }
            return round == .f32 ? w : w.map { FloatBits.round($0, to: round) }
        }
        let xf = x.floats()
        let rows: [(Int, Int)]
        if grouped {
            let o = try Self.offsets(ins[ins.count - 1], rows: t, kernel: op.kind.name)
            rows = (0..<experts).map { (o[$0], o[$0 + 1]) }
        } else {
            rows = [(0, t)]
        }
        var y = [Float](repeating: 0, count: t * n)
        for (e, (r0, r1)) in rows.enumerated() where r1 > r0 {
            let w = try expanded(e)
            let a = Array(xf[(r0 * k)..<(r1 * k)])
            let seg: [Float]
            if let lp {
                seg = try lp.gemm(a, w, m: r1 - r0, n: n, k: k, transposeB: true)
            } else {
                seg = try LowPrecision.engineGemm(engine, a, w, m: r1 - r0, n: n, k: k, transposeB: true)
            }
            y.replaceSubrange((r0 * n)..<(r1 * n), with: seg)
        }
        try outs[0].store(floats: y)
    }

    /// Reads and checks group offsets with the catalog's error (start 0, non-decreasing, end at `rows`).
    static func offsets(_ o: HostOperand, rows: Int, kernel: String) throws -> [Int] {
        let v = try o.hostTensor().ints
        guard v.first == 0, v.last == rows, zip(v, v.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw PolychipError.invalidArgument(kernel: kernel, argument: "offsets",
                                                reason: "must start at 0, never decrease and end at \(rows) rows, got \(v.prefix(16))")
        }
        return v
    }
}

/// The f16/bf16 accumulator model (see the top of SimulatedArithmetic.swift).
struct LowPrecision {
    /// The accumulator dtype (f16 or bf16).
    let acc: DType
    /// K chunk of a GEMM: the matrix unit's tile depth.
    let kc: Int
    /// Lane accumulators of a vector reduction: the vector unit's width.
    let lanes: Int
    let engine: CPUDevice

    @inline(__always) func r(_ x: Float) -> Float { FloatBits.round(x, to: acc) }

    /// `C[m,n] = A[m,k] · B` (`B` is `[k,n]`, or `[n,k]` when `transposeB`), f32 on the CPU engine.
    static func engineGemm(_ engine: CPUDevice, _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeB: Bool) throws -> [Float] {
        var a = a, b = b
        var c = [Float](repeating: 0, count: m * n)
        guard m > 0, n > 0 else { return c }
        if k == 0 { return c }
        try a.withUnsafeMutableBytes { pa in
            try b.withUnsafeMutableBytes { pb in
                try c.withUnsafeMutableBytes { pc in
                    try engine.run(.matmul(transposeB: transposeB),
                                   hostInputs: [HostOperand(pa.baseAddress!, TensorDesc([m, k], .f32)),
                                                HostOperand(pb.baseAddress!, TensorDesc(transposeB ? [n, k] : [k, n], .f32))],
                                   hostOutputs: [HostOperand(pc.baseAddress!, TensorDesc([m, n], .f32))])
                }
            }
        }
        return c
    }

    /// `A · B` with the accumulator rounded after each K chunk of `kc`; each chunk's product is
    /// an f32 GEMM on the CPU engine.
    func gemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeB: Bool) throws -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        var k0 = 0
        while k0 < k {
            let w = min(kc, k - k0)
            var ac = [Float](repeating: 0, count: m * w)
            for i in 0..<m { for j in 0..<w { ac[i * w + j] = a[i * k + k0 + j] } }
            var bc = [Float](repeating: 0, count: n * w)
            if transposeB {
                for i in 0..<n { for j in 0..<w { bc[i * w + j] = b[i * k + k0 + j] } }
            } else {
                for j in 0..<w { for i in 0..<n { bc[j * n + i] = b[(k0 + j) * n + i] } }
            }
            let part = try Self.engineGemm(engine, ac, bc, m: m, n: n, k: w, transposeB: transposeB)
            for i in 0..<(m * n) { c[i] = r(c[i] + part[i]) }
            k0 += w
        }
        return c
    }

    /// Σ values: `lanes` accumulators rounded after each add, then a pairwise tree (rounded).
    func sum(_ values: [Float]) -> Float {
        var lane = [Float](repeating: 0, count: min(lanes, max(1, values.count)))
        for (i, v) in values.enumerated() { lane[i % lane.count] = r(lane[i % lane.count] + v) }
        while lane.count > 1 {
            var next: [Float] = []
            next.reserveCapacity((lane.count + 1) / 2)
            var i = 0
            while i < lane.count {
                next.append(i + 1 < lane.count ? r(lane[i] + lane[i + 1]) : lane[i])
                i += 2
            }
            lane = next
        }
        return lane[0]
    }

    /// Row-wise stable softmax with the contract's NaN / +inf / all −inf rules and a rounded row sum.
    func softmax(_ x: [Float], rowLength d: Int) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        guard d > 0 else { return y }
        for r0 in stride(from: 0, to: x.count, by: d) {
            let row = Array(x[r0..<(r0 + d)])
            let p = probabilities(row)
            for j in 0..<d { y[r0 + j] = p[j] }
        }
        return y
    }

    /// Softmax of one row (`exp(x − max) / Σ`, the sum rounded as ``sum(_:)``).
    func probabilities(_ row: [Float]) -> [Float] {
        if row.contains(where: \.isNaN) { return row.map { _ in .nan } }
        let posInf = row.filter { $0 == .infinity }.count
        if posInf > 0 { return row.map { $0 == .infinity ? 1 / Float(posInf) : 0 } }
        let m = row.max() ?? -.infinity
        if m == -.infinity { return row.map { _ in 0 } }
        let e = row.map { Foundation.exp($0 - m) }
        let s = sum(e)
        return e.map { $0 / s }
    }

    /// RMS normalization over the last dimension (`weight.count`), the sum of squares rounded.
    func rmsNorm(_ x: [Float], weight: [Float], eps: Float) -> [Float] {
        let d = weight.count
        var y = [Float](repeating: 0, count: x.count)
        guard d > 0 else { return y }
        for r0 in stride(from: 0, to: x.count, by: d) {
            let row = x[r0..<(r0 + d)]
            let ms = sum(row.map { $0 * $0 }) / Float(d)
            let inv = 1 / (ms + eps).squareRoot()
            for j in 0..<d { y[r0 + j] = x[r0 + j] * inv * weight[j] }
        }
        return y
    }

    /// Softmax-weighted sum of `v` rows (`[rows, dv]`) over `logits` (already scaled) with the
    /// masked-row rule (no logits → zeros, lse −inf): the row sum and `P·V` rounded.
    func attend(_ logits: [Float], _ v: [Float], dv: Int) throws -> (out: [Float], lse: Float) {
        // A NaN score makes the row NaN (docs/kernels.md, non-finite inputs), as on every backend.
        if logits.contains(where: \.isNaN) { return ([Float](repeating: .nan, count: dv), .nan) }
        guard let m = logits.max(), m > -.infinity else { return ([Float](repeating: 0, count: dv), -.infinity) }
        let e = logits.map { r(Foundation.exp($0 - m)) }
        let s = sum(e)
        let o = try gemm(e, v, m: 1, n: dv, k: e.count, transposeB: false)
        return (o.map { $0 / s }, m + Foundation.log(s))
    }

    /// Dense attention (GQA, bottom-right causal, optional LSE); scores are GEMMs with the
    /// rounded accumulator, then scaled.
    func attention(_ p: AttentionParams, _ ins: [HostOperand], _ outs: [HostOperand]) throws {
        let (qd, kd, vd) = (ins[0].desc.shape, ins[1].desc.shape, ins[2].desc.shape)
        let (b, hq, lq, d) = (qd[0], qd[1], qd[2], qd[3])
        let (hkv, lk, dv) = (kd[1], kd[2], vd[3])
        let scale = Float(p.scale ?? 1 / Double(d).squareRoot())
        let q = ins[0].floats(), k = ins[1].floats(), v = ins[2].floats()
        var o = [Float](), lse = [Float]()
        o.reserveCapacity(b * hq * lq * dv)
        for bi in 0..<b {
            for h in 0..<hq {
                let g = h / max(1, hq / hkv)
                let kBase = (bi * hkv + g) * lk * d, vBase = (bi * hkv + g) * lk * dv
                let qBase = (bi * hq + h) * lq * d
                let scores = try gemm(Array(q[qBase..<(qBase + lq * d)]), Array(k[kBase..<(kBase + lk * d)]),
                                      m: lq, n: lk, k: d, transposeB: true)
                for i in 0..<lq {
                    let visible = p.causal ? max(0, min(lk, i + lk - lq + 1)) : lk
                    let logits = (0..<visible).map { scores[i * lk + $0] * scale }
                    let r = try attend(logits, Array(v[vBase..<(vBase + visible * dv)]), dv: dv)
                    o += r.out
                    lse.append(r.lse)
                }
            }
        }
        try outs[0].store(floats: o)
        if p.returnLSE { try outs[1].store(floats: lse) }
    }

    /// DSA sparse attention over the selected keys (−1 pads).
    func sparseAttention(_ p: SparseAttentionParams, _ ins: [HostOperand], _ outs: [HostOperand], kernel: String) throws {
        let (qd, kd, vd) = (ins[0].desc.shape, ins[1].desc.shape, ins[2].desc.shape)
        let (t, h, d) = (qd[0], qd[1], qd[2])
        let (s, hkv, dv) = (kd[0], kd[1], vd[2])
        let topk = ins[3].desc.shape[1]
        let ix = try ins[3].hostTensor().ints
        if let bad = ix.first(where: { $0 < -1 || $0 >= s }) {
            throw PolychipError.invalidArgument(kernel: kernel, argument: "indices",
                                                reason: "index \(bad) is outside 0..<\(s) (−1 marks padding)")
        }
        let scale = Float(p.scale ?? 1 / Double(d).squareRoot())
        let q = ins[0].floats(), k = ins[1].floats(), v = ins[2].floats()
        var o = [Float](), lse = [Float]()
        for ti in 0..<t {
            let rows = ix[(ti * topk)..<((ti + 1) * topk)].filter { $0 >= 0 }
            for hi in 0..<h {
                let g = hi / max(1, h / hkv)
                let keys = rows.flatMap { j in k[((j * hkv + g) * d)..<((j * hkv + g) * d + d)] }
                let vals = rows.flatMap { j in v[((j * hkv + g) * dv)..<((j * hkv + g) * dv + dv)] }
                let qBase = (ti * h + hi) * d
                let scores = rows.isEmpty ? [] : try gemm(Array(q[qBase..<(qBase + d)]), keys, m: 1, n: rows.count, k: d, transposeB: true)
                let r = try attend(scores.map { $0 * scale }, vals, dv: dv)
                o += r.out
                lse.append(r.lse)
            }
        }
        try outs[0].store(floats: o)
        if p.returnLSE { try outs[1].store(floats: lse) }
    }

    /// DSA lightning indexer: `I[t,s] = Σⱼ w[t,j]·ReLU(q[t,j]·k[s])` for visible `s` (else −inf);
    /// dot products as GEMMs with the rounded accumulator, the head sum rounded.
    func lightningIndexer(_ ins: [HostOperand], _ outs: [HostOperand]) throws {
        let (t, hi, d) = (ins[0].desc.shape[0], ins[0].desc.shape[1], ins[0].desc.shape[2])
        let s = ins[1].desc.shape[0]
        let q = ins[0].floats(), k = ins[1].floats(), w = ins[2].floats()
        var out = [Float](repeating: -.infinity, count: t * s)
        for ti in 0..<t {
            let visible = max(0, min(s, ti + s - t + 1))
            guard visible > 0 else { continue }
            let dots = try gemm(Array(q[(ti * hi * d)..<((ti + 1) * hi * d)]), Array(k[0..<(visible * d)]),
                                m: hi, n: visible, k: d, transposeB: true)
            for si in 0..<visible {
                out[ti * s + si] = sum((0..<hi).map { j in w[ti * hi + j] * max(dots[j * visible + si], 0) })
            }
        }
        try outs[0].store(floats: out)
    }
}

extension HostOperand {
    /// The operand's bytes as a ``HostTensor``.
    func hostTensor() throws -> HostTensor {
        let n = try desc.checkedByteCount()
        return try HostTensor(desc, bytes: [UInt8](UnsafeRawBufferPointer(start: address, count: n)))
    }

    /// Float values widened to f32 (empty for non-float dtypes).
    func floats() -> [Float] { (try? hostTensor().floats) ?? [] }

    /// Stores a value of the same descriptor.
    func store(_ value: HostTensor) throws {
        guard value.desc == desc else { throw PolychipError.invalidTensor(reason: "store of \(value.desc) into \(desc)") }
        value.bytes.withUnsafeBytes { if let b = $0.baseAddress, $0.count > 0 { address.copyMemory(from: b, byteCount: $0.count) } }
    }

    /// Rounds f32 values once to the operand's float dtype and stores them.
    func store(floats values: [Float]) throws {
        try store(try HostTensor(desc.shape, desc.dtype, floats: values))
    }
}
