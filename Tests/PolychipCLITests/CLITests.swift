import Foundation
import Testing
import Polychip
import PolychipReference
@testable import PolychipCLI

/// Drives the CLI in-process and through the built binary.
@Suite struct CLITests {
    static func tempDir() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("polychip-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// The built `polychip` binary next to the test bundle.
    static var binary: URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("polychip")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func runBinary(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        guard let bin = binary else { throw PolychipError.io(path: "polychip", reason: "binary not built") }
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationReason == .exit, "polychip \(args) died from a signal")
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
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
        #expect((obj?["host"] as? [String: Any])?["openCL"] != nil)
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
}
