import Foundation
import Testing
import PolychipCore
import PolychipReference
@testable import PolychipCPU
import CPolychipKernels

/// The per-machine choices: forcing a path, the errors for paths a machine lacks, the
/// decisions the timing probes feed (tested with made-up timings, so both outcomes are
/// covered on any machine), and the bf16 pair GEMM's documented numerics.
@Suite struct KernelPlanTests {
    @Test func isaAndTileOptionsParse() throws {
        let o = try CPUDeviceOptions(profile: "threads=1,isa=avx2,tile=6x16", base: CPUDeviceOptions())
        #expect(o.isa == .avx2 && o.tile == "6x16" && o.threads == 1)
        #expect(o.profileText == "threads=1,isa=avx2,tile=6x16")
        #expect(throws: PolychipError.self) { try CPUDeviceOptions(profile: "isa=avx3", base: CPUDeviceOptions()) }
        #expect(try CPUDeviceOptions.isaFromEnvironment(["POLYCHIP_CPU_ISA": " AVX2 "]) == .avx2)
        #expect(try CPUDeviceOptions.isaFromEnvironment([:]) == nil)
        #expect(throws: PolychipError.self) { try CPUDeviceOptions.isaFromEnvironment(["POLYCHIP_CPU_ISA": "sse9"]) }
        #expect(try CPUDeviceOptions.fromEnvironment(["POLYCHIP_CPU_ISA": "scalar", "POLYCHIP_CPU_GEMM_TILE": "4x8"]) ==
                CPUDeviceOptions(isa: .scalar, tile: "4x8"))
    }

    @Test func aPathTheMachineLacksIsATypedError() throws {
        let missing = try #require(CPUISA.allCases.first { !$0.isSupported })
        do {
            _ = try CPUDevice(options: CPUDeviceOptions(isa: missing))
            Issue.record("opened isa \(missing) on a CPU without it")
        } catch let PolychipError.unknownDevice(selector, reason) {
            #expect(selector.contains("isa=\(missing.rawValue)"))
            #expect(reason.contains("supported:"))
        }
        #expect(throws: PolychipError.self) { try CPUBackend().device(profile: "isa=\(missing.rawValue)", index: nil) }
        #expect(throws: PolychipError.self) { try CPUDevice(options: CPUDeviceOptions(tile: "99x99")) }
    }

    @Test(arguments: everyCPUPath) func forcedPathIsWhatRuns(_ options: CPUDeviceOptions) throws {
        let d = try CPUDevice(options: options)
        #expect(d.info.details["isa"] == options.isa?.rawValue)
        for family in CPUKernelFamily.allCases where family != .bf16Gemm {
            #expect(d.plan.choices[family]!.gemmShape == "\(options.isa!.rawValue) \(options.tile!)")
        }
        #expect(d.blocking.mr * 100 + d.blocking.nr > 0 && "\(d.blocking.mr)x\(d.blocking.nr)" == options.tile)
        #expect(d.plan.fmaGflopsPerCore > 0)
    }

    @Test func defaultPlanExplainsItself() throws {
        let d = try CPUDevice(options: CPUDeviceOptions())
        for key in ["isa", "gemm", "attention", "moe", "bf16Gemm", "fmaRate", "gemmBlocking", "peakFlops", "int4Weights"] {
            #expect(!(d.info.details[key] ?? "").isEmpty, "devices shows no \(key)")
        }
        // One plan per process and setting: every default device runs the same tables.
        let again = try CPUDevice(options: CPUDeviceOptions(threads: 1))
        for family in CPUKernelFamily.allCases { #expect(again.plan.choices[family]!.table == d.plan.choices[family]!.table) }
    }

    @Test func probeDecisionKeepsTheWidestPathUnlessAnotherIsClearlyFaster() {
        let pref = "avx512 14x32"
        #expect(Probe.choose([("avx2 6x16", 104), (pref, 100)], preferred: pref, margin: 0.05).name == pref)
        #expect(Probe.choose([("avx2 6x16", 106), (pref, 100)], preferred: pref, margin: 0.05).name == "avx2 6x16")
        #expect(Probe.choose([("avx2 6x16", 90), (pref, 100), ("avx512 8x48", 120)], preferred: pref, margin: 0.05).name == "avx512 8x48")
        #expect(Probe.choose([(pref, 100)], preferred: pref, margin: 0.05).why.hasPrefix("measured fastest"))
    }

    /// The probes themselves (the plan skips them in debug builds): each runs on every table
    /// and reports a positive rate.
    @Test func probesRunOnEveryTable() {
        let tables = CPUISA.supported.flatMap(KernelTable.all)
        for probe in [Probe.gemm, Probe.attention, Probe.expert] {
            let rates = Probe.rates(tables, probe, rounds: 1)
            #expect(rates.count == tables.count && rates.allSatisfy { $0 > 0 && $0.isFinite })
        }
    }

    @Test func denormalProbeDecision() {
        // The INT4 GEMV reads nibbles as denormal floats only where denormal FMAs run at
        // full rate (within 25%); both outcomes of the rule, then the probe itself.
        #expect(pck_denormal_verdict(1000, 1000) == 1)
        #expect(pck_denormal_verdict(1000, 1250) == 1)
        #expect(pck_denormal_verdict(1000, 1300) == 0)
        #expect(pck_denormal_verdict(1000, 40_000) == 0)
        var normal: UInt64 = 0, denormal: UInt64 = 0
        pck_denormal_probe(&normal, &denormal)
        #expect(CPUISA.avx2.isSupported == (normal > 0 && denormal > 0))
    }

    @Test func fmaBurnCountsItsWork() {
        for isa in CPUISA.supported {
            let lanes: Double = isa == .avx512 ? 16 : isa == .avx2 ? 8 : 1
            #expect(pck_fma_burn(isa.pck, 10) == 10 * 12 * lanes * 2)
        }
        #expect(CPUISA.allCases.filter { !$0.isSupported }.allSatisfy { pck_fma_burn($0.pck, 10) == 0 })
    }

    /// The pair kernel's numerics (docs/kernels.md): each product of two bf16 values is
    /// exact, sums are f32, bf16 subnormal inputs count as zero. Only where it runs.
    @Test func bf16PairGemmNumerics() throws {
        let d = try CPUDevice(options: CPUDeviceOptions())
        guard d.plan.bf16Pairs else { return }
        // Exact small integers: every path must give the reference bit for bit.
        let (m, k, n) = (19, 37, 45)  // odd K: the last pair is padded with zero
        let a = try HostTensor([m, k], .bf16, floats: (0..<(m * k)).map { Float($0 % 7) - 3 })
        let b = try HostTensor([k, n], .bf16, floats: (0..<(k * n)).map { Float($0 % 5) - 2 })
        #expect(try d.run(.matmul(transposeB: false), [a, b]) == Reference.evaluate(.matmul(transposeB: false), [a, b]))
        let bt = try HostTensor([n, k], .bf16, floats: (0..<(k * n)).map { Float($0 % 9) - 4 })
        #expect(try d.run(.matmul(transposeB: true), [a, bt]) == Reference.evaluate(.matmul(transposeB: true), [a, bt]))
        // A bf16 subnormal (2^-130) times 2^100 is 2^-30 in the reference; the pair kernel
        // flushes the subnormal input, so the product is 0.
        let tiny = try HostTensor([1, 2], .bf16, floats: [0x1p-130, 1])
        let big = try HostTensor([2, 1], .bf16, floats: [0x1p100, 0])
        #expect(try d.run(.matmul(transposeB: false), [tiny, big])[0].floats == [0])
        #expect(try Reference.evaluate(.matmul(transposeB: false), [tiny, big])[0].floats == [0x1p-30])
        // A product of two normal bf16 values below 2^-126 is an f32 subnormal: flushed.
        let small = try HostTensor([1, 2], .bf16, floats: [0x1p-63, 0])
        let small2 = try HostTensor([2, 1], .bf16, floats: [0x1p-64, 1])
        #expect(try d.run(.matmul(transposeB: false), [small, small2])[0].floats == [0])
        #expect(try Reference.evaluate(.matmul(transposeB: false), [small, small2])[0].floats == [0x1p-127])
    }
}

/// The per-machine record of probed choices: what one process probed, the next one reuses.
@Suite struct KernelPlanCacheTests {
    @Test func choicesRoundTripPerMachineAndBuild() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("polychip-plan-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("cpu-plan.json")
        let key = KernelPlanCache.key(candidates: ["avx2 6x16", "avx512 14x32"])
        #expect(key.contains("avx2 6x16,avx512 14x32"))
        #expect(KernelPlanCache.load(key: key, at: file) == nil)
        let entries = ["moe": KernelPlanCache.Entry(gemmShape: "avx2 6x16", reason: "measured fastest: avx2 6x16 96, avx512 14x32 87")]
        KernelPlanCache.store(key: key, entries, at: file)
        #expect(KernelPlanCache.load(key: key, at: file) == entries)
        // Another build's candidates (or another CPU) is another entry; the first is kept.
        let other = KernelPlanCache.key(candidates: ["avx2 6x16"])
        #expect(KernelPlanCache.load(key: other, at: file) == nil)
        KernelPlanCache.store(key: other, ["gemm": KernelPlanCache.Entry(gemmShape: "avx2 6x16", reason: "only")], at: file)
        #expect(KernelPlanCache.load(key: key, at: file) == entries)
        // A damaged file is no cache, not an error, and is replaced whole by the next store.
        try Data("{not json".utf8).write(to: file)
        #expect(KernelPlanCache.load(key: key, at: file) == nil)
        KernelPlanCache.store(key: key, entries, at: file)
        #expect(KernelPlanCache.load(key: key, at: file) == entries)
        #expect(KernelPlanCache.load(key: key, at: nil) == nil)
    }
}
