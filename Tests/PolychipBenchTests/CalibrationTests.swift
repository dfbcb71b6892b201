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
}
