import Foundation
import Testing
import Polychip
@testable import PolychipBench
@testable import PolychipCLI

/// `polychip calibrate` → `--device sim:FILE` and `bench --validate`.
@Suite struct CalibrationTests {
    @Test func fitRecoversRateAndHalfSaturation() throws {
        let (rate, h, launch) = (2e10, 3e6, 5e-6)
        let pts = [1e6, 1e7, 1e8, 1e9].map { w in (work: w, seconds: launch + (w + h) / rate) }
        let f = try #require(SaturationFit.fit(pts, launch: launch))
        #expect(abs(f.rate / rate - 1) < 1e-6)
        #expect(abs(f.halfSaturation / h - 1) < 1e-4)
        #expect(f.medianAbsError < 1e-9)
        // Faster small points (cache) must not give a negative ramp-up.
        let odd = [(work: 1e6, seconds: 1e-5), (work: 1e9, seconds: 0.1)]
        #expect((SaturationFit.fit(odd, launch: 0)?.halfSaturation ?? -1) >= 0)
        #expect(SaturationFit.fit([], launch: 0) == nil)
        #expect(SaturationFit.fit([(work: 1, seconds: 0)], launch: 0) == nil)
    }

    @Test func calibratedProfileLoadsAsASimulatedDevice() throws {
        let dir = try TestSupport.tempDir()
        let file = dir.appendingPathComponent("cal-\(UUID().uuidString.prefix(8)).json").path
        var cmd = try PolychipCommand.parseAsRoot(["calibrate", "--device", "cpu", "--quick", "--out", file])
        try cmd.run()

        let dev = try Polychip.device("sim:\(file)")
        let sim = try #require(dev as? SimulatedDevice)
        let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        #expect(sim.id == "sim:\(name):0")
        let p = sim.profile
        let f32 = try #require(p.compute.matrix.peak["f32"])
        #expect(f32.value > 0 && f32.source.hasPrefix("measured by polychip calibrate on "))
        #expect(f32.source.contains("polychip calibrate --device cpu --out \(name).json --quick"))
        #expect(p.memory.bandwidth.value > 0 && p.memory.bandwidth.source.hasPrefix("measured by polychip calibrate on "))
        #expect(p.compute.vector.peak["f32"] != nil)
        #expect(p.compute.matrix.launchOverhead.source.hasPrefix("measured by polychip calibrate on "))
        // Every figure says where it came from.
        let json = try String(contentsOfFile: file, encoding: .utf8)
        let sources = json.components(separatedBy: "\"source\" : \"").dropFirst()
        #expect(!sources.isEmpty && sources.allSatisfy { $0.hasPrefix("measured by polychip calibrate on ") || $0.hasPrefix("set by polychip calibrate on ") })

        // The device models kernels like any simulated device.
        let w = try Workloads.make(.matmul, ["M": 64, "N": 64, "K": 64], .f32)
        let modeled = try BenchRunner.run(w, on: sim, options: BenchOptions(minTime: 0.01, verify: true))
        #expect(modeled.source == "modeled" && modeled.medianSeconds > 0)
        #expect(modeled.verified.hasPrefix("yes"))
        // f16 runs natively or through the profile's policy, never refused.
        #expect(sim.supports(.matmul, dtype: .f16).isRunnable)
        #expect(sim.supports(.int4Matmul, dtype: .f32).isRunnable)
    }

    @Test func calibrateRefusesSimulatedAndReferenceDevices() throws {
        for sel in ["sim:ascend-910b", "reference"] {
            let d = try Polychip.device(sel)
            #expect(throws: PolychipError.self) { _ = try Calibrator.calibrate(d, plan: .quick(for: d), command: "test") }
        }
        #expect(throws: (any Error).self) { _ = try PolychipCommand.parseAsRoot(["calibrate", "--out", "x.txt"]) }
        #expect(throws: (any Error).self) { _ = try PolychipCommand.parseAsRoot(["calibrate", "--name", "bad name"]) }
    }

    @Test func validatePrintsPerKernelErrorsFromAProfile() throws {
        let dir = try TestSupport.tempDir()
        let file = dir.appendingPathComponent("v.json").path
        let cal = try TestSupport.run(["calibrate", "--quick", "--out", file])
        #expect(cal.status == 0, "\(cal.err)")
        let r = try TestSupport.run(["bench", "--validate", "--profile", file, "--kernel", "softmax", "--kernel", "rms-norm",
                                     "--shape", "R=16,D=256", "--min-time", "0.01", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        let report = try #require(reports.first)
        #expect(report["device"] as? String == "cpu:0")
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.compactMap { $0["kernel"] as? String } == ["softmax", "rms-norm"])
        for row in rows {
            let measured = try #require(row["measuredSeconds"] as? Double), modeled = try #require(row["modeledSeconds"] as? Double)
            let error = try #require(row["error"] as? Double)
            #expect(abs(error - (modeled / measured - 1)) < 1e-9)
            #expect(row["modelDevice"] as? String == "sim:v:0")
        }
        let errs = rows.compactMap { ($0["error"] as? Double).map(abs) }.sorted()
        #expect(abs((report["medianAbsError"] as? Double ?? -1) - (errs[0] + errs[1]) / 2) < 1e-12)

        let table = try TestSupport.run(["bench", "--validate", "--profile", file, "--kernel", "softmax", "--shape", "R=16,D=256",
                                         "--min-time", "0.01"])
        #expect(table.status == 0 && table.out.contains("median |error|") && table.out.contains("softmax"))
        let bad = try TestSupport.run(["bench", "--validate", "--device", "sim:ascend-910b", "--kernel", "softmax"])
        #expect(bad.status != 0 && bad.err.contains("real measured device"))
    }

    @Test func validateCalibratesOnTheFly() throws {
        var cmd = try PolychipCommand.parseAsRoot(["bench", "--validate", "--quick-calibration", "--kernel", "add", "--shape", "R=4,D=128",
                                                   "--min-time", "0.01", "--no-verify"])
        try cmd.run()
    }

    @Test func validateOnTheCPUClockComparesCPUTimePerWorker() throws {
        let r = try TestSupport.run(["bench", "--validate", "--quick-calibration", "--clock", "cpu", "--kernel", "scale",
                                     "--shape", "R=8,D=512", "--min-time", "0.01", "--no-verify", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        #expect(reports.first?["clock"] as? String == "cpu")
        let row = try #require((reports.first?["rows"] as? [[String: Any]])?.first)
        let cpu = try #require(row["cpuEquivalentSeconds"] as? Double)
        let modeled = try #require(row["modeledSeconds"] as? Double), error = try #require(row["error"] as? Double)
        #expect(cpu > 0 && abs(error - (modeled / cpu - 1)) < 1e-9)
        #expect(r.err.contains("--clock cpu (calibrated on the fly)") || r.err.contains("CPU time per worker"))
        #expect(throws: (any Error).self) { _ = try PolychipCommand.parseAsRoot(["bench", "--clock", "cpu"]) }
        // Not for the reference or OpenCL devices (PoCL's idle threads spin, so CPU time is not work).
        for sel in ["reference", "opencl"] {
            var cmd = try PolychipCommand.parseAsRoot(["bench", "--validate", "--clock", "cpu", "--device", sel, "--kernel", "add"])
            #expect(throws: (any Error).self) { try cmd.run() }
        }
        // Only host CPUs are calibrated on the cpu clock (a simulated device is refused outright).
        let sim = try Polychip.device("sim:ascend-910b")
        var plan = CalibrationPlan.quick(for: sim)
        plan.clock = .cpu
        #expect(throws: PolychipError.self) { _ = try Calibrator.calibrate(sim, plan: plan, command: "test") }
    }

    // MARK: Kernel-class efficiency and read bandwidth

    @Test func quickCalibrationWritesClassEfficienciesAndReadBandwidth() throws {
        let cpu = try Polychip.device("cpu")
        for clock in [BenchClock.wall, .cpu] {
            var plan = CalibrationPlan.quick(for: cpu)
            plan.clock = clock
            let r = try Calibrator.calibrate(cpu, plan: plan, command: "polychip calibrate --quick")
            let classes = try #require(r.kernelClasses)
            // One entry per class of the quick plan, every efficiency in (0, 1].
            #expect(Set(classes.keys) == Set(ClassBenchmark.quick.map(\.kernelClass.rawValue)))
            for (_, f) in classes {
                for v in [f.compute, f.memory] {
                    let x = try #require(v)
                    #expect(x > 0 && x <= 1)
                }
            }
            let rb = try #require(r.readBandwidth)
            #expect(rb >= r.memory.rate / 2 && rb.isFinite)
            // The CPU plan fits the memory curve through the origin.
            #expect(r.memory.halfSaturation == 0)
            #expect(r.summary().contains("class selection:"))

            // They reach the profile, with sources, and survive a round trip through the loader.
            let p = try r.profile(name: "quick-classes")
            let table = try #require(p.kernelEfficiency)
            #expect(Set(table.keys) == Set(classes.keys))
            for e in table.values {
                for f in [e.compute, e.memory].compactMap({ $0 }) { #expect(f.source.hasPrefix("measured by polychip calibrate on ")) }
            }
            #expect(p.memory.readBandwidth?.value == rb)
            let again = try DeviceProfile.decode(data: try p.encoded(), origin: "quick-classes.json")
            #expect(again.kernelEfficiency == p.kernelEfficiency && again.memory.readBandwidth == p.memory.readBandwidth)
        }
        // A plan without the new points writes neither (profiles as before).
        var bare = CalibrationPlan.quick(for: cpu)
        bare.readGemvs = []
        bare.classBenchmarks = []
        let r = try Calibrator.calibrate(cpu, plan: bare, command: "test")
        #expect(r.kernelClasses == nil && r.readBandwidth == nil)
        let p = try r.profile(name: "bare")
        #expect(p.kernelEfficiency == nil && p.memory.readBandwidth == nil)
    }

    @Test func classEfficiencyFitFromBaseModelPoints() throws {
        func pt(_ c: KernelClass, _ seconds: Double, compute: Double, memory: Double, launch: Double = 0) -> ClassPoint {
            ClassPoint(kernelClass: c, label: "\(c)", seconds: seconds,
                       modeled: ModeledBreakdown(launch: launch, compute: compute, memory: memory, total: launch + max(compute, memory),
                                                 bound: compute >= memory ? "compute" : "memory"))
        }
        let fits = ClassEfficiencyFit.fit([
            // attention: a compute-bound point at half the rate, a memory-bound one at a quarter.
            pt(.attention, 2e-3 + 1e-5, compute: 1e-3, memory: 1e-4, launch: 1e-5),
            pt(.attention, 4e-3, compute: 1e-4, memory: 1e-3),
            // selection: two memory-bound points (geometric mean), so compute gets the same.
            pt(.selection, 10e-3, compute: 1e-5, memory: 1e-3),
            pt(.selection, 40e-3, compute: 1e-5, memory: 1e-3),
            // softmax ran faster than its roofline: clamped to 1, the measurement kept.
            pt(.softmax, 1e-3, compute: 2e-3, memory: 1e-3),
        ])
        let a = try #require(fits["attention"])
        #expect(abs((a.compute ?? 0) - 0.5) < 1e-12 && abs((a.memory ?? 0) - 0.25) < 1e-12)
        let s = try #require(fits["selection"])
        #expect(abs((s.memory ?? 0) - 0.05) < 1e-12 && s.compute == s.memory && s.rawCompute == nil)
        let m = try #require(fits["softmax"])
        #expect(m.compute == 1 && abs((m.rawCompute ?? 0) - 2) < 1e-12)
        #expect(fits["gemm"] == nil)
    }

    @Test func calibrationShapesAreNotTheValidationShapes() throws {
        // The efficiencies are measured on shapes of their own: bench --validate tests transfer.
        let cpu = try Polychip.device("cpu")
        let plan = CalibrationPlan.standard(for: cpu)
        let points = plan.classBenchmarks.map { ($0.kind, $0.dims) } + plan.readGemvs.map { (OpKind.int4Matmul, $0) }
            + plan.gemmSizes.map { (OpKind.matmul, ["M": $0, "N": $0, "K": $0]) }
        #expect(!plan.classBenchmarks.isEmpty && !plan.readGemvs.isEmpty)
        for w in try Workloads.defaultSuite() {
            for (kind, dims) in points where kind == w.kind {
                #expect(dims != w.dims, "\(kind.name) \(dims) is a validation shape")
            }
        }
        for b in plan.classBenchmarks + ClassBenchmark.quick {
            #expect(KernelClass(b.kind) == b.kernelClass)
            _ = try Workloads.make(b.kind, b.dims, .f32)
        }
    }
}
