import Foundation
import Testing
import CPolychipKernels
@testable import PolychipCPU

/// The AVX2 INT4 GEMV has two weight paths: nibbles converted to float, or read as denormal
/// floats against activations pre-scaled by 2^(E+149-p). The second is only taken where it
/// rounds exactly like the first, so the two must agree bit for bit, on every kernel shape
/// (m = 1 assembly loop, the intrinsics core for other m and leftover rows, K tails) and on
/// every table (the AVX-512 tables have their own m = 1 kernels: g = 32, and g % 64 = 0,
/// which must also give the AVX2 table's bits).
///
/// Serialized as a whole: the weight-path switch (`pck_int4_denormal_weights`) is process-wide.
@Suite(.serialized) struct Int4GemvPathTests {
    struct Case {
        var m, n, k, g: Int
        var zeros: Bool
    }

    static let cases = [
        Case(m: 1, n: 37, k: 512, g: 32, zeros: false),  // 9 row quads + 1 leftover row
        Case(m: 1, n: 24, k: 1024, g: 128, zeros: true),
        Case(m: 1, n: 16, k: 448, g: 64, zeros: true),   // one block per group
        Case(m: 1, n: 10, k: 768, g: 128, zeros: false), // even group count, 2 leftover rows
        Case(m: 1, n: 7, k: 1280, g: 256, zeros: true),  // odd group count, 3 leftover rows
        Case(m: 1, n: 5, k: 256, g: 256, zeros: false),  // a single group
        Case(m: 1, n: 12, k: 96, g: 32, zeros: false),   // 32-weight K tail
        Case(m: 1, n: 9, k: 320, g: 32, zeros: true),    // 128-weight blocks and a 64-weight one
        Case(m: 2, n: 13, k: 256, g: 32, zeros: true),
        Case(m: 3, n: 10, k: 384, g: 128, zeros: false),
        Case(m: 5, n: 9, k: 256, g: 64, zeros: true),
        Case(m: 8, n: 7, k: 512, g: 32, zeros: false),
    ]

    /// Activation magnitudes: (log2 of the largest, log2 of the smallest), random signs.
    enum Range: CaseIterable {
        case unit, wide, large, tiny, tooWide, nonFinite

        var denormalPath: Bool { self != .tooWide && self != .nonFinite }
    }

    struct Rng {
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        mutating func next() -> UInt64 {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
        mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    }

    func activations(_ count: Int, _ range: Range, _ rng: inout Rng) -> [Float] {
        func magnitude(_ lo: Float, _ hi: Float, _ u: Float) -> Float { Float(exp2(Double(lo + (hi - lo) * u))) }
        var x = (0..<count).map { _ -> Float in
            let u = rng.uniform(), sign: Float = rng.next() & 1 == 0 ? 1 : -1
            switch range {
            case .unit, .tooWide, .nonFinite: return sign * (0.01 + u)
            case .wide: return sign * magnitude(-40, 40, u)
            case .large: return sign * magnitude(60, 100, u)
            case .tiny: return sign * magnitude(-90, -60, u)
            }
        }
        x[count / 3] = 0  // zeros are allowed on the denormal path
        if range == .tooWide { x[count / 2] = 1e-35 }
        if range == .nonFinite { x[count / 2] = .infinity }
        return x
    }

    /// y for every activation row, and whether the workspace chose the denormal path.
    func gemv(_ c: Case, x: [Float], w: [UInt8], s: [Float], z: [Int8]?, denormal: Bool) -> ([Float], Bool) {
        pck_int4_denormal_weights(denormal ? 1 : 0)
        defer { pck_int4_denormal_weights(1) }
        var xp = [Float](repeating: .nan, count: pck_int4_xprep_size(c.m, c.k, c.g))
        var y = [Float](repeating: .nan, count: c.m * c.n)
        let ng = c.k / c.g
        pck_int4_xprep(c.m, c.k, c.g, x, c.k, &xp)
        let path = pck_int4_xprep_denormal(xp, c.k, c.g) != 0
        if let z {
            pck_int4_gemv(c.m, c.k, c.g, xp, w, c.k / 2, s, ng, z, ng, 0, c.n, &y, c.n, 0)
        } else {
            pck_int4_gemv(c.m, c.k, c.g, xp, w, c.k / 2, s, ng, nil, ng, 0, c.n, &y, c.n, 0)
        }
        return (y, path)
    }

    @Test(arguments: CPUISA.supported.flatMap(KernelTable.all).map(\.gemmName))
    func bothWeightPathsGiveTheSameBits(_ tableName: String) {
        let table = CPUISA.supported.flatMap(KernelTable.all).first { $0.gemmName == tableName }!
        table.with { bothPaths(simd: [.avx2, .avx512].contains(table.isa) && pck_int4_denormals_fast() != 0) }
    }

    /// The AVX-512 tables' m = 1, g % 64 = 0 kernel is the AVX2 one's arithmetic in the same
    /// order with more registers: same bits, on both weight paths.
    @Test(arguments: CPUISA.supported.contains(.avx512) ? KernelTable.all(.avx512).map(\.gemmName) : [])
    func groupKernelGivesTheAVX2Bits(_ tableName: String) throws {
        let avx512 = KernelTable.all(.avx512).first { $0.gemmName == tableName }!
        let avx2 = try #require(KernelTable.all(.avx2).first)
        var rng = Rng()
        for c in Self.cases where c.m == 1 && c.g % 64 == 0 {
            let ng = c.k / c.g
            let w = (0..<(c.n * c.k / 2)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let s = (0..<(c.n * ng)).map { _ in 0.005 + 0.05 * rng.uniform() }
            let z: [Int8]? = c.zeros ? (0..<(c.n * ng)).map { _ in Int8(rng.next() % 16) } : nil
            for range in Range.allCases {
                let x = activations(c.k, range, &rng)
                for denormal in [true, false] {
                    let (want, _) = avx2.with { gemv(c, x: x, w: w, s: s, z: z, denormal: denormal) }
                    let (got, _) = avx512.with { gemv(c, x: x, w: w, s: s, z: z, denormal: denormal) }
                    #expect(got.map(\.bitPattern) == want.map(\.bitPattern),
                            "n \(c.n) k \(c.k) g \(c.g) zeros \(c.zeros), \(range), denormal path allowed \(denormal)")
                }
            }
        }
    }

    func bothPaths(simd: Bool) {
        var rng = Rng()
        for c in Self.cases {
            let ng = c.k / c.g
            let w = (0..<(c.n * c.k / 2)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let s = (0..<(c.n * ng)).map { _ in 0.005 + 0.05 * rng.uniform() }
            let z: [Int8]? = c.zeros ? (0..<(c.n * ng)).map { _ in Int8(rng.next() % 16) } : nil
            for range in Range.allCases {
                let x = activations(c.m * c.k, range, &rng)
                let (yd, pathD) = gemv(c, x: x, w: w, s: s, z: z, denormal: true)
                let (yc, pathC) = gemv(c, x: x, w: w, s: s, z: z, denormal: false)
                let what = "m \(c.m) n \(c.n) k \(c.k) g \(c.g) zeros \(c.zeros), \(range)"
                #expect(pathD == (simd && range.denormalPath), "path chosen, \(what)")
                #expect(!pathC, "conversion forced, \(what)")
                #expect(yd.map(\.bitPattern) == yc.map(\.bitPattern), "bits differ, \(what)")
                if range == .nonFinite { continue }
                // both against a double-precision sum (neither may be garbage)
                for i in 0..<c.m {
                    for r in 0..<c.n {
                        var ref = 0.0, mag = 0.0
                        for k in 0..<c.k {
                            let byte = w[r * c.k / 2 + k / 2]
                            let u = Double(k % 2 == 0 ? byte & 15 : byte >> 4)
                            let zp = Double(z?[r * ng + k / c.g] ?? 8)
                            let t = Double(x[i * c.k + k]) * (u - zp) * Double(s[r * ng + k / c.g])
                            ref += t; mag += abs(t)
                        }
                        let got = Double(yd[i * c.n + r])
                        #expect(abs(got - ref) <= 1e-5 * mag, "row \(r) of x \(i): \(got) vs \(ref), \(what)")
                    }
                }
            }
        }
    }
}
