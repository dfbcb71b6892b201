import Foundation
import Testing
import Polychip
import PolychipConformance
import PolychipReference
import PolychipTestSupport

/// Case bundles: export → (runner) → grade, the grading of planted wrong, missing and malformed
/// outputs, the manifest's schema checks, and the JAX runner end to end.
@Suite struct BundleTests {
    /// Writes the reference's outputs into every case of a bundle (a perfect runner).
    static func writeReferenceOutputs(_ dir: URL, _ m: BundleManifest) throws {
        for c in m.cases {
            let ins = try c.inputs.map { try NumPyFile.read(path: dir.appendingPathComponent($0.file).path) }
            let outs = try Reference.evaluate(c.spec.op, ins)
            for (t, v) in zip(c.outputs, outs) {
                let url = dir.appendingPathComponent(t.file)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try NumPyFile.write(v, path: url.path)
            }
        }
    }

    @Test func gradingUsesTheLiveRulesAndNeverPassesABrokenOutput() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-bundle").appendingPathComponent("b")
        let options = ConformanceOptions(kernels: [.matmul, .topK, .quantizeInt4, .attention], dtypes: [.f32, .bf16], level: .quick)
        let m = try CaseBundle.export(to: dir, options: options)
        #expect(m.schemaVersion == 1 && m.tiling == "generic")
        // Quick specs plus the non-finite ones (quantize-int4 has none; a 1-element input is not poisoned).
        #expect(m.cases.count == (6 + 2) * 2 + (5 + 2) + 6 * 2 + (8 + 3) * 2)
        #expect(m.cases.contains { $0.spec.pattern == .nonFinite && $0.label.hasPrefix("non-finite a: ") })
        // Nothing written yet: every case is missing, never a pass.
        let empty = try CaseBundle.grade(dir)
        #expect(empty.count(.missing) == m.cases.count && empty.failed)
        try Self.writeReferenceOutputs(dir, m)
        let clean = try CaseBundle.grade(dir)
        #expect(clean.count(.pass) == m.cases.count, "\(clean.results.filter { $0.status != .pass }.map { $0.message ?? "" })")
        #expect(!clean.failed)

        // Plant: a wrong value, a missing file, a wrong dtype, a wrong shape, garbage, an altered input.
        let mm = m.cases.indices.filter { m.cases[$0].kernel == "matmul" && m.cases[$0].dtype == .f32 && m.cases[$0].spec.pattern == .random }
        let mmBF16 = try #require(m.cases.firstIndex { $0.kernel == "matmul" && $0.dtype == .bf16 })
        func file(_ i: Int, output: Int = 0) -> String { dir.appendingPathComponent(m.cases[i].outputs[output].file).path }
        let wrong = try NumPyFile.read(path: file(mm[1]))
        try NumPyFile.write(try HostTensor(wrong.desc.shape, .f32, floats: wrong.floats.map { $0 * 1.01 }), path: file(mm[1]))
        try FileManager.default.removeItem(atPath: file(mm[2]))
        let asF32 = try NumPyFile.read(path: file(mmBF16))
        try NumPyFile.write(try asF32.converted(to: .f32), path: file(mmBF16))
        try NumPyFile.write(try HostTensor([1], .f32, floats: [1]), path: file(mm[3]))
        try Data("not npy".utf8).write(to: URL(fileURLWithPath: file(mm[4])))
        let input = dir.appendingPathComponent(m.cases[mm[5]].inputs[0].file)
        var bytes = try Data(contentsOf: input)
        bytes[bytes.count - 1] ^= 0x40
        try bytes.write(to: input)
        let topK = try #require(m.cases.firstIndex { $0.kernel == "top-k" && $0.label.contains("ties") })
        let idx = try NumPyFile.read(path: file(topK))
        try NumPyFile.write(try HostTensor(idx.desc.shape, int32s: idx.int32s.reversed()), path: file(topK))

        let graded = try CaseBundle.grade(dir)
        let byID = Dictionary(uniqueKeysWithValues: zip(m.cases.map(\.id), graded.results))
        func status(_ i: Int) -> CaseStatus? { byID[m.cases[i].id]?.status }
        func message(_ i: Int) -> String { byID[m.cases[i].id]?.message ?? "" }
        #expect(status(mm[1]) == .fail && message(mm[1]).contains("NMSE"))
        #expect(status(mm[2]) == .missing && message(mm[2]).contains("was not written"))
        #expect(status(mmBF16) == .invalid && message(mmBF16).contains("dtype f32") && message(mmBF16).contains("expected bf16"))
        #expect(status(mm[3]) == .invalid && message(mm[3]).contains("shape [1]"))
        #expect(status(mm[4]) == .invalid && message(mm[4]).contains("output 'c'"))
        #expect(status(mm[5]) == .invalid && message(mm[5]).contains("changed since export"))
        #expect(status(topK) == .fail && message(topK).contains("indices"))
        #expect(graded.count(.pass) == m.cases.count - 7 && graded.failed)
        // The reports a live run writes.
        #expect(graded.junitXML().contains("type=\"missing\"") && graded.markdownMatrix().contains("INVALID 3/8"))
    }

    @Test func roundingTieCasesAreGradedBitForBit() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-bundle-ties").appendingPathComponent("b")
        let m = try CaseBundle.export(to: dir, options: ConformanceOptions(kernels: [.add, .scale], dtypes: [.bf16], level: .standard))
        let ties = m.cases.indices.filter { m.cases[$0].spec.pattern == .roundingTies }
        #expect(!ties.isEmpty && ties.allSatisfy { m.cases[$0].tolerance.rule == "bitwise" })
        try Self.writeReferenceOutputs(dir, m)
        #expect(try CaseBundle.grade(dir).count(.pass) == m.cases.count)
        // One bf16 ulp off in one element: far inside the NMSE threshold, still a failure.
        let url = dir.appendingPathComponent(m.cases[ties[0]].outputs[0].file)
        let o = try NumPyFile.read(path: url.path)
        var bytes = o.bytes
        bytes[0] ^= 1
        try NumPyFile.write(try HostTensor(o.desc, bytes: bytes), path: url.path)
        let r = try CaseBundle.grade(dir).results[ties[0]]
        #expect(r.status == .fail && (r.message ?? "").contains("bit for bit"), "\(r.message ?? "")")
    }

    @Test func badBundlesAreTypedErrorsAndNothingIsOverwritten() throws {
        let root = try TestSupport.tempDir(prefix: "polychip-badbundle")
        #expect(throws: PolychipError.self) { try CaseBundle.grade(root) }  // no manifest
        let manifest = root.appendingPathComponent("manifest.json")
        try Data("{".utf8).write(to: manifest)
        #expect(throws: PolychipError.malformedFile(path: manifest.path, field: "(root)", reason: "not a JSON object")) { try CaseBundle.grade(root) }
        try Data(#"{"schema": "polychip-case-bundle", "schemaVersion": 2, "cases": []}"#.utf8).write(to: manifest)
        #expect(throws: PolychipError.malformedFile(path: manifest.path, field: "schemaVersion",
                                                    reason: "version 2 is newer than this polychip reads (1); update polychip")) { try CaseBundle.grade(root) }
        try Data(#"{"schema": "something-else", "schemaVersion": 1}"#.utf8).write(to: manifest)
        #expect(throws: PolychipError.self) { try CaseBundle.grade(root) }
        // Export refuses a non-empty directory and leaves it exactly as it was.
        let before = try Data(contentsOf: manifest)
        #expect(throws: PolychipError.self) { try CaseBundle.export(to: root, options: ConformanceOptions(kernels: [.add], level: .quick)) }
        #expect(try Data(contentsOf: manifest) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["manifest.json"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.deletingLastPathComponent().path).allSatisfy { !$0.contains(".partial-") })
        // A path that leaves the bundle is invalid, not read.
        let ok = root.appendingPathComponent("fresh")
        var m = try CaseBundle.export(to: ok, options: ConformanceOptions(kernels: [.add], dtypes: [.f32], level: .quick))
        m.cases[0].inputs[0].file = "../../etc/passwd"
        let enc = JSONEncoder()
        try enc.encode(m).write(to: ok.appendingPathComponent("manifest.json"))
        let r = try CaseBundle.grade(ok)
        #expect(r.results[0].status == .invalid && (r.results[0].message ?? "").contains("leaves the bundle"))
        // An input file missing from the bundle is invalid, named.
        let other = root.appendingPathComponent("other")
        let m2 = try CaseBundle.export(to: other, options: ConformanceOptions(kernels: [.add], dtypes: [.f32], level: .quick))
        try FileManager.default.removeItem(at: other.appendingPathComponent(m2.cases[1].inputs[1].file))
        let r2 = try CaseBundle.grade(other)
        #expect(r2.results[1].status == .invalid && (r2.results[1].message ?? "").contains("input 'b'") && (r2.results[1].message ?? "").contains("missing"))
    }

    @Test func manifestIsDerivedFromTheCatalog() throws {
        // Every quick spec of every kernel survives the manifest's Codable form, and its
        // parameters flatten for runners.
        for kind in OpKind.allCases {
            for spec in CaseGenerator.quickSpecs(kind) {
                let back = try JSONDecoder().decode(CaseSpec.self, from: JSONEncoder().encode(spec))
                #expect(back == spec)
            }
        }
        #expect(BundleCase.parameters(of: .matmul(transposeB: true)) == ["transposeB": .bool(true)])
        #expect(BundleCase.parameters(of: .rope(RopeParams(style: .gptj, base: 500, rotaryDim: 32)))
                == ["style": .string("gptj"), "base": .number(500), "rotaryDim": .number(32)])
        #expect(BundleCase.parameters(of: .dequantizeInt4(Int4Format(groupSize: 32, symmetric: false), output: .bf16))
                == ["groupSize": .number(32), "symmetric": .bool(false), "output": .string("bf16")])
        #expect(BundleCase.parameters(of: .softmax).isEmpty)
    }

    @Test func cliExportsAndGrades() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-bundle-cli").appendingPathComponent("b")
        let e = try TestSupport.run(["conform", "--export", dir.path, "--kernel", "silu", "--dtype", "f16", "--level", "quick"])
        #expect(e.status == 0 && e.out.contains("wrote 6 cases"), "\(e.err)")
        let g = try TestSupport.run(["conform", "--grade", dir.path, "--junit", dir.appendingPathComponent("../g.xml").path])
        #expect(g.status == 1 && g.out.contains("6 missing"))
        let again = try TestSupport.run(["conform", "--export", dir.path, "--kernel", "silu"])
        #expect(again.status != 0 && again.err.contains("already exists"))
    }

    // MARK: The JAX runner

    /// python3 with numpy and jax, or nil (then the test says what to install).
    static let python: String? = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [ProcessInfo.processInfo.environment["POLYCHIP_PYTHON"] ?? "python3", "-c", "import numpy, jax, ml_dtypes"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        return p.terminationStatus == 0 ? (ProcessInfo.processInfo.environment["POLYCHIP_PYTHON"] ?? "python3") : nil
    }()

    static let runner = PluginFixtures.root.appendingPathComponent("scripts/runner/polychip_runner.py")

    @Test(.enabled(if: python != nil, "needs python3 with numpy and jax: pip install jax jaxlib (.ci/run installs them)"))
    func jaxRunnerPassesAndAPlantedWrongOutputFails() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-jax").appendingPathComponent("b")
        let kernels = ["matmul", "softmax", "rms-norm", "silu", "swiglu", "add", "scale", "rope", "attention", "top-k", "dequantize-int4", "int4-matmul"]
        let e = try TestSupport.run(["conform", "--export", dir.path, "--level", "quick"] + kernels.flatMap { ["--kernel", $0] })
        #expect(e.status == 0, "\(e.err)")
        let m = try CaseBundle.manifest(at: dir)
        // The attention set holds causal and GQA cases.
        #expect(m.cases.contains { $0.kernel == "attention" && $0.label.contains("causal") && $0.spec.dims["Hq"] != $0.spec.dims["Hkv"] })
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [try #require(Self.python), Self.runner.path, dir.path, "--framework", "jax"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(log)")
        let report = try CaseBundle.grade(dir)
        #expect(report.count(.pass) == m.cases.count, "\(report.results.filter { $0.status != .pass }.map { "\($0.kernel) \($0.dtype) \($0.shape): \($0.message ?? "")" })")
        #expect(report.results.first?.device.contains("jax") == true)
        // A planted wrong output fails, through the CLI's exit status.
        let target = try #require(m.cases.first { $0.kernel == "attention" && $0.dtype == .bf16 })
        let url = dir.appendingPathComponent(target.outputs[0].file)
        let o = try NumPyFile.read(path: url.path)
        try NumPyFile.write(try HostTensor(o.desc.shape, .bf16, floats: o.floats.enumerated().map { $0.offset == 3 ? $0.element + 0.5 : $0.element }), path: url.path)
        let g = try TestSupport.run(["conform", "--grade", dir.path])
        #expect(g.status == 1 && g.out.contains("1 failed"), "\(g.out)")
        #expect(g.out.contains("FAIL attention bf16 [\(target.label)]"))
    }
}
