import Foundation
import Testing
import Polychip
import PolychipReference
@testable import PolychipCLI
import PolychipTestSupport

/// Drives the CLI in-process and through the built binary.
@Suite struct CLITests {
    static func tempDir() throws -> URL { try TestSupport.tempDir(prefix: "polychip-cli") }

    /// The built `polychip` binary next to the test bundle.
    static var binary: URL? { TestSupport.binary }

    static func runBinary(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        let r = try TestSupport.run(args, environment: environment)
        #expect(r.exited, "polychip \(args) died from a signal")
        return (r.status, r.out, r.err)
    }

    @Test func runAttentionOnNpyMatchesTheReference() throws {
        let dir = try Self.tempDir()
        func rand(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { Float(sin(Double($0) * 1.7 + Double(s))) + 0.01 } }
        let q = try HostTensor([1, 4, 5, 8], .f32, floats: rand(160, 1))
        let k = try HostTensor([1, 2, 7, 8], .f32, floats: rand(112, 2))
        let v = try HostTensor([1, 2, 7, 8], .f32, floats: rand(112, 3))
        for (n, t) in [("q", q), ("k", k), ("v", v)] { try NumPyFile.write(t, path: dir.appendingPathComponent("\(n).npy").path) }
        let out = dir.appendingPathComponent("o.npy").path
        let lse = dir.appendingPathComponent("lse.npy").path
        var cmd = try PolychipCommand.parseAsRoot(["run", "attention", "--device", "reference", "--causal", "--lse",
                                                   "--input", "q=\(dir.path)/q.npy", "--input", "k=\(dir.path)/k.npy",
                                                   "--input", "v=\(dir.path)/v.npy", "--output", "o=\(out)", "--output", "lse=\(lse)"])
        try cmd.run()
        let expected = try Reference.evaluate(.attention(AttentionParams(causal: true, returnLSE: true)), [q, k, v])
        #expect(try NumPyFile.read(path: out) == expected[0])
        #expect(try NumPyFile.read(path: lse) == expected[1])
    }

    @Test func runRejectsBadInputWithTypedErrors() throws {
        let dir = try Self.tempDir()
        try NumPyFile.write(try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]), path: dir.appendingPathComponent("a.npy").path)
        try NumPyFile.write(try HostTensor([4, 3], .f32, floats: Array(repeating: 1, count: 12)), path: dir.appendingPathComponent("b.npy").path)
        var cmd = try PolychipCommand.parseAsRoot(["run", "matmul", "--input", "a=\(dir.path)/a.npy", "--input", "b=\(dir.path)/b.npy"])
        #expect(throws: PolychipError.self) { try cmd.run() }
        var missing = try PolychipCommand.parseAsRoot(["run", "matmul", "--input", "a=\(dir.path)/nope.npy"])
        #expect(throws: PolychipError.self) { try missing.run() }
    }

    @Test func devicesJSONListsTheReferenceAndTheHost() throws {
        let r = try Self.runBinary(["devices", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        let backends = try #require(obj?["backends"] as? [[String: Any]])
        let reference = try #require(backends.first { $0["name"] as? String == "reference" })
        #expect((reference["devices"] as? [[String: Any]])?.first?["id"] as? String == "reference:0")
        #expect(((obj?["host"] as? [String: Any])?["platforms"] as? [String: Any])?["opencl"] != nil)
        #expect(backends.contains { $0["name"] as? String == "cpu" })
    }

    @Test func conformExitStatusAndFiles() throws {
        let dir = try Self.tempDir()
        let json = dir.appendingPathComponent("c.json").path, junit = dir.appendingPathComponent("c.xml").path
        let ok = try Self.runBinary(["conform", "--device", "reference", "--kernel", "softmax", "--kernel", "top-k", "--json", json, "--junit", junit])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out.contains("passed, 0 failed"))
        let cases = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]]
        #expect((cases?.count ?? 0) > 0 && cases?.allSatisfy { $0["status"] as? String == "pass" } == true)
        #expect(try String(contentsOfFile: junit, encoding: .utf8).contains("<testsuite"))
        let bad = try Self.runBinary(["conform", "--device", "nosuch"])
        #expect(bad.status != 0 && bad.err.contains("unknown backend"))
        let badKernel = try Self.runBinary(["conform", "--kernel", "nosuch"])
        #expect(badKernel.status != 0 && badKernel.err.contains("unknown kernel"))
    }

    /// `--level` and `--tiles small` as a user runs them: a simulated device (its engine takes
    /// the small CPU tiles from the flag), the path of each case in the JSON, and a bad value.
    @Test func conformLevelsAndSmallTiles() throws {
        let dir = try Self.tempDir()
        let json = dir.appendingPathComponent("small.json").path
        let small = try Self.runBinary(["conform", "--device", "sim:mtt-s4000", "--tiles", "small", "--level", "standard",
                                        "--kernel", "int4-matmul", "--kernel", "attention", "--dtype", "f32", "--json", json])
        #expect(small.status == 0, "\(small.err)")
        let cases = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]] ?? []
        // Small key blocks: the standard attention cases cross several of them.
        #expect(cases.contains { ($0["path"] as? String ?? "").contains("split-KV") })
        #expect(cases.contains { ($0["shape"] as? String ?? "").contains("[attention.keys") })
        let quick = try Self.runBinary(["conform", "--device", "cpu", "--level", "quick", "--kernel", "matmul", "--dtype", "f32"])
        #expect(quick.status == 0 && quick.out.contains("pass 8/8"), "\(quick.out)")  // 6 fixed + 2 non-finite
        let bad = try Self.runBinary(["conform", "--device", "cpu", "--tiles", "tiny"])
        #expect(bad.status != 0 && bad.err.contains("--tiles"))
        let badLevel = try Self.runBinary(["conform", "--device", "cpu", "--level", "exhaustive"])
        #expect(badLevel.status != 0)
    }

    /// backends/profiles in the source tree.
    static let profilesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("backends/profiles").path

    @Test func profileAndSetOptions() throws {
        // A user's own chip: a copy of a bundled profile under another name and path.
        let dir = try Self.tempDir()
        var text = try String(contentsOfFile: Self.profilesDirectory + "/mlu590.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"name\": \"mlu590\"", with: "\"name\": \"my-chip\"")
        let file = dir.appendingPathComponent("my-chip.json").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let ok = try Self.runBinary(["conform", "--profile", file, "--kernel", "softmax", "--kernel", "matmul", "--dtype", "bf16",
                                     "--set", "memory.bandwidth=1.0e12", "--set", "compute.matrix.peak.bf16=100e12"])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.err.contains("sim:my-chip:0"))
        #expect(ok.out.contains("passed, 0 failed"))
        // --set reaches the devices: a kernel launch that always fails makes conformance fail with the typed fault.
        let json = dir.appendingPathComponent("f.json").path
        let faulty = try Self.runBinary(["conform", "--device", "sim:ascend-910b", "--kernel", "softmax", "--dtype", "f32",
                                         "--set", "faults.kernelLaunchFailure.probability=1", "--json", json])
        #expect(faulty.status == 1)
        let cases = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]]
        #expect(cases?.allSatisfy { ($0["message"] as? String)?.contains("kernelLaunchFailure fault on sim:ascend-910b:0 during softmax") == true } == true)
        // Bad settings and files are usage errors naming the problem.
        let badSet = try Self.runBinary(["conform", "--device", "sim:ascend-910b", "--set", "memory.bandwith=1"])
        #expect(badSet.status != 0 && badSet.err.contains("memory.bandwith"))
        let noEquals = try Self.runBinary(["bench", "--set", "memory.bandwidth"])
        #expect(noEquals.status != 0 && noEquals.err.contains("PATH=VALUE"))
        let noFile = try Self.runBinary(["conform", "--profile", dir.appendingPathComponent("nope.json").path])
        #expect(noFile.status != 0 && noFile.err.contains("no such file"))
    }

    @Test func bundledProfilesComeFromTheBinary() throws {
        // Profiles are embedded at build time: the binary reads none from the source tree.
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "POLYCHIP_PROFILE_DIR")
        let r = try Self.runBinary(["devices", "--json"], environment: env)
        #expect(r.status == 0, "\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        let backends = try #require(obj?["backends"] as? [[String: Any]])
        let sim = try #require(backends.first { $0["name"] as? String == "sim" })
        let devices = try #require(sim["devices"] as? [[String: Any]])
        let bundled = try FileManager.default.contentsOfDirectory(atPath: Self.profilesDirectory).filter { $0.hasSuffix(".json") }.count
        #expect(bundled >= 11)
        #expect(devices.count == bundled)
        for d in devices {
            let details = (d["info"] as? [String: Any])?["details"] as? [String: String]
            #expect(details?["profile"]?.hasPrefix("embedded:backends/profiles/") == true, "\(d["id"] ?? "?")")
        }
        // POLYCHIP_PROFILE_DIR still comes first, and adds its own chips.
        let dir = try Self.tempDir()
        let text = try String(contentsOfFile: Self.profilesDirectory + "/mlu590.json", encoding: .utf8)
        try text.write(toFile: dir.appendingPathComponent("mlu590.json").path, atomically: true, encoding: .utf8)
        try text.replacingOccurrences(of: "\"name\": \"mlu590\"", with: "\"name\": \"mlu590-test\"")
            .write(toFile: dir.appendingPathComponent("mlu590-test.json").path, atomically: true, encoding: .utf8)
        env["POLYCHIP_PROFILE_DIR"] = dir.path
        let r2 = try Self.runBinary(["devices", "--json"], environment: env)
        #expect(r2.status == 0, "\(r2.err)")
        let obj2 = try JSONSerialization.jsonObject(with: Data(r2.out.utf8)) as? [String: Any]
        let sim2 = (obj2?["backends"] as? [[String: Any]])?.first { $0["name"] as? String == "sim" }
        let profiles = Dictionary(uniqueKeysWithValues: ((sim2?["devices"] as? [[String: Any]]) ?? []).compactMap { d -> (String, String)? in
            guard let id = d["id"] as? String, let p = ((d["info"] as? [String: Any])?["details"] as? [String: String])?["profile"] else { return nil }
            return (id, p)
        })
        #expect(profiles.count == bundled + 1)
        #expect(profiles["sim:mlu590:0"] == dir.appendingPathComponent("mlu590.json").path)
        #expect(profiles["sim:mlu590-test:0"] == dir.appendingPathComponent("mlu590-test.json").path)
        #expect(profiles["sim:ascend-910b:0"]?.hasPrefix("embedded:") == true)
    }
}
