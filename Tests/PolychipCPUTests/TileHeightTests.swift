import Testing
import CPolychipKernels
@testable import PolychipCPU

/// A GEMM tile with fewer rows than MR (the last tile of an MoE expert's segment, a matrix's
/// bottom edge) may take a shorter kernel (AVX2: at most 4 rows run 8 FMA chains instead of
/// 12). Which rows share a tile depends on the split between tasks, so every row must come out
/// with the same bits whatever the tile's height: on every table, rows computed in a tile of
/// each height 1 ... MR equal the same rows of a full tile.
@Suite struct TileHeightTests {
    @Test func everyHeightGivesTheFullTilesBits() {
        for table in CPUISA.supported.flatMap(KernelTable.all) {
            table.with {
                let mr = pck_sgemm_mr(), nr = pck_sgemm_nr(), kc = 67
                var state: UInt32 = 12345
                func next() -> Float { state = state &* 1_664_525 &+ 1_013_904_223; return Float(Int32(bitPattern: state) >> 8) / Float(1 << 23) }
                let ap = (0..<(mr * kc)).map { _ in next() }, bp = (0..<(nr * kc)).map { _ in next() }
                let c0 = (0..<(mr * nr)).map { _ in next() }
                for accumulate: Int32 in [0, 1] {
                    var full = c0
                    pck_sgemm_kernel_pf(kc, ap, bp, &full, nr, mr, nr, accumulate, nil)
                    for m in 1...mr {
                        for n in [nr, nr - 3] {
                            var part = c0
                            pck_sgemm_kernel_pf(kc, ap, bp, &part, nr, m, n, accumulate, nil)
                            for i in 0..<mr {
                                for j in 0..<nr {
                                    let want = i < m && j < n ? full[i * nr + j] : c0[i * nr + j]
                                    #expect(part[i * nr + j].bitPattern == want.bitPattern,
                                            "\(table.gemmName): m \(m) n \(n) accumulate \(accumulate), element (\(i), \(j))")
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
