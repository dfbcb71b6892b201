import CPolychipKernels
import Foundation
import PolychipCore

/// An instruction-set path of the CPU backend's C kernels.
public enum CPUISA: String, CaseIterable, Sendable, Codable, Hashable {
    /// Portable C, any CPU.
    case scalar
    /// x86-64 AVX2 + FMA + F16C.
    case avx2
    /// x86-64 AVX-512 F/VL/BW/DQ (the bf16 GEMM also needs AVX512_BF16).
    case avx512
    /// AArch64 Advanced SIMD.
    case neon

    var pck: pck_isa {
        switch self {
        case .scalar: return PCK_ISA_SCALAR
        case .avx2: return PCK_ISA_AVX2
        case .avx512: return PCK_ISA_AVX512
        case .neon: return PCK_ISA_NEON
        }
    }

    /// Whether this CPU (and this build) can run the path.
    public var isSupported: Bool { pck_isa_supported(pck) != 0 }

    /// Every path this machine can run, scalar first.
    public static var supported: [CPUISA] { allCases.filter(\.isSupported) }

    /// Vector width in bits (the preference between paths the probe cannot tell apart).
    var width: Int {
        switch self {
        case .scalar: return 32
        case .avx2: return 256
        case .avx512: return 512
        case .neon: return 128
        }
    }

    /// What the path needs from the CPU, for errors.
    var requirement: String {
        switch self {
        case .scalar: return "nothing"
        case .avx2: return "x86-64 with AVX2, FMA and F16C"
        case .avx512: return "x86-64 with AVX-512 F, VL, BW and DQ"
        case .neon: return "AArch64"
        }
    }
}

/// One C kernel table: an ISA's kernels with one GEMM microkernel shape. Tables are static
/// C data, so the pointer is valid (and immutable) for the life of the process.
struct KernelTable: @unchecked Sendable, Hashable {
    let raw: OpaquePointer

    var isa: CPUISA { CPUISA.allCases.first { $0.pck == pck_table_isa(raw) } ?? .scalar }
    var mr: Int { pck_table_mr(raw) }
    var nr: Int { pck_table_nr(raw) }
    /// "avx512 14x32".
    var gemmName: String { String(cString: pck_table_gemm_name(raw)) }

    /// Every table of `isa` (one per GEMM shape); empty when the CPU lacks it.
    static func all(_ isa: CPUISA) -> [KernelTable] {
        (0..<Int(pck_gemm_shapes(isa.pck))).compactMap { pck_table(isa.pck, Int32($0)).map(KernelTable.init(raw:)) }
    }

    /// Runs `body` with this table as the calling thread's kernels, then restores the old one.
    func with<R>(_ body: () throws -> R) rethrows -> R {
        let old = pck_use(raw)
        defer { pck_use(old) }
        return try body()
    }
}

/// The kernel families the CPU backend chooses a table for separately: each runs on the
/// table that is fastest for it on this machine.
public enum CPUKernelFamily: String, CaseIterable, Sendable, Codable {
    /// Long-K GEMMs: matmul, grouped matmul, the INT4 GEMM (M > 8), the MoE layer; also
    /// every memory-bound kernel (their vector code is the same on every x86 table).
    case gemm
    /// Short-K tiles: attention, sparse attention, the lightning indexer (K = head dim).
    case attention
    /// Expert GEMMs: the MoE layer and grouped matmuls (INT4 or float), whose segments are
    /// tens of rows, so how well a tile's MR divides them matters as much as its speed.
    case moe
    /// bf16 × bf16 GEMMs (matmul, grouped matmul, MoE layer with bf16 experts): the pair
    /// kernel (`vdpbf16ps`) where the CPU has AVX512_BF16, else the GEMM family's table.
    case bf16Gemm

    /// The family that runs `op` on operands of `dtype`.
    static func of(_ op: Op, dtype: DType) -> CPUKernelFamily {
        switch op {
        case .attention, .sparseAttention, .lightningIndexer: return .attention
        case .matmul: return dtype == .bf16 ? .bf16Gemm : .gemm
        case .groupedMatmul: return dtype == .bf16 ? .bf16Gemm : .moe
        case .int4GroupedMatmul: return .moe
        case .moeLayer(let p):
            if case .float = p.experts, dtype == .bf16 { return .bf16Gemm }
            return .moe
        default: return .gemm
        }
    }
}

/// What the CPU backend runs on this machine, per kernel family, and why: the ISA path and
/// GEMM microkernel shape (measured where several compete), and the bf16 GEMM arithmetic.
/// `polychip devices` prints it.
public struct CPUKernelPlan: Sendable {
    /// One family's table and the reason for it.
    public struct Choice: Sendable {
        /// The ISA path.
        public let isa: CPUISA
        /// The GEMM microkernel, e.g. `avx512 14x32`.
        public let gemmShape: String
        /// Why, in words (with the probe's figures where one ran).
        public let reason: String
        let table: KernelTable
    }

    /// The table of each family.
    public let choices: [CPUKernelFamily: Choice]
    /// The ISA path of the GEMM family (the device's headline `isa`).
    public var isa: CPUISA { choices[.gemm]!.isa }
    /// How bf16 × bf16 GEMMs multiply: `vdpbf16ps pairs` (AVX512_BF16; its own numerics,
    /// docs/kernels.md) or `widened to f32`.
    public let bf16Gemm: String
    /// Measured FMA rate of one core at the GEMM family's vector width, GFLOP/s (the f32 peak).
    public let fmaGflopsPerCore: Double
    /// The FMA rates behind it, in words (with AVX-512: whether a 512-bit FMA is one
    /// operation or two 256-bit halves on this core).
    public let fmaNote: String

    /// Every table the plan uses (for blockings).
    var tables: [KernelTable] { Array(Set(choices.values.map(\.table))) }
    /// Whether bf16 GEMMs take the pair kernel.
    var bf16Pairs: Bool { choices[.bf16Gemm]!.table.with { pck_bgemm_available() != 0 } }
    /// The table that runs `op` on `dtype`.
    func table(for op: Op, dtype: DType) -> KernelTable { choices[CPUKernelFamily.of(op, dtype: dtype)]!.table }

    /// The plan for this process: `isa` forces a path (it must be supported), `nil` lets
    /// the probes decide among the supported ones; `tile` (`"14x32"`) restricts the GEMM
    /// shapes. Made once per process and setting, so every device with the same setting runs
    /// the same kernels (and gives the same bits).
    static func make(isa forced: CPUISA?, tile: String? = nil, selector: String) throws -> CPUKernelPlan {
        if let forced, !forced.isSupported {
            let have = CPUISA.supported.map(\.rawValue).joined(separator: ", ")
            throw PolychipError.unknownDevice(selector: selector, reason: "isa \(forced.rawValue) needs \(forced.requirement), which this CPU does not offer (supported: \(have))")
        }
        let isas = forced.map { [$0] } ?? {
            let simd = CPUISA.supported.filter { $0 != .scalar }
            return simd.isEmpty ? [.scalar] : simd
        }()
        var candidates = isas.flatMap(KernelTable.all)
        if let tile {
            let all = candidates.map(\.gemmName)
            candidates = candidates.filter { $0.gemmName.hasSuffix(" " + tile) }
            guard !candidates.isEmpty else {
                throw PolychipError.unknownDevice(selector: selector, reason: "no GEMM tile \(tile) on the paths here (\(all.joined(separator: ", ")))")
            }
        }
        let key = Key(isa: forced, tile: tile)
        return cache.withLock { c in
            if let p = c[key] { return p }
            let p = CPUKernelPlan(candidates, forced: forced != nil || tile != nil)
            c[key] = p
            return p
        }
    }

    private struct Key: Hashable { var isa: CPUISA?; var tile: String? }
    private static let cache = Locked([Key: CPUKernelPlan]())

    /// Picks each family's table among the candidates (the forced path's or tile's, else
    /// every SIMD path's).
    private init(_ candidates: [KernelTable], forced: Bool) {
        let widest = candidates.map(\.isa).max { $0.width < $1.width }
        // The preferred table: the widest ISA's first shape (most registers, fewest loads
        // per FMA); another must beat it clearly to be taken.
        let preferred = candidates.first { $0.isa == widest } ?? candidates[0]
        // Probed choices are remembered per machine (KernelPlanCache.swift), so every process
        // here runs the same kernels whatever the load when it started.
        let cacheKey = KernelPlanCache.key(candidates: candidates.map(\.gemmName))
        let remembered = candidates.count > 1 && !Probe.skipped ? KernelPlanCache.load(key: cacheKey) ?? [:] : [:]
        var probed: [String: KernelPlanCache.Entry] = [:]
        func pick(_ family: CPUKernelFamily, _ probe: (KernelTable, Workspace) -> Double, _ what: String) -> Choice {
            guard candidates.count > 1 else {
                let why = forced ? "forced (POLYCHIP_CPU_ISA / isa=, POLYCHIP_CPU_GEMM_TILE / tile=)" : "the only SIMD path on this CPU"
                return Choice(isa: preferred.isa, gemmShape: preferred.gemmName, reason: why, table: preferred)
            }
            if Probe.skipped {
                return Choice(isa: preferred.isa, gemmShape: preferred.gemmName,
                              reason: "debug build: the probes would time unoptimized C, so the widest path is taken unmeasured", table: preferred)
            }
            if let e = remembered[family.rawValue], let table = candidates.first(where: { $0.gemmName == e.gemmShape }) {
                probed[family.rawValue] = e
                return Choice(isa: table.isa, gemmShape: table.gemmName, reason: e.reason + "; remembered for this machine", table: table)
            }
            let rates = Probe.rates(candidates, probe)
            let choice = Probe.choose(zip(candidates.map(\.gemmName), rates).map { ($0, $1) }, preferred: preferred.gemmName)
            let table = candidates.first { $0.gemmName == choice.name } ?? preferred
            let reason = "\(choice.why) (\(what))"
            probed[family.rawValue] = KernelPlanCache.Entry(gemmShape: table.gemmName, reason: reason)
            return Choice(isa: table.isa, gemmShape: table.gemmName, reason: reason, table: table)
        }
        let gemm = pick(.gemm, Probe.gemm, "1-thread \(Probe.gemmShape) GEMM probe, GFLOP/s")
        let attention = pick(.attention, Probe.attention, "1-thread flash-attention block probe, GFLOP/s")
        let moe = pick(.moe, Probe.expert, "1-thread INT4 expert GEMM probe (\(Probe.expertRows.map(String.init).joined(separator: "/")) rows), GFLOP/s")
        if !probed.isEmpty && probed != remembered { KernelPlanCache.store(key: cacheKey, probed) }
        // bf16: the pair kernel wherever a candidate has it (a fixed rule, not a timing:
        // it changes numerics), else the GEMM family's table.
        let pairs = candidates.first { t in t.with { pck_bgemm_available() != 0 } && t.gemmName == gemm.gemmShape }
            ?? candidates.first { t in t.with { pck_bgemm_available() != 0 } }
        let bf16 = pairs.map { Choice(isa: $0.isa, gemmShape: $0.gemmName, reason: "the CPU has AVX512_BF16: bf16 pairs on vdpbf16ps", table: $0) } ?? gemm
        choices = [.gemm: gemm, .attention: attention, .moe: moe, .bf16Gemm: bf16]
        bf16Gemm = pairs != nil ? "vdpbf16ps pairs (AVX512_BF16)" : "widened to f32"
        let rate = FMAProbe.gflops(gemm.isa)
        fmaGflopsPerCore = rate
        if CPUISA.avx512.isSupported && CPUISA.avx2.isSupported {
            let (wide, narrow) = gemm.isa == .avx512 ? (rate, FMAProbe.gflops(.avx2)) : (FMAProbe.gflops(.avx512), rate)
            fmaNote = String(format: "512-bit %.1f, 256-bit %.1f GFLOP/s per core: %@", wide, narrow,
                             wide < 1.5 * narrow ? "512-bit FMAs run as two 256-bit halves (same peak; AVX-512 gains registers, not width)"
                                                 : "full-width 512-bit FMA units")
        } else {
            fmaNote = String(format: "%@ %.1f GFLOP/s per core", gemm.isa.rawValue, rate)
        }
    }
}

/// The measured FMA peak of one core at an ISA's vector width: 12 independent chains,
/// the best of several short rounds (about 0.3 ms each, thread CPU time).
enum FMAProbe {
    static let iterations: Int64 = 100_000
    static let rounds = 5

    static func gflops(_ isa: CPUISA) -> Double {
        var best = 0.0
        for _ in 0..<rounds {
            let t0 = Probe.threadClock()
            let flops = pck_fma_burn(isa.pck, iterations)
            let dt = Probe.threadClock() - t0
            if dt > 0 { best = max(best, flops / dt / 1e9) }
        }
        return best
    }
}

/// The timing probes behind the table choices: each runs the real code of its family on
/// one thread, L2-resident, for every candidate table, alternating candidates over several
/// rounds and keeping each one's best time. Times are the thread's CPU time, so a
/// neighbour that takes the core in the middle of a call does not count against it.
enum Probe {
    /// Debug builds compile the C kernels unoptimized: their timings say nothing about the
    /// release build (and cost seconds per process), so the plan takes the preferred table.
    #if DEBUG
    static let skipped = true
    #else
    static let skipped = false
    #endif

    /// Seconds of CPU time the calling thread has used.
    static func threadClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// GEMM probe problem (multiples of every tile in use): an A block of a large GEMM
    /// against a few B slivers, deep enough for several K blocks.
    static let gemmM = 504, gemmN = 192, gemmK = 768
    static var gemmShape: String { "\(gemmM)×\(gemmN)×\(gemmK)" }
    /// Expert probe: INT4 (g32) expert GEMMs of these row counts (about 64 ± 8, the tokens
    /// an expert gets at T 512, top-8 of 64) × `expertN` × `expertK`.
    static let expertRows = [57, 64, 71], expertN = 256, expertK = 1024, expertGroup = 32
    /// Attention probe: one row block of a head against this many keys, head dim 128.
    static let attentionKeys = 512, attentionD = 128
    /// Rounds over all candidates.
    static let rounds = 4
    /// Another candidate replaces the preferred one only when faster by more than this
    /// fraction: within it the machine cannot tell them apart reliably, and a choice that
    /// flipped from run to run would change results from run to run.
    static let margin = 0.05

    /// GFLOP/s per candidate, best of `rounds` after one warm-up round (which faults in
    /// the operands and each table's workspace; both are kept across rounds).
    static func rates(_ tables: [KernelTable], _ probe: (KernelTable, Workspace) -> Double, rounds: Int = rounds) -> [Double] {
        let spaces = tables.map { _ in Workspace() }
        var best = [Double](repeating: 0, count: tables.count)
        for round in 0...rounds {
            for (i, t) in tables.enumerated() {
                let r = t.with { probe(t, spaces[i]) }
                if round > 0 { best[i] = max(best[i], r) }
            }
        }
        return best
    }

    /// One packed GEMM through `Gemm.serial` (B panel, A blocks, the tile loop), in GFLOP/s.
    static func gemm(_ t: KernelTable, _ ws: Workspace) -> Double {
        let (m, n, k) = (gemmM, gemmN, gemmK)
        let bl = GemmBlocking(topology: HostTopology.current, cores: 1, table: t)
        let a = ws.buffer(20, m * k, as: Float.self), b = ws.buffer(21, k * n, as: Float.self)
        let c = ws.buffer(22, m * n, as: Float.self)
        for i in 0..<(m * k) { a[i] = Float(i % 13) * 0.01 }
        for i in 0..<(k * n) { b[i] = Float(i % 7) * 0.01 }
        let t0 = threadClock()
        Gemm.serial(bl, m: m, i0: 0, n: n, j0: 0, k: k, a: .strided(a, PCK_DT_F32, rs: k, cs: 1),
                    b: .strided(b, PCK_DT_F32, rs: n, cs: 1), c: c, ldc: n, accumulate: false, ws: ws)
        return 2.0 * Double(m * n * k) / max(threadClock() - t0, 1e-9) / 1e9
    }

    /// INT4 expert GEMMs (`Gemm.serial` with the weights dequantized into B slivers, as
    /// the MoE layer runs them), in GFLOP/s.
    static func expert(_ t: KernelTable, _ ws: Workspace) -> Double {
        let (n, k, g) = (expertN, expertK, expertGroup), mMax = expertRows.max()!
        let bl = GemmBlocking(topology: HostTopology.current, cores: 1, table: t)
        let a = ws.buffer(20, mMax * k, as: Float.self), c = ws.buffer(21, mMax * n, as: Float.self)
        let q = ws.buffer(22, n * k / 2, as: UInt8.self), sc = ws.buffer(23, n * k / g, as: Float.self)
        for i in 0..<(mMax * k) { a[i] = Float(i % 13) * 0.01 - 0.06 }
        for i in 0..<(n * k / 2) { q[i] = UInt8(truncatingIfNeeded: i &* 37) }
        for i in 0..<(n * k / g) { sc[i] = 0.01 }
        let w = Int4Weights(q: q, ldw: k / 2, scales: sc, lds: k / g, zeros: nil, ldz: k / g, groupSize: g)
        var flops = 0.0
        let t0 = threadClock()
        for m in expertRows {
            Gemm.serial(bl, m: m, i0: 0, n: n, j0: 0, k: k, a: .strided(a, PCK_DT_F32, rs: k, cs: 1), b: .int4(w),
                        c: c, ldc: n, accumulate: false, ws: ws)
            flops += 2.0 * Double(m * n * k)
        }
        return flops / max(threadClock() - t0, 1e-9) / 1e9
    }

    /// One flash-attention row block (`Flash.run`) against pre-packed keys, in GFLOP/s
    /// (4·D per pair).
    static func attention(_ t: KernelTable, _ ws: Workspace) -> Double {
        let bl = GemmBlocking(topology: HostTopology.current, cores: 1, table: t)
        let (d, keys, rows) = (attentionD, attentionKeys, bl.attention.br)
        let nr = bl.nr
        let q = ws.buffer(20, rows * d, as: Float.self), qp = ws.buffer(21, (rows + bl.mr) * d, as: Float.self)
        let kv = ws.buffer(22, keys * d, as: Float.self)
        let kp = ws.buffer(23, (keys + nr) * d, as: Float.self), vp = ws.buffer(24, (d + nr) * keys, as: Float.self)
        for i in 0..<(rows * d) { q[i] = Float(i % 11) * 0.01 }
        for i in 0..<(keys * d) { kv[i] = Float(i % 7) * 0.01 }
        pck_sgemm_pack_a(PCK_DT_F32, rows, d, q, d, 1, qp)
        pck_sgemm_pack_b(PCK_DT_F32, d, keys, kv, 1, d, kp)
        pck_sgemm_pack_b(PCK_DT_F32, keys, d, kv, d, 1, vp)
        let limit = ws.buffer(25, rows, as: Int.self), o = ws.buffer(26, rows * d, as: Float.self)
        let m = ws.buffer(27, rows, as: Float.self), l = ws.buffer(28, rows, as: Float.self)
        for r in 0..<rows { limit[r] = keys; m[r] = -.infinity; l[r] = 0 }
        o.update(repeating: 0, count: rows * d)
        let t0 = threadClock()
        Flash.run(bl, rows: rows, d: d, dv: d, qp: qp, kStart: 0, kEnd: keys, limit: limit, o: o, m: m, l: l, ws: ws) { j0, _ in
            Flash.KVBlock(kp: kp + j0 * d, vp: vp + j0 * nr, vStride: keys * nr)
        }
        return 4.0 * Double(rows * keys * d) / max(threadClock() - t0, 1e-9) / 1e9
    }

    /// The fastest candidate, unless it beats `preferred` by no more than `margin`.
    static func choose(_ rates: [(name: String, gflops: Double)], preferred: String, margin: Double = margin) -> (name: String, why: String) {
        let pref = rates.first { $0.name == preferred } ?? rates[0]
        let fastest = rates.max { $0.gflops < $1.gflops } ?? pref
        let list = rates.map { String(format: "%@ %.0f", $0.name, $0.gflops) }.joined(separator: ", ")
        if fastest.name != pref.name && fastest.gflops > pref.gflops * (1 + margin) {
            return (fastest.name, "measured fastest: \(list)")
        }
        let note = fastest.name == pref.name ? "measured fastest" : "within \(Int(margin * 100))% of the fastest, so the widest path"
        return (pref.name, "\(note): \(list)")
    }
}
