import Testing
import Polychip
import PolychipReference
@testable import PolychipConformance

/// The full-size check of a timed call: correct outputs pass, and one wrong block (the way a
/// tiling bug corrupts a result) fails, for each method.
@Suite struct TimedCallVerifierTests {
    /// The reference's outputs for a spec, and a copy with elements `range` of output 0 scaled.
    static func outputs(_ spec: CaseSpec, dtype: DType = .f32, corrupt range: Range<Int>, by factor: Float = 1.5) throws
        -> (ConformanceCase, [HostTensor], [HostTensor]) {
        let c = try CaseBuilder.make(spec, dtype: dtype, seed: 11)
        let good = try Reference.evaluate(c.op, c.inputs)
        var bad = good
        var v = good[0].floats
        for i in range.clamped(to: 0..<v.count) { v[i] = v[i] * factor + 0.25 }
        bad[0] = try HostTensor(good[0].desc.shape, good[0].desc.dtype, floats: v)
        return (c, good, bad)
    }

    @Test(arguments: [
        CaseSpec(.matmul(transposeB: true), ["M": 70, "K": 300, "N": 130]),
        CaseSpec(.matmul(transposeB: false), ["M": 33, "K": 65, "N": 17]),
        CaseSpec(.groupedMatmul(transposeB: true), ["T": 40, "K": 24, "N": 19, "E": 4]),
        CaseSpec(.int4Matmul(Int4Format(groupSize: 32, symmetric: false)), ["M": 3, "N": 40, "K": 160]),
        CaseSpec(.int4GroupedMatmul(Int4Format(groupSize: 32, symmetric: true)), ["T": 29, "N": 20, "K": 64, "E": 4]),
    ])
    func freivaldsSeesOneWrongRow(_ spec: CaseSpec) throws {
        let (c, good, _) = try Self.outputs(spec, corrupt: 0..<0)
        let n = good[0].desc.shape[1]
        let (_, _, bad) = try Self.outputs(spec, corrupt: n..<(2 * n))  // the second row
        let pass = TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: good)
        #expect(pass.passed && pass.method.hasPrefix("Freivalds"), "\(pass.summary)")
        let fail = TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: bad)
        #expect(!fail.passed, "\(fail.summary)")
    }

    @Test func freivaldsToleratesRounding() throws {
        // bf16 inputs and output: the check must accept the rounding of a correct device.
        let c = try CaseBuilder.make(CaseSpec(.matmul(transposeB: true), ["M": 64, "K": 512, "N": 96]), dtype: .bf16, seed: 5)
        let out = try Reference.evaluate(c.op, c.inputs)
        #expect(TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: out).passed)
    }

    @Test func sampledRowsSeeAWrongQueryBlock() throws {
        let spec = CaseSpec(.attention(AttentionParams(causal: true, returnLSE: true)), ["B": 1, "Hq": 4, "Hkv": 2, "Lq": 40, "Lk": 70, "D": 16, "Dv": 16])
        let (c, good, _) = try Self.outputs(spec, corrupt: 0..<0)
        #expect(TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: good).passed)
        // Every row of the last query head wrong (its first and last rows are always sampled
        // with the rows of each head's edges only by chance, so corrupt a whole head).
        let rowsPerHead = 40 * 16
        let (_, _, bad) = try Self.outputs(spec, corrupt: (3 * rowsPerHead)..<(4 * rowsPerHead))
        let check = TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: bad)
        #expect(!check.passed && check.method.contains("sampled"), "\(check.summary)")
    }

    @Test(arguments: [
        CaseSpec(.lightningIndexer, ["T": 21, "Hi": 3, "D": 64, "S": 300]),
        CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)), ["T": 9, "H": 4, "Hkv": 2, "S": 9, "D": 32, "Dv": 24, "k": 12]),
        CaseSpec(.moeLayer(MoELayerParams(router: RouterParams(scoring: .softmax, topK: 2), experts: .float, hasShared: true)),
                 ["T": 11, "H": 16, "F": 8, "E": 4]),
    ])
    func sampledTokensSeeAllWrongOutputs(_ spec: CaseSpec) throws {
        let (c, good, bad) = try Self.outputs(spec, corrupt: 0..<Int.max)
        #expect(TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: good).passed)
        #expect(!TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: bad).passed)
    }

    @Test func cheapKernelsAreCheckedWhole() throws {
        let (c, good, bad) = try Self.outputs(CaseSpec(.softmax, ["R": 5, "D": 33]), corrupt: 100..<101)
        let pass = TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: good)
        #expect(pass.passed && pass.method == "full")
        #expect(!TimedCallVerifier.verify(c.op, inputs: c.inputs, outputs: bad).passed)
    }
}

/// MoE layer tokens whose expert set is decided by a near tie are left out of the layer's
/// comparison (a device's f32 router may choose either side), and only those.
@Suite struct MoENearTieTests {
    func layerCase(topK: Int) throws -> ConformanceCase {
        let (t, h, f, e) = (3, 16, 8, 4)
        let op = Op.moeLayer(MoELayerParams(router: RouterParams(scoring: .softmax, topK: topK), experts: .float))
        var r = SeededRandom(seed: 9)
        var w = [Float](repeating: 0.1, count: e * h)
        for q in 0..<h { w[q] = 1; w[h + q] = 1 }
        w[h] += 1e-6  // experts 0 and 1 differ by one part in a million
        let ins = [try HostTensor([t, h], .f32, floats: r.floats(t * h, 0.5, 1).map(abs)), try HostTensor([e, h], .f32, floats: w),
                   try HostTensor([e, f, h], .f32, floats: r.floats(e * f * h)), try HostTensor([e, f, h], .f32, floats: r.floats(e * f * h)),
                   try HostTensor([e, h, f], .f32, floats: r.floats(e * h * f))]
        return ConformanceCase(op: op, inputs: ins, dtype: .f32, label: "near tie", seed: 9)
    }

    @Test func onlyTheTiedCutIsExcluded() throws {
        // k = 1: the cut falls between the two nearly equal experts, for every token.
        let one = try layerCase(topK: 1)
        guard case .moeLayer(let p1) = one.op else { return }
        #expect(Comparison.moeNearTieTokens(one, p1.router) == [0, 1, 2])
        // k = 2: both are chosen; the cut is against experts far below.
        let two = try layerCase(topK: 2)
        guard case .moeLayer(let p2) = two.op else { return }
        #expect(Comparison.moeNearTieTokens(two, p2.router).isEmpty)
    }
}
