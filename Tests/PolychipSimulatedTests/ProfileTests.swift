// ProfileTests.swift — the profile schema, loader, overrides and validation.

import Foundation
import Testing
@testable import PolychipSimulated

/// backends/profiles, located from this file: Tests/PolychipSimulatedTests/ → ../../backends/profiles.
private let profilesDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("backends").appendingPathComponent("profiles").path

private let bundledNames = ["ascend-910b", "ascend-910c", "enflame-t20", "h100-opencl", "h100-sxm", "hygon-bw200", "iluvatar-bi150",
                            "kunlun-r300", "mlu370-x8", "mlu590", "mtt-s4000"]

private func bundledPath(_ name: String) -> String { profilesDirectory + "/" + name + ".json" }

private func bundledData(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: bundledPath(name))) }

/// The bundled JSON of `name` as a mutable Foundation tree.
private func bundledTree(_ name: String) throws -> [String: Any] {
    let obj = try JSONSerialization.jsonObject(with: try bundledData(name))
    return obj as? [String: Any] ?? [:]
}

/// Sets (or with `nil` removes) the value at a dotted path in a Foundation JSON tree.
private func setting(_ tree: [String: Any], _ path: String, _ value: Any?) -> [String: Any] {
    var comps = path.split(separator: ".").map(String.init)
    let head = comps.removeFirst()
    var out = tree
    if comps.isEmpty {
        out[head] = value
    } else {
        out[head] = setting(out[head] as? [String: Any] ?? [:], comps.joined(separator: "."), value)
    }
    return out
}

private func decodeTree(_ tree: [String: Any], origin: String = "test.json", overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
    let data = (try? JSONSerialization.data(withJSONObject: tree)) ?? Data()
    return try DeviceProfile.decode(data: data, origin: origin, overrides: overrides)
}

/// Runs `body` and returns the ProfileError it throws (nil when it does not throw).
private func profileError(_ body: () throws(ProfileError) -> DeviceProfile) -> ProfileError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

@Suite("Device profiles")
struct ProfileTests {
    // MARK: Bundled profiles

    @Test("every bundled profile loads and validates", arguments: bundledNames)
    func bundledProfileLoads(name: String) throws {
        let p = try DeviceProfile.load(path: bundledPath(name))
        #expect(p.name == name)
        #expect(p.schemaVersion == 1)
        #expect(p.origin == bundledPath(name))
        try p.validate()
        #expect(!p.compute.matrix.peak.isEmpty)
        #expect(!p.compute.vector.peak.isEmpty)
        #expect(p.memory.capacity.value > 0)
        // Every peak rate carries a source.
        for (_, f) in p.compute.matrix.peak.merging(p.compute.vector.peak, uniquingKeysWith: { a, _ in a }) {
            #expect(!f.source.isEmpty)
        }
    }

    @Test("the bundled directory holds exactly the eleven documented profiles")
    func bundledDirectory() throws {
        let all = try DeviceProfile.loadDirectory(profilesDirectory)
        #expect(all.map(\.name) == bundledNames)
    }

    @Test("load(named:) finds a bundled profile and reports a missing one")
    func loadNamed() throws {
        let p = try DeviceProfile.load(named: "mtt-s4000", searching: [profilesDirectory])
        #expect(p.vendor == "Moore Threads")
        let e = profileError { () throws(ProfileError) in try DeviceProfile.load(named: "no-such-chip", searching: [profilesDirectory]) }
        #expect(e == .profileNotFound(name: "no-such-chip", searched: [profilesDirectory]))
    }

    @Test("encoded() round-trips through decode", arguments: bundledNames)
    func roundTrip(name: String) throws {
        let p = try DeviceProfile.load(path: bundledPath(name))
        let again = try DeviceProfile.decode(data: try p.encoded(), origin: p.origin)
        #expect(again == p)
    }

    @Test("key facts of the bundled chips")
    func keyFacts() throws {
        let b = try DeviceProfile.load(path: bundledPath("ascend-910b"))
        #expect(b.compute.matrix.peakRate(.f16) == 376e12)
        #expect(b.compute.matrix.peakRate(.int4) == 1504e12)
        // Fitted on published 910B measurements (backends/profiles/published), not msmodeling's 0.7 / 0.6.
        #expect(b.compute.matrix.efficiency.max.value == 0.8345)
        #expect(b.memory.efficiency.max.value == 0.8029)
        #expect(b.compute.matrix.launchOverhead.value == 5e-6)
        #expect(b.compute.vector.launchOverhead.value == 2e-6)
        #expect(b.interconnect.collectiveOverhead.value == 10e-6)
        #expect(b.compute.matrix.tile(for: .f16) == DeviceProfile.Tile(m: 16, n: 16, k: 16, source: b.compute.matrix.tile.source))
        #expect(b.compute.matrix.tile(for: .int4).k == 64)
        let m = try DeviceProfile.load(path: bundledPath("mtt-s4000"))
        #expect(m.compute.matrix.peakRate(.int4) == nil)
        let h = try DeviceProfile.load(path: bundledPath("h100-opencl"))
        #expect(h.compute.matrix.nativeDtypes == [.f32])
        #expect(h.compute.matrix.peakRate(.f32) == 66.9e12)
    }

    // MARK: Missing-dtype policy

    @Test("missing dtypes are emulated or rejected as the profile says")
    func dtypePolicy() throws {
        let mtt = try DeviceProfile.load(path: bundledPath("mtt-s4000"))
        guard case .emulated(let r) = mtt.dtypeSupport(unit: .matrix, dtype: .int4) else {
            Issue.record("MTT S4000 int4 should be emulated")
            return
        }
        #expect(r.effective == .bf16)
        #expect(r.rate == 100e12)
        #expect(r.chain == [.int4, .bf16])
        guard case .emulated(let v) = mtt.dtypeSupport(unit: .vector, dtype: .int4) else {
            Issue.record("MTT S4000 vector int4 should be emulated")
            return
        }
        #expect(v.chain == [.int4, .bf16, .f32])
        #expect(mtt.dtypeSupport(unit: .matrix, dtype: .bf16) == .native(DTypeResolution(unit: .matrix, requested: .bf16, effective: .bf16, chain: [.bf16], rate: 100e12)))
        let ascend = try DeviceProfile.load(path: bundledPath("ascend-910b"))
        guard case .rejected(let reason) = ascend.dtypeSupport(unit: .matrix, dtype: .fp8) else {
            Issue.record("910B fp8 should be rejected")
            return
        }
        #expect(reason.contains("fp8"))
        guard case .emulated(let f32) = ascend.dtypeSupport(unit: .matrix, dtype: .f32) else {
            Issue.record("910B f32 matmul should run as hf32")
            return
        }
        #expect(f32.effective == .hf32)
        let opencl = try DeviceProfile.load(path: bundledPath("h100-opencl"))
        guard case .emulated(let h) = opencl.dtypeSupport(unit: .matrix, dtype: .f16) else {
            Issue.record("OpenCL f16 should be computed in f32")
            return
        }
        #expect(h.effective == .f32)
        guard case .rejected = opencl.dtypeSupport(unit: .matrix, dtype: .tf32) else {
            Issue.record("OpenCL has no tensor cores")
            return
        }
    }

    @Test("an emulation chain that loops on a unit is invalid")
    func emulationLoop() throws {
        var t = try bundledTree("mtt-s4000")
        t = setting(t, "numerics.missingDtypePolicy.int4", ["action": "emulate", "via": "fp8", "source": "test"])
        t = setting(t, "numerics.missingDtypePolicy.fp8", ["action": "emulate", "via": "int4", "source": "test"])
        let e = profileError { () throws(ProfileError) in try decodeTree(t) }
        guard case .invalidValue(let file, let path, _, let expected)? = e else {
            Issue.record("expected invalidValue, got \(String(describing: e))")
            return
        }
        #expect(file == "test.json")
        #expect(path == "numerics.missingDtypePolicy.fp8.via")
        #expect(expected.contains("loops"))
    }

    @Test("emulate without via is a missing field")
    func emulateWithoutVia() throws {
        let t = setting(try bundledTree("mtt-s4000"), "numerics.missingDtypePolicy.int4", ["action": "emulate", "source": "test"])
        #expect(profileError { () throws(ProfileError) in try decodeTree(t) } == .missingField(file: "test.json", path: "numerics.missingDtypePolicy.int4.via"))
    }

    // MARK: Malformed input

    @Test("malformed JSON reports line and column")
    func malformedJSON() {
        let text = "{\n  \"name\": \"x\",\n  oops: 1\n}"
        let e = profileError { () throws(ProfileError) in try DeviceProfile.decode(data: Data(text.utf8), origin: "bad.json") }
        guard case .malformedJSON(let file, let line, let column, let reason)? = e else {
            Issue.record("expected malformedJSON, got \(String(describing: e))")
            return
        }
        #expect(file == "bad.json")
        #expect(line == 3)
        #expect(column == 3)
        #expect(reason.contains("expected a string key"))
        #expect(e?.description.hasPrefix("bad.json:3:3: malformed JSON") == true)
    }

    @Test("malformed documents never trap", arguments: [
        "", "   ", "{", "}", "[", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "nul", "tru", "01", "1.", "-", "1e", "1e999",
        "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"abc", "{\"a\":1}{", "{\"a\":1,\"a\":2}", "\u{1}",
        String(repeating: "[", count: 10_000), String(repeating: "{\"a\":", count: 5_000),
    ])
    func malformedNeverTraps(text: String) {
        let e = profileError { () throws(ProfileError) in try DeviceProfile.decode(data: Data(text.utf8), origin: "fuzz") }
        guard case .malformedJSON? = e else {
            Issue.record("expected malformedJSON for \(text.prefix(20)), got \(String(describing: e))")
            return
        }
    }

    @Test("invalid UTF-8 and non-object documents are rejected")
    func invalidBytes() {
        let bad = Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D])  // {"\xFF\xFE":1}
        guard case .malformedJSON? = profileError({ () throws(ProfileError) in try DeviceProfile.decode(data: bad, origin: "utf8") }) else {
            Issue.record("invalid UTF-8 must be malformedJSON")
            return
        }
        let e = profileError { () throws(ProfileError) in try DeviceProfile.decode(data: Data("[1, 2]".utf8), origin: "arr") }
        #expect(e == .wrongType(file: "arr", path: "(document)", expected: "a JSON object", found: "an array"))
        let empty = profileError { () throws(ProfileError) in try DeviceProfile.decode(data: Data("{}".utf8), origin: "empty") }
        #expect(empty == .missingField(file: "empty", path: "schemaVersion"))
    }

    @Test("an unreadable file is reported with its path")
    func unreadable() {
        let e = profileError { () throws(ProfileError) in try DeviceProfile.load(path: "/nonexistent/dir/x.json") }
        guard case .unreadable(let file, _)? = e else {
            Issue.record("expected unreadable, got \(String(describing: e))")
            return
        }
        #expect(file == "/nonexistent/dir/x.json")
    }

    @Test("a missing field names its path")
    func missingField() throws {
        let t = setting(try bundledTree("ascend-910b"), "memory.bandwidth", nil)
        let e = profileError { () throws(ProfileError) in try decodeTree(t) }
        #expect(e == .missingField(file: "test.json", path: "memory.bandwidth"))
        #expect(e?.description.contains("missing required field 'memory.bandwidth'") == true)
        let t2 = setting(try bundledTree("ascend-910b"), "compute.matrix.launchOverhead.source", nil)
        #expect(profileError { () throws(ProfileError) in try decodeTree(t2) } == .missingField(file: "test.json", path: "compute.matrix.launchOverhead.source"))
    }

    @Test("a wrong type names path, expectation and what was found")
    func wrongType() throws {
        let t = setting(try bundledTree("ascend-910b"), "memory.bandwidth.value", "fast")
        #expect(profileError { () throws(ProfileError) in try decodeTree(t) }
                == .wrongType(file: "test.json", path: "memory.bandwidth", expected: "a number", found: "string \"fast\""))
        let t2 = setting(try bundledTree("ascend-910b"), "interconnect.devicesPerNode.value", 2.5)
        #expect(profileError { () throws(ProfileError) in try decodeTree(t2) }
                == .wrongType(file: "test.json", path: "interconnect.devicesPerNode", expected: "an integer", found: "number 2.5"))
        let t5 = setting(try bundledTree("ascend-910b"), "compute.matrix.tile.k", "16")
        #expect(profileError { () throws(ProfileError) in try decodeTree(t5) }
                == .wrongType(file: "test.json", path: "compute.matrix.tile.k", expected: "an integer", found: "string \"16\""))
        let t6 = setting(try bundledTree("ascend-910b"), "faults", ["linkDown": ["link": [0, 1.5]]])
        #expect(profileError { () throws(ProfileError) in try decodeTree(t6) }
                == .wrongType(file: "test.json", path: "faults.linkDown.link[1]", expected: "an integer", found: "number 1.5"))
        let t3 = setting(try bundledTree("ascend-910b"), "compute", "none")
        #expect(profileError { () throws(ProfileError) in try decodeTree(t3) }
                == .wrongType(file: "test.json", path: "compute", expected: "an object", found: "string \"none\""))
        let t4 = setting(try bundledTree("ascend-910b"), "memory.onChipBuffers", ["L2"])
        #expect(profileError { () throws(ProfileError) in try decodeTree(t4) }
                == .wrongType(file: "test.json", path: "memory.onChipBuffers[0]", expected: "an object", found: "string \"L2\""))
    }

    @Test("unknown enum values list the allowed ones")
    func unknownValues() throws {
        let t = setting(try bundledTree("ascend-910b"), "interconnect.topology.value", "torus")
        #expect(profileError { () throws(ProfileError) in try decodeTree(t) }
                == .unknownValue(file: "test.json", path: "interconnect.topology", value: "torus", allowed: ["fullMesh", "ring", "switch", "twoLevel"]))
        let t2 = setting(try bundledTree("ascend-910b"), "compute.matrix.peak.fp4", ["value": 1e15, "source": "x"])
        let e2 = profileError { () throws(ProfileError) in try decodeTree(t2) }
        guard case .unknownValue(_, let path, let value, _)? = e2 else {
            Issue.record("expected unknownValue, got \(String(describing: e2))")
            return
        }
        #expect(path == "compute.matrix.peak.fp4")
        #expect(value == "fp4")
        let t3 = setting(try bundledTree("ascend-910b"), "interconnect.collectiveAlgorithms.value", ["ring", "butterfly"])
        guard case .unknownValue(_, "interconnect.collectiveAlgorithms[1]", "butterfly", _)? = profileError({ () throws(ProfileError) in try decodeTree(t3) }) else {
            Issue.record("expected unknownValue for butterfly")
            return
        }
    }

    @Test("unknown fields are errors; '_' keys are comments")
    func unknownFields() throws {
        let t = setting(try bundledTree("ascend-910b"), "memory.bandwdith", ["value": 1, "source": "typo"])
        #expect(profileError { () throws(ProfileError) in try decodeTree(t) } == .unknownField(file: "test.json", path: "memory.bandwdith"))
        var ok = setting(try bundledTree("ascend-910b"), "memory._comment", "a comment")
        ok = setting(ok, "_about", "top-level comment")
        #expect(try decodeTree(ok).name == "ascend-910b")
    }

    @Test("semantic validation rejects impossible figures")
    func semanticValidation() throws {
        let cases: [(String, Any, String)] = [
            ("memory.bandwidth.value", -1.0, "memory.bandwidth"),
            ("memory.bandwidth.value", 0.0, "memory.bandwidth"),
            ("compute.matrix.peak.f16.value", 0.0, "compute.matrix.peak.f16"),
            ("compute.matrix.efficiency.max.value", 1.5, "compute.matrix.efficiency.max"),
            ("memory.efficiency.max.value", 0.0, "memory.efficiency.max"),
            ("compute.vector.efficiency.halfSaturation.value", -5.0, "compute.vector.efficiency.halfSaturation"),
            ("compute.matrix.launchOverhead.value", -1e-6, "compute.matrix.launchOverhead"),
            ("interconnect.devicesPerNode.value", 0, "interconnect.devicesPerNode"),
            ("interconnect.linksPerDevice.value", 3, "interconnect.linksPerDevice"),
            ("interconnect.link.efficiency.value", 1.01, "interconnect.link.efficiency"),
            ("interconnect.link.latency.value", -1.0, "interconnect.link.latency"),
            ("interconnect.interNode.nicsPerNode.value", 0, "interconnect.interNode.nicsPerNode"),
            ("memory.capacity.value", 0, "memory.capacity"),
            ("compute.matrix.tile.m", 0, "compute.matrix.tile.m"),
            ("memory.bandwidth.source", "  ", "memory.bandwidth.source"),
            ("schemaVersion", 2, "schemaVersion"),
            ("name", "ascend:910b", "name"),
        ]
        for (path, value, expectedPath) in cases {
            let t = setting(try bundledTree("ascend-910b"), path, value)
            let e = profileError { () throws(ProfileError) in try decodeTree(t) }
            guard case .invalidValue(let file, let p, _, _)? = e else {
                Issue.record("\(path)=\(value): expected invalidValue, got \(String(describing: e))")
                continue
            }
            #expect(file == "test.json")
            #expect(p == expectedPath)
        }
        // twoLevel without a node topology or inter-node network.
        let noNode = setting(try bundledTree("ascend-910b"), "interconnect.nodeTopology", nil)
        #expect(profileError { () throws(ProfileError) in try decodeTree(noNode) } == .missingField(file: "test.json", path: "interconnect.nodeTopology"))
        let noInter = setting(try bundledTree("ascend-910b"), "interconnect.interNode", nil)
        #expect(profileError { () throws(ProfileError) in try decodeTree(noInter) } == .missingField(file: "test.json", path: "interconnect.interNode"))
        // Fault settings.
        let badProb = setting(try bundledTree("ascend-910b"), "faults", ["kernelLaunchFailure": ["probability": 1.5]])
        guard case .invalidValue(_, "faults.kernelLaunchFailure.probability", _, _)? = profileError({ () throws(ProfileError) in try decodeTree(badProb) }) else {
            Issue.record("probability 1.5 must be invalid")
            return
        }
        let badLink = setting(try bundledTree("ascend-910b"), "faults", ["linkDown": ["link": [3, 3]]])
        guard case .invalidValue(_, "faults.linkDown.link", _, _)? = profileError({ () throws(ProfileError) in try decodeTree(badLink) }) else {
            Issue.record("a link from a device to itself must be invalid")
            return
        }
    }

    // MARK: Overrides

    @Test("overrides set any numeric, string or list field and record the source")
    func overridesApply() throws {
        let base = try DeviceProfile.load(path: bundledPath("ascend-910b"))
        let p = try base.applying(overrides: [
            "memory.bandwidth": "2.0e12",
            "compute.matrix.peak.f16.value": "313e12",
            "interconnect.devicesPerNode": "4",
            "memory.onChipBuffers.L2.bytes": "1048576",
            "memory.onChipBuffers[0].scope": "perCluster",
            "numerics.storageDtypes": "f32,bf16",
            "description": "overridden",
            "interconnect.link.latency": "1e-6",
        ])
        #expect(p.memory.bandwidth.value == 2.0e12)
        #expect(p.memory.bandwidth.source.hasPrefix("override --set memory.bandwidth=2.0e12"))
        #expect(p.memory.bandwidth.source.contains("was: "))
        #expect(p.compute.matrix.peakRate(.f16) == 313e12)
        #expect(p.interconnect.devicesPerNode.value == 4)
        #expect(p.memory.onChipBuffers.first { $0.name == "L2" }?.bytes == 1_048_576)
        #expect(p.memory.onChipBuffers[0].scope == "perCluster")
        #expect(p.numerics.storageDtypes.value == [.f32, .bf16])
        #expect(p.description == "overridden")
        #expect(p.interconnect.link.latency.value == 1e-6)
        // Untouched fields stay.
        #expect(p.compute.matrix.peakRate(.bf16) == base.compute.matrix.peakRate(.bf16))
        // Overrides at load time and on a loaded profile agree.
        let q = try DeviceProfile.load(path: bundledPath("ascend-910b"), overrides: ["memory.bandwidth": "2.0e12"])
        #expect(q.memory.bandwidth.value == 2.0e12)
        // Raw --set strings, applied in order, and creation of an absent optional block.
        let r = try base.applying(settings: ["interconnect.topology=fullMesh", "interconnect.collectiveAlgorithms=ring,direct", "faults.seed = 7", "faults.kernelLaunchFailure.probability=0.25",
                                             "compute.matrix.peak.fp8={\"value\": 1e15, \"source\": \"what-if\"}"])
        #expect(r.interconnect.topology.value == .fullMesh)
        #expect(r.faults?.seed == 7)
        #expect(r.faults?.kernelLaunchFailure?.probability == 0.25)
        #expect(r.compute.matrix.peakRate(.fp8) == 1e15)
    }

    @Test("bad overrides give the specific error")
    func overrideErrors() throws {
        let base = try DeviceProfile.load(path: bundledPath("ascend-910b"))
        let f = base.origin
        func err(_ o: [String: String]) -> ProfileError? { profileError { () throws(ProfileError) in try base.applying(overrides: o) } }
        #expect(err(["memory.bandwdith": "1e12"]) == .unknownOverridePath(file: f, path: "memory.bandwdith"))
        #expect(err(["memory.bandwidth.value.x": "1"]) == .unknownOverridePath(file: f, path: "memory.bandwidth.value.x"))
        #expect(err(["memory.onChipBuffers.L9.bytes": "1"]) == .unknownOverridePath(file: f, path: "memory.onChipBuffers.L9.bytes"))
        #expect(err(["memory.onChipBuffers.99.bytes": "1"]) == .unknownOverridePath(file: f, path: "memory.onChipBuffers.99.bytes"))
        #expect(err(["memory.bandwidth": "fast"]) == .overrideWrongType(file: f, path: "memory.bandwidth", value: "fast", expected: "a number"))
        #expect(err(["interconnect.devicesPerNode": "2.5"]) == .overrideWrongType(file: f, path: "interconnect.devicesPerNode", value: "2.5", expected: "an integer"))
        #expect(err(["memory": "7"]) == .overrideWrongType(file: f, path: "memory", value: "7",
                                                             expected: "an object: set one of its fields, or give a JSON object literal"))
        #expect(err(["memory.bandwidth": "nan"]) == .invalidValue(file: f, path: "memory.bandwidth", value: "nan", expected: "a finite number"))
        #expect(err(["memory.bandwidth": "-2e12"]) == .invalidValue(file: f, path: "memory.bandwidth", value: "-2000000000000.0", expected: "a rate in 1…1e30 per second"))
        #expect(err(["interconnect.topology": "torus"])
                == .unknownValue(file: f, path: "interconnect.topology", value: "torus", allowed: ["fullMesh", "ring", "switch", "twoLevel"]))
        guard case .overrideWrongType(_, "memory.bandwidth", _, let expected)? = err(["memory.bandwidth": "[1,"]) else {
            Issue.record("a broken JSON literal must be overrideWrongType")
            return
        }
        #expect(expected.hasPrefix("valid JSON"))
        guard case .overrideWrongType(_, "compute.matrix.peak.fp8", "1e15", let hint)? = err(["compute.matrix.peak.fp8": "1e15"]) else {
            Issue.record("a new figure given as a bare number must say to give an object")
            return
        }
        #expect(hint.contains("sourced figure"))
        #expect(profileError { () throws(ProfileError) in try base.applying(settings: ["memorybandwidth"]) }
                == .malformedOverride(file: f, setting: "memorybandwidth", reason: "expected PATH=VALUE"))
        #expect(profileError { () throws(ProfileError) in try base.applying(settings: ["=3"]) }
                == .malformedOverride(file: f, setting: "=3", reason: "empty path before '='"))
        #expect(profileError { () throws(ProfileError) in try base.applying(settings: ["memory..bandwidth=3"]) }
                == .malformedOverride(file: f, setting: "memory..bandwidth=3", reason: "path has an empty component"))
    }

    @Test("error descriptions name the file and the field")
    func descriptions() {
        let e = ProfileError.invalidValue(file: "chip.json", path: "memory.bandwidth", value: "-1.0", expected: "a finite number > 0")
        #expect(e.description == "chip.json: field 'memory.bandwidth' = -1.0: expected a finite number > 0")
        #expect(e.file == "chip.json")
        #expect(e.path == "memory.bandwidth")
        let o = ProfileError.unknownOverridePath(file: "chip.json", path: "a.b")
        #expect(o.description.contains("'a.b'"))
    }

    // MARK: Faults

    @Test("fault triggers are deterministic")
    func faultTriggers() {
        let faults = DeviceProfile.Faults(
            seed: 42,
            kernelLaunchFailure: DeviceProfile.FaultTrigger(probability: 0.1, kernel: "matmul"),
            memoryError: DeviceProfile.FaultTrigger(atEvent: 3, device: 1))
        var fired = 0
        for event in 1...10_000 where faults.fires(.kernelLaunchFailure, event: event, device: 0, kernel: "matmul") { fired += 1 }
        #expect(fired > 850 && fired < 1150)
        // Same inputs, same answer; other kernels never fire.
        for event in 1...100 {
            #expect(faults.fires(.kernelLaunchFailure, event: event, device: 2, kernel: "matmul")
                    == faults.fires(.kernelLaunchFailure, event: event, device: 2, kernel: "matmul"))
            #expect(!faults.fires(.kernelLaunchFailure, event: event, device: 2, kernel: "softmax"))
        }
        #expect(faults.fires(.memoryError, event: 3, device: 1))
        #expect(!faults.fires(.memoryError, event: 3, device: 0))
        #expect(!faults.fires(.memoryError, event: 4, device: 1))
        #expect(!faults.fires(.deviceLost, event: 1, device: 0))
        // A different seed gives a different pattern.
        let other = DeviceProfile.Faults(seed: 43, kernelLaunchFailure: DeviceProfile.FaultTrigger(probability: 0.1))
        let a = (1...200).map { faults.fires(.kernelLaunchFailure, event: $0, device: 0, kernel: "matmul") }
        let b = (1...200).map { other.fires(.kernelLaunchFailure, event: $0, device: 0, kernel: "matmul") }
        #expect(a != b)
    }

    // MARK: Profiles built in code

    @Test("a profile built in code validates and encodes in the bundled schema")
    func builtInCode() throws {
        let src = "test"
        let unit = DeviceProfile.ComputeUnit(
            peak: ["f32": Sourced(1e12, source: src)], tile: DeviceProfile.Tile(m: 1, n: 8, k: 1, source: src),
            efficiency: DeviceProfile.EfficiencyCurve(max: Sourced(0.8, source: src), halfSaturation: Sourced(0, source: src)),
            launchOverhead: Sourced(1e-6, source: src))
        let p = DeviceProfile(
            name: "host-cpu", vendor: "Generic", description: "calibrated host",
            compute: DeviceProfile.Compute(matrix: unit, vector: unit),
            memory: DeviceProfile.Memory(capacity: Sourced(1 << 34, source: src), bandwidth: Sourced(5e10, source: src),
                                         efficiency: DeviceProfile.EfficiencyCurve(max: Sourced(0.9, source: src), halfSaturation: Sourced(0, source: src))),
            hostLink: DeviceProfile.HostLink(pcieGeneration: Sourced(4, source: src), bandwidth: Sourced(3.2e10, source: src)),
            numerics: DeviceProfile.Numerics(
                storageDtypes: Sourced([.f32], source: src),
                accumulator: DeviceProfile.Accumulators(matmul: Sourced(.f32, source: src), attention: Sourced(.f32, source: src), vector: Sourced(.f32, source: src)),
                missingDtypePolicy: ["f16": DeviceProfile.DtypePolicy(action: .emulate, via: .f32, source: src)]),
            interconnect: DeviceProfile.Interconnect(
                topology: Sourced(.switch, source: src), devicesPerNode: Sourced(1, source: src), linksPerDevice: Sourced(1, source: src),
                link: DeviceProfile.Link(bandwidth: Sourced(1e10, source: src), latency: Sourced(1e-6, source: src), efficiency: Sourced(1, source: src)),
                collectiveOverhead: Sourced(0, source: src), collectiveAlgorithms: Sourced([.ring], source: src)))
        try p.validate()
        let decoded = try DeviceProfile.decode(data: try p.encoded(), origin: p.origin)
        #expect(decoded == p)
    }
}
