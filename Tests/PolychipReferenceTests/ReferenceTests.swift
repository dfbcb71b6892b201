import Foundation
import Testing
import PolychipCore
@testable import PolychipReference

private func f32(_ shape: [Int], _ v: [Float]) throws -> HostTensor { try HostTensor(shape, .f32, floats: v) }
private func rand(_ n: Int, _ seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        let u = Float((s >> 40) & 0xFFFF) / 65536
        return (u - 0.5) * 2 + (u < 0.5 ? -0.05 : 0.05)
    }
}

@Suite struct ReferenceHandComputed {
    @Test func matmulSmall() throws {
        let a = try f32([2, 2], [1, 2, 3, 4]), b = try f32([2, 2], [5, 6, 7, 8])
        #expect(try Reference.evaluate(.matmul(transposeB: false), [a, b])[0].floats == [19, 22, 43, 50])
        #expect(try Reference.evaluate(.matmul(transposeB: true), [a, b])[0].floats == [17, 23, 39, 53])
    }

    @Test func softmaxRules() throws {
        let x = try f32([3, 3], [1, 2, 3, -.infinity, -.infinity, -.infinity, .infinity, 0, .infinity])
        let y = try Reference.evaluate(.softmax, [x])[0].floats
        let e = [exp(-2.0), exp(-1.0), 1.0].map { $0 / (exp(-2.0) + exp(-1.0) + 1) }
        for i in 0..<3 { #expect(abs(Double(y[i]) - e[i]) < 1e-7) }
        #expect(Array(y[3..<6]) == [0, 0, 0])
        #expect(Array(y[6..<9]) == [0.5, 0, 0.5])
    }

    @Test func softmaxRowsSumToOne() throws {
        let x = try f32([7, 33], rand(7 * 33, 1).map { $0 * 10 })
        let y = try Reference.evaluate(.softmax, [x])[0].floats
        for r in 0..<7 { #expect(abs(y[(r * 33)..<((r + 1) * 33)].reduce(0, +) - 1) < 1e-5) }
    }

    @Test func rmsNormAndRope() throws {
        let y = try Reference.evaluate(.rmsNorm(eps: 0), [try f32([1, 2], [3, 4]), try f32([2], [1, 2])])[0].floats
        let rms = Float((12.5).squareRoot())
        #expect(abs(y[0] - 3 / rms) < 1e-6 && abs(y[1] - 8 / rms) < 1e-6)
        // Position 0 is the identity; a quarter turn maps (a, b) to (−b, a).
        let x = try f32([2, 1, 2], [1, 2, 1, 2])
        let r = try Reference.evaluate(.rope(RopeParams(style: .gptj, base: 10000)), [x, try HostTensor([2], int32s: [0, 0])])[0].floats
        #expect(r == [1, 2, 1, 2])
        let angle = try HostTensor([2], int32s: [0, 1])
        let q = try Reference.evaluate(.rope(RopeParams(style: .neox)), [x, angle])[0].floats
        #expect(abs(q[2] - (cos(1) - 2 * sin(1))) < 1e-6 && abs(q[3] - (sin(1) + 2 * cos(1))) < 1e-6)
    }

    @Test func topKTieRuleAndPadding() throws {
        let s = try f32([1, 6], [0.5, 0.9, 0.5, -.infinity, 0.9, .nan])
        let r = try Reference.evaluate(.topK(k: 5), [s])
        #expect(r[0].ints == [1, 4, 0, 2, -1])
        #expect(r[1].floats == [0.9, 0.9, 0.5, 0.5, -.infinity])
    }

    @Test func routerGroupMaskingUsesNegativeInfinity() throws {
        // 4 experts in 2 groups. With a selection bias (zeros here) a group scores its top-2
        // sum, so group 1 wins although expert 0 is the best single expert; without a bias it
        // scores its maximum and group 0 wins (DeepSeek-V3's Gate: amax when bias is None).
        let logits = try f32([1, 4], [3, -4, 1, 1])
        let biased = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2, hasBias: true)
        let r = try Reference.evaluate(.moeRouter(biased), [logits, try f32([4], [0, 0, 0, 0])])
        #expect(r[1].ints == [2, 3])  // tie between 2 and 3: lower id first
        #expect(abs(r[0].floats[0] - 1) < 1e-6 && abs(r[0].floats[1] - 1) < 1e-6)
        let c = Reference.choiceScores([3, -4, 1, 1], bias: [0, 0, 0, 0], biased)
        #expect(c[0] == -.infinity && c[1] == -.infinity)
        let plain = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2)
        let u = try Reference.evaluate(.moeRouter(plain), [logits])
        #expect(u[1].ints == [0, 1])
        let c2 = Reference.choiceScores([3, -4, 1, 1], bias: nil, plain)
        #expect(c2[2] == -.infinity && c2[3] == -.infinity)
    }

    @Test func routerBiasChoosesButDoesNotWeigh() throws {
        let logits = try f32([1, 3], [2, 1, 0])
        let bias = try f32([3], [0, 0, 5])
        let p = RouterParams(scoring: .sigmoid, topK: 1, renormalize: false, hasBias: true)
        let r = try Reference.evaluate(.moeRouter(p), [logits, bias])
        #expect(r[1].ints == [2])
        #expect(abs(r[0].floats[0] - 0.5) < 1e-7)  // σ(0), unbiased
    }

    @Test func permuteAndCombineAreInverse() throws {
        let x = try f32([3, 2], [1, 2, 3, 4, 5, 6])
        let ids = try HostTensor([3, 2], int32s: [1, 0, 0, 1, 1, 0])
        let p = try Reference.evaluate(.moePermute(numExperts: 2), [x, ids])
        #expect(p[1].ints == [0, 3, 6])
        #expect(p[2].ints == [1, 2, 5, 0, 3, 4])
        #expect(p[0].floats == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6])  // tokens 0,1,2 then 0,1,2
        let w = try f32([3, 2], [0.25, 0.75, 0.5, 0.5, 1, 0])
        let c = try Reference.evaluate(.moeCombine, [p[0], p[2], w])[0].floats
        #expect(c == [1, 2, 3, 4, 5, 6])
    }
}

@Suite struct ReferenceIdentities {
    @Test func attentionWithOneKeyReturnsV() throws {
        let q = try f32([1, 2, 3, 4], rand(24, 2)), k = try f32([1, 1, 1, 4], rand(4, 3)), v = try f32([1, 1, 1, 5], rand(5, 4))
        let o = try Reference.evaluate(.attention(AttentionParams(causal: false)), [q, k, v])[0].floats
        for i in 0..<6 { #expect(Array(o[(i * 5)..<((i + 1) * 5)]) == v.floats) }
    }

    @Test func fullyMaskedRowsAreZeroWithNegativeInfinityLSE() throws {
        let q = try f32([1, 1, 4, 2], rand(8, 5)), k = try f32([1, 1, 2, 2], rand(4, 6)), v = try f32([1, 1, 2, 2], rand(4, 7))
        let r = try Reference.evaluate(.attention(AttentionParams(causal: true, returnLSE: true)), [q, k, v])
        // Lq = 4 > Lk = 2: rows 0 and 1 see no key (j ≤ i − 2).
        #expect(Array(r[0].floats[0..<4]) == [0, 0, 0, 0])
        #expect(r[1].floats[0] == -.infinity && r[1].floats[1] == -.infinity)
        #expect(r[1].floats[2].isFinite && !r[0].floats.contains(where: \.isNaN))
    }

    @Test func decodeSeesEveryKey() throws {
        let q = try f32([1, 2, 1, 4], rand(8, 8)), k = try f32([1, 1, 9, 4], rand(36, 9)), v = try f32([1, 1, 9, 4], rand(36, 10))
        let causal = try Reference.evaluate(.attention(AttentionParams(causal: true)), [q, k, v])[0]
        let full = try Reference.evaluate(.attention(AttentionParams(causal: false)), [q, k, v])[0]
        #expect(causal == full)
    }

    @Test func dequantizeQuantizeErrorIsAtMostHalfAStep() throws {
        for sym in [true, false] {
            let f = Int4Format(groupSize: 32, symmetric: sym)
            let x = try f32([4, 64], rand(256, 11).map { $0 * 3 + (sym ? 0 : 1) })
            let q = try Reference.evaluate(.quantizeInt4(f), [x])
            let y = try Reference.evaluate(.dequantizeInt4(f, output: .f32), q)[0].floats
            let s = q[1].floats
            for (i, (a, b)) in zip(x.floats, y).enumerated() {
                #expect(abs(a - b) <= s[i / 32] / 2 * 1.0001, "sym \(sym) element \(i)")
            }
        }
        // The all-zero group is stored with scale 0 and dequantizes to exact zeros.
        let z = try Reference.evaluate(.quantizeInt4(Int4Format(groupSize: 2)), [try f32([1, 2], [0, 0])])
        #expect(z[1].floats == [0] && z[0].bytes == [0x88])
    }

    @Test func moeWithOneExpertTopOneIsADenseSwiGLU() throws {
        let (t, h, ff) = (3, 8, 6)
        let x = try f32([t, h], rand(t * h, 12)), rw = try f32([1, h], rand(h, 13))
        let g = try f32([1, ff, h], rand(ff * h, 14)), u = try f32([1, ff, h], rand(ff * h, 15)), d = try f32([1, h, ff], rand(ff * h, 16))
        let p = MoELayerParams(router: RouterParams(scoring: .softmax, topK: 1, renormalize: true))
        let moe = try Reference.evaluate(.moeLayer(p), [x, rw, g, u, d])[0].floats
        let gate = try Reference.evaluate(.matmul(transposeB: true), [x, try f32([ff, h], g.floats)])[0]
        let up = try Reference.evaluate(.matmul(transposeB: true), [x, try f32([ff, h], u.floats)])[0]
        let act = try Reference.evaluate(.swiglu, [gate, up])[0]
        let dense = try Reference.evaluate(.matmul(transposeB: true), [act, try f32([h, ff], d.floats)])[0].floats
        for (a, b) in zip(moe, dense) { #expect(abs(a - b) <= 1e-6 * max(1, abs(b))) }
    }

    @Test func sparseAttentionOverAllVisibleKeysIsCausalAttention() throws {
        let (t, h, s, d) = (5, 2, 8, 4)
        let q = try f32([t, h, d], rand(t * h * d, 17)), k = try f32([s, d], rand(s * d, 18)), w = try f32([t, h], rand(t * h, 19))
        let scores = try Reference.evaluate(.lightningIndexer, [q, k, w])[0]
        let top = try Reference.evaluate(.topK(k: s), [scores])[0]  // k ≥ visible keys
        let kv = try f32([s, 1, d], k.floats), v = try f32([s, 1, d], rand(s * d, 20))
        let sparse = try Reference.evaluate(.sparseAttention(SparseAttentionParams()), [q, kv, v, top])[0].floats
        // Dense: q as [1, H, T, D], k/v as [1, 1, S, D].
        var qd = [Float](repeating: 0, count: t * h * d)
        for ti in 0..<t { for hi in 0..<h { for c in 0..<d { qd[(hi * t + ti) * d + c] = q.floats[(ti * h + hi) * d + c] } } }
        let dense = try Reference.evaluate(.attention(AttentionParams(causal: true)),
                                           [try f32([1, h, t, d], qd), try f32([1, 1, s, d], k.floats), try f32([1, 1, s, d], v.floats)])[0].floats
        for ti in 0..<t { for hi in 0..<h { for c in 0..<d {
            #expect(abs(sparse[(ti * h + hi) * d + c] - dense[(hi * t + ti) * d + c]) < 1e-6)
        } } }
    }

    @Test func dataDependentErrors() throws {
        let x = try f32([3, 2], rand(6, 21)), w = try f32([2, 2, 2], rand(8, 22))
        #expect(throws: PolychipError.self) { try Reference.evaluate(.groupedMatmul(transposeB: false), [x, w, try HostTensor([3], int32s: [0, 2, 1])]) }
        #expect(throws: PolychipError.self) { try Reference.evaluate(.moePermute(numExperts: 2), [x, try HostTensor([3, 1], int32s: [0, 2, 1])]) }
        #expect(throws: PolychipError.self) { try Reference.evaluate(.moeCombine, [x, try HostTensor([3], int32s: [0, 0, 1]), try f32([3, 1], [1, 1, 1])]) }
        let q = try f32([1, 1, 2], [1, 1]), kv = try f32([2, 1, 2], [1, 1, 1, 1])
        #expect(throws: PolychipError.self) { try Reference.evaluate(.sparseAttention(SparseAttentionParams()), [q, kv, kv, try HostTensor([1, 1], int32s: [2])]) }
    }

    @Test func deterministic() throws {
        let q = try f32([1, 4, 7, 8], rand(224, 23)), k = try f32([1, 2, 9, 8], rand(144, 24))
        let a = try Reference.evaluate(.attention(AttentionParams(causal: true)), [q, k, k])
        let b = try Reference.evaluate(.attention(AttentionParams(causal: true)), [q, k, k])
        #expect(a == b)
    }
}
