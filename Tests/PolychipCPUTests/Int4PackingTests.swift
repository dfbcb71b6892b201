import Testing
import CPolychipKernels
@testable import PolychipCPU

/// INT4 B-panel packing (the MoE layer's and the INT4 GEMM's dequantization) has a scalar, an
/// AVX2 and an AVX-512 body, each with its own fast path and fallbacks. Every table this machine
/// offers must give each packed weight as `Float(u - z) * s` rounded once — the scalar
/// definition — bit for bit: with and without zero points, at group sizes from 8 to K, K blocks
/// with and without a 64-deep tail, ragged last slivers, and subnormal scales (which a packing
/// that pre-scales `s` by a power of two would round differently).
@Suite struct Int4PackingTests {
    static let n = 100, k = 2048

    struct Weights {
        var q: [UInt8], scales: [Float], zeros: [Int8]
        let g: Int
        init(g: Int) {
            self.g = g
            let ng = Int4PackingTests.k / g
            var state: UInt64 = 0x2545_f491_4f6c_dd1d
            func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
            q = (0..<(Int4PackingTests.n * Int4PackingTests.k / 2)).map { _ in UInt8(truncatingIfNeeded: next()) }
            scales = (0..<(Int4PackingTests.n * ng)).map { i in
                i % 11 == 0 ? Float(bitPattern: UInt32(next() & 0x7f_ffff) | 1) // subnormal
                    : Float(next() % 1000 + 1) * (i % 2 == 0 ? 1e-3 : -7e-4)
            }
            zeros = (0..<(Int4PackingTests.n * ng)).map { _ in Int8(Int(next() % 24) - 8) }
        }

        func expected(_ row: Int, _ col: Int, zeros useZeros: Bool) -> Float {
            let b = q[row * Int4PackingTests.k / 2 + col / 2]
            let u = Int(col & 1 == 1 ? b >> 4 : b & 15)
            let gi = row * (Int4PackingTests.k / g) + col / g
            return Float(u - (useZeros ? Int(zeros[gi]) : 8)) * scales[gi]
        }
    }

    static var tables: [KernelTable] { CPUISA.supported.flatMap(KernelTable.all) }

    @Test(arguments: [8, 32, 128, 2048]) func everyTablePacksExactly(_ g: Int) {
        let w = Weights(g: g)
        let ng = Self.k / g
        // (k0, kc): aligned 64-deep blocks, a 64-block plus an 8-deep tail, a short block.
        let blocks = [(0, 256), (512, 72), (1024, 8), (1536, 512)].filter { $0.0 % 8 == 0 }
        for table in Self.tables {
            table.with {
                let nr = table.nr
                for (k0, kc) in blocks {
                    for (n0, nc) in [(0, nr), (8, 2 * nr + 5), (Self.n - 7, 7)] where n0 + nc <= Self.n {
                        for useZeros in [false, true] {
                            let slivers = (nc + nr - 1) / nr
                            var out = [Float](repeating: .nan, count: slivers * kc * nr)
                            w.q.withUnsafeBufferPointer { q in
                                w.scales.withUnsafeBufferPointer { s in
                                    w.zeros.withUnsafeBufferPointer { z in
                                        pck_int4_pack_b(kc, nc, k0, n0, g, q.baseAddress, Self.k / 2, s.baseAddress, ng,
                                                        useZeros ? z.baseAddress : nil, ng, &out)
                                    }
                                }
                            }
                            var bad = 0
                            for j in 0..<(slivers * nr) {
                                for kk in 0..<kc {
                                    let got = out[(j / nr) * kc * nr + kk * nr + j % nr]
                                    let want: Float = j < nc ? w.expected(n0 + j, k0 + kk, zeros: useZeros) : 0
                                    if got.bitPattern != want.bitPattern {
                                        if bad == 0 {
                                            Issue.record("\(table.gemmName) g \(g) k0 \(k0) kc \(kc) n0 \(n0) nc \(nc) zeros \(useZeros): column \(j) depth \(kk) is \(got), not \(want)")
                                        }
                                        bad += 1
                                    }
                                }
                            }
                            #expect(bad == 0)
                        }
                    }
                }
            }
        }
    }
}
