import Foundation
import Testing
import Polychip
import PolychipConformance
import PolychipReference
import PolychipTestSupport

/// The oneDNN plugin passes every case it claims; the misbehaving plugin's planted faults are
/// each reported as what they are, in worker processes, with identical results for any -j.
@Suite struct PluginConformanceTests {
    @Test func oneDNNPassesEveryCaseItClaims() throws {
        try Polychip.loadPlugin(path: PluginFixtures.oneDNN().path)
        let d = try Polychip.device("onednn:0")
        let results = ConformanceRunner.run(on: d, options: ConformanceOptions(collectives: false, level: .standard))
        let report = ConformanceReport(results: results)
        #expect(!report.failed, "\(results.filter { $0.status.isFailure }.map { "\($0.kernel) \($0.dtype) \($0.shape): \($0.message ?? "")" })")
        let passed = Set(results.filter { $0.status == .pass }.map { "\($0.kernel)/\($0.dtype)" })
        // What oneDNN 2.x provides on any x86-64 CPU; bf16 needs AVX-512 (oneDNN's own answer).
        for k in ["matmul", "grouped-matmul", "softmax", "silu", "swiglu", "add", "scale"] { #expect(passed.contains("\(k)/f32")) }
        // The rest is lost coverage with a reason, never a pass.
        for r in results where r.kernel == "attention" || r.kernel == "rms-norm" || r.kernel == "int4-matmul" {
            #expect(r.status == .unsupported && (r.message ?? "").contains("oneDNN"))
        }
        #expect(report.count(.pass) > 100)
    }

    /// `polychip conform` on the misbehaving plugin, through the built binary (the default for
    /// plugin devices is isolation).
    static func conformFaulty(_ extra: [String], json: URL) throws -> TestSupport.Run {
        try TestSupport.run(["conform", "--plugin", PluginFixtures.faulty().path, "--device", "faulty", "--level", "quick", "--dtype", "f32",
                             "--json", json.path] + extra)
    }

    @Test func everyPlantedFaultIsReportedAsWhatItIs() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-faulty")
        let json = dir.appendingPathComponent("r.json"), junit = dir.appendingPathComponent("r.xml")
        let r = try Self.conformFaulty(["--case-timeout", "2", "-j", "2", "--junit", junit.path, "--kernel", "matmul", "--kernel", "add",
                                        "--kernel", "scale", "--kernel", "silu", "--kernel", "softmax", "--kernel", "swiglu",
                                        "--kernel", "rms-norm", "--kernel", "rope", "--kernel", "top-k", "--kernel", "attention"], json: json)
        #expect(r.exited && r.status == 1, "\(r.err)")
        let results = try JSONDecoder().decode([CaseResult].self, from: Data(contentsOf: json))
        func all(_ kernel: String, _ check: (CaseResult) -> Bool) {
            let rs = results.filter { $0.kernel == kernel }
            #expect(!rs.isEmpty && rs.allSatisfy(check), "\(kernel): \(rs.map { "\($0.status) \($0.message ?? "")" })")
        }
        all("matmul") { $0.status == .pass }
        // Wrong values: an NMSE over the finite entries, or a non-finite entry that differs.
        all("add") { $0.status == .fail && (($0.message ?? "").contains("NMSE") || ($0.message ?? "").contains("reference -inf")) }
        all("scale") { $0.status == .fail && ($0.message ?? "").contains("wrote outside its output") }
        all("silu") { $0.status == .fail && $0.message == "input 'x' was modified" }
        all("softmax") { $0.status == .fail && ($0.message ?? "").contains("is nan") }
        all("swiglu") { $0.status == .timeout && ($0.message ?? "").contains("case timeout of 2.0 s") }
        all("rms-norm") { $0.status == .crashed && $0.signal == SIGSEGV && ($0.message ?? "").contains("SIGSEGV") }
        all("rope") { $0.status == .crashed && $0.signal == SIGABRT && ($0.message ?? "").contains("SIGABRT") }
        all("top-k") { $0.status == .fail && ($0.message ?? "").contains("planted device error") && ($0.message ?? "").contains("plugin 'faulty'") }
        all("attention") { $0.status == .unsupported }
        // The run went on past every crash and hang: every case has a result.
        let kinds: [OpKind] = [.matmul, .add, .scale, .silu, .softmax, .swiglu, .rmsNorm, .rope, .topK, .attention]
        var skipped = 0
        let planned = kinds.reduce(0) { $0 + CaseGenerator.specs($1, dtype: .f32, level: .quick, tiling: .none, skipped: &skipped).count }
        #expect(results.count == planned && planned == 47 + 23)  // 47 seeded, 23 non-finite
        let xml = try String(contentsOf: junit, encoding: .utf8)
        #expect(xml.contains("<error type=\"crashed\"") && xml.contains("<error type=\"timeout\"") && xml.contains("errors=\"20\""))
        #expect(r.out.contains("14 crashed, 6 timeout"))
    }

    @Test func workersGiveIdenticalResultsInIdenticalOrder() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-jobs")
        var runs: [[CaseResult]] = []
        for j in ["1", "3"] {
            let json = dir.appendingPathComponent("j\(j).json")
            let r = try Self.conformFaulty(["-j", j, "--kernel", "matmul", "--kernel", "add", "--kernel", "rms-norm", "--kernel", "softmax",
                                            "--kernel", "rope"], json: json)
            #expect(r.exited && r.status == 1, "\(r.err)")
            runs.append(try JSONDecoder().decode([CaseResult].self, from: Data(contentsOf: json)))
        }
        func key(_ r: CaseResult) -> String { "\(r.kernel) \(r.dtype) \(r.shape) \(r.status) \(r.seed) \(r.nmse.map { "\($0)" } ?? "-") \(r.message ?? "")" }
        #expect(runs[0].map(key) == runs[1].map(key))
        #expect(runs[0].count == (6 + 2) + (4 + 2) * 3 + (5 + 3))
    }

    @Test func isolatedRunsMatchInProcessRunsOnTheReference() throws {
        let bin = try #require(TestSupport.binary)
        let d = try Polychip.device("reference")
        let options = ConformanceOptions(kernels: [.matmul, .topK, .moeRouter, .quantizeInt4], collectives: false, level: .standard)
        let direct = ConformanceRunner.run(on: d, options: options)
        let isolated = try IsolatedConformance.run(on: d, options: options,
                                                   isolation: IsolationOptions(executable: bin, arguments: ["conform-worker", "--device", "reference"], workers: 2))
        #expect(direct.map { "\($0.kernel) \($0.dtype) \($0.shape) \($0.status) \($0.seed) \($0.nmse ?? -1)" }
                == isolated.map { "\($0.kernel) \($0.dtype) \($0.shape) \($0.status) \($0.seed) \($0.nmse ?? -1)" })
        // A worker that cannot open its device stops the run with a typed error, not a result per case.
        #expect(throws: PolychipError.self) {
            try IsolatedConformance.run(on: d, options: options,
                                        isolation: IsolationOptions(executable: bin, arguments: ["conform-worker", "--device", "nosuch"], workers: 1))
        }
    }

    @Test func aWorkerThatFloodsItsReplyIsKilledNotBuffered() throws {
        // A worker that says ready, then answers each request with 20 MB and no newline.
        let script = #"printf '{"ready":"reference:0"}\n'; read line; exec head -c 20000000 /dev/zero"#
        let d = try Polychip.device("reference")
        let options = ConformanceOptions(kernels: [.add], dtypes: [.f32], collectives: false, level: .quick)
        let rs = try IsolatedConformance.run(on: d, options: options,
                                             isolation: IsolationOptions(executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script],
                                                                         caseTimeout: 30))
        #expect(!rs.isEmpty && rs.allSatisfy { $0.status == .fail && ($0.message ?? "").contains("without ending its reply") }, "\(rs.map { $0.message ?? "" })")
    }

    @Test func cliListsConformsAndBenchesThePlugin() throws {
        let lib = try PluginFixtures.oneDNN().path
        let dev = try TestSupport.run(["devices", "--plugin", lib])
        #expect(dev.status == 0 && dev.out.contains("onednn:0") && dev.out.contains("oneDNN"), "\(dev.err)")
        let env = ProcessInfo.processInfo.environment.merging(["POLYCHIP_PLUGINS": lib]) { $1 }
        let conf = try TestSupport.run(["conform", "--device", "onednn", "--kernel", "matmul", "--kernel", "rms-norm", "--level", "quick"], environment: env)
        #expect(conf.status == 0 && conf.out.contains("0 failed"), "\(conf.out) \(conf.err)")
        #expect(conf.err.contains("worker process"))  // plugin devices are isolated by default
        let bench = try TestSupport.run(["bench", "--plugin", lib, "--device", "onednn", "--kernel", "matmul", "--shape", "M=32,N=48,K=64",
                                         "--min-time", "0.01", "--json"])
        #expect(bench.status == 0, "\(bench.err)")
        let rows = try JSONSerialization.jsonObject(with: Data(bench.out.utf8)) as? [[String: Any]] ?? []
        #expect(rows.contains { $0["device"] as? String == "onednn:0" && $0["source"] as? String == "measured" && ($0["verified"] as? String ?? "").hasPrefix("yes") })
        // `run` on the plugin device: quarter-step values, so every product and sum is exact in f32.
        let tmp = try TestSupport.tempDir(prefix: "polychip-plugin-run")
        let a = try HostTensor([3, 5], .f32, floats: (0..<15).map { Float($0) * 0.25 })
        let b = try HostTensor([5, 2], .f32, floats: (0..<10).map { Float($0) - 4 })
        try NumPyFile.write(a, path: tmp.appendingPathComponent("a.npy").path)
        try NumPyFile.write(b, path: tmp.appendingPathComponent("b.npy").path)
        let c = tmp.appendingPathComponent("c.npy").path
        let run = try TestSupport.run(["run", "matmul", "--plugin", lib, "--device", "onednn:0", "--input", "a=\(tmp.path)/a.npy",
                                       "--input", "b=\(tmp.path)/b.npy", "--output", "c=\(c)"])
        #expect(run.status == 0 && run.out.contains("on onednn:0"), "\(run.err)")
        #expect(try NumPyFile.read(path: c) == Reference.evaluate(.matmul(transposeB: false), [a, b])[0])
        let bad = try TestSupport.run(["devices", "--plugin", "/nonexistent/lib.so"])
        #expect(bad.status != 0 && bad.err.contains("no plugin library"))
    }
}
