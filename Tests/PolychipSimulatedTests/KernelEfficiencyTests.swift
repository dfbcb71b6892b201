// KernelEfficiencyTests.swift — the optional kernel-class efficiency table and read bandwidth:
// schema (valid values load, invalid ones give typed errors naming the field) and the model's
// use of them, against hand calculations.

import Foundation
import Testing
import PolychipCore
@testable import PolychipSimulated

private let profilesDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("backends").appendingPathComponent("profiles").path

private func bundledTree(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: profilesDirectory + "/" + name + ".json"))
    return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
}

private func decode(_ tree: [String: Any]) throws(ProfileError) -> DeviceProfile {
    let data = (try? JSONSerialization.data(withJSONObject: tree)) ?? Data()
    return try DeviceProfile.decode(data: data, origin: "test.json")
}

private func profileError(_ tree: [String: Any]) -> ProfileError? {
    do {
        _ = try decode(tree)
        return nil
    } catch {
        return error
    }
}

private func fig(_ v: Any) -> [String: Any] { ["value": v, "source": "test"] }

/// The bundled profile with a `kernelEfficiency` table and/or a `memory.readBandwidth`.
private func tree(_ name: String = "mtt-s4000", table: [String: Any]? = nil, readBandwidth: Any? = nil) throws -> [String: Any] {
    var t = try bundledTree(name)
    if let table { t["kernelEfficiency"] = table }
    if let readBandwidth {
        var m = t["memory"] as? [String: Any] ?? [:]
        m["readBandwidth"] = fig(readBandwidth)
        t["memory"] = m
    }
    return t
}

@Suite("Kernel-class efficiency and read bandwidth")
struct KernelEfficiencyTests {
    @Test("every kernel has a class; the class lists it")
    func classesCoverTheCatalog() {
        for k in OpKind.allCases { #expect(KernelClass(k).kernels.contains(k)) }
        #expect(KernelClass(.softmax) == .softmax && KernelClass(.topK) == .selection && KernelClass(.moeLayer) == .gemm)
    }

    @Test("profiles without the new fields load unchanged")
    func optionalFields() throws {
        let p = try decode(try tree())
        #expect(p.kernelEfficiency == nil && p.memory.readBandwidth == nil)
        #expect(p.efficiency(of: .attention) == nil)
    }

    @Test("valid entries load, round-trip and are found by class")
    func validEntries() throws {
        let p = try decode(try tree(table: ["attention": ["compute": fig(0.7), "memory": fig(0.4)], "selection": ["memory": fig(0.02)], "gemm": [:]],
                                    readBandwidth: 9.0e11))
        #expect(p.efficiency(of: .attention)?.compute?.value == 0.7)
        #expect(p.efficiency(of: .attention)?.memory?.value == 0.4)
        #expect(p.efficiency(of: .selection)?.compute == nil)
        #expect(p.memory.readBandwidth?.value == 9.0e11)
        let again = try DeviceProfile.decode(data: try p.encoded(), origin: p.origin)
        #expect(again == p)
    }

    @Test("invalid values give typed errors naming the field",
          arguments: [
            ("attention", "compute", 0.0), ("attention", "compute", 1.5), ("softmax", "memory", -0.1),
            ("selection", "memory", 1e300),
          ] as [(String, String, Double)])
    func invalidEfficiency(cls: String, term: String, value: Double) throws {
        let v = value
        let e = profileError(try tree(table: [cls: [term: fig(v)]]))
        guard case .invalidValue(let file, let path, _, let expected)? = e else {
            Issue.record("\(cls).\(term)=\(v): expected invalidValue, got \(String(describing: e))")
            return
        }
        #expect(file == "test.json")
        #expect(path == "kernelEfficiency.\(cls).\(term)")
        #expect(expected.contains("(0, 1]"))
    }

    @Test("an unknown class, an unknown key and a missing source are typed errors")
    func badKeys() throws {
        guard case .unknownValue(_, "kernelEfficiency.flashAttention", "flashAttention", let allowed)? =
                profileError(try tree(table: ["flashAttention": ["compute": fig(0.5)]])) else {
            Issue.record("an unknown class must be an unknownValue")
            return
        }
        #expect(allowed == KernelClass.allCases.map(\.rawValue))
        #expect(profileError(try tree(table: ["attention": ["flops": fig(0.5)]])) == .unknownField(file: "test.json", path: "kernelEfficiency.attention.flops"))
        #expect(profileError(try tree(table: ["attention": ["compute": ["value": 0.5]]])) == .missingField(file: "test.json", path: "kernelEfficiency.attention.compute.source"))
        guard case .wrongType(_, "kernelEfficiency.attention.compute", _, _)? = profileError(try tree(table: ["attention": ["compute": ["value": "fast", "source": "x"]]])) else {
            Issue.record("a string efficiency must be a wrongType")
            return
        }
        guard case .invalidValue(_, "kernelEfficiency.attention.memory.source", _, _)? = profileError(try tree(table: ["attention": ["memory": ["value": 0.5, "source": " "]]])) else {
            Issue.record("a blank source must be invalid")
            return
        }
    }

    @Test("read bandwidth must be positive and at least half the copy bandwidth")
    func badReadBandwidth() throws {
        let copy = try decode(try tree()).memory.bandwidth.value
        for v in [0.0, -1.0, copy / 2 * 0.99] {
            guard case .invalidValue(_, "memory.readBandwidth", _, _)? = profileError(try tree(readBandwidth: v)) else {
                Issue.record("readBandwidth \(v) must be invalid")
                continue
            }
        }
        #expect(profileError(try tree(readBandwidth: copy / 2)) == nil)
        guard case .wrongType(_, "memory.readBandwidth", _, _)? = profileError(try tree(readBandwidth: "fast")) else {
            Issue.record("a string read bandwidth must be a wrongType")
            return
        }
    }

    @Test("the model divides compute and memory time by the class's efficiencies")
    func modelUsesClassEfficiency() throws {
        let base = TimeModel(profile: try decode(try tree()))
        let tuned = TimeModel(profile: try decode(try tree(table: ["attention": ["compute": fig(0.5), "memory": fig(0.25)]])))
        let q = KernelCostQuery(name: "attention", unit: .matrix, dtype: .f16, flops: 1e12, bytes: 1e9, kernelClass: .attention)
        let a = try base.kernelTime(q), b = try tuned.kernelTime(q)
        #expect(abs(b.compute / a.compute - 2) < 1e-12)
        #expect(abs(b.memory / a.memory - 4) < 1e-12)
        #expect(b.launch == a.launch)
        // Other classes, and queries without a class, are untouched.
        var other = q
        other.kernelClass = .gemm
        #expect(try tuned.kernelTime(other) == a)
        other.kernelClass = nil
        #expect(try tuned.kernelTime(other) == a)
    }

    @Test("read bandwidth prices reads at it and writes at what a copy leaves")
    func modelUsesReadBandwidth() throws {
        let plain = try decode(try tree())
        let bw = plain.memory.bandwidth.value
        let rb = 2 * bw
        let m = TimeModel(profile: try decode(try tree(readBandwidth: rb)))
        let base = TimeModel(profile: plain)
        // Hand calculation: (R / rb + W · (2 / bw − 1 / rb)) / e_m(B).
        let (r, w) = (3e9, 1e9)
        let q = KernelCostQuery(name: "k", unit: .vector, dtype: .f32, flops: 0, bytes: r + w, writeBytes: w)
        let e = plain.memory.efficiency.efficiency(work: r + w)
        let expected = (r / rb + w * (2 / bw - 1 / rb)) / e
        #expect(abs(try m.kernelTime(q).memory / expected - 1) < 1e-12)
        // A copy (R = W) costs what it did without the read bandwidth.
        let copy = KernelCostQuery(name: "copy", unit: .vector, dtype: .f32, flops: 0, bytes: 2e9, writeBytes: 1e9)
        #expect(abs(try m.kernelTime(copy).memory / (try base.kernelTime(copy).memory) - 1) < 1e-12)
        // Without writeBytes every byte is priced at the copy bandwidth.
        var unsplit = q
        unsplit.writeBytes = nil
        #expect(try m.kernelTime(unsplit).memory == (try base.kernelTime(unsplit).memory))
        // writeBytes outside [0, bytes] is a typed error naming the field.
        var bad = q
        bad.writeBytes = 5e9
        #expect(throws: TimeModelError.invalidQuery(kernel: "k", field: "writeBytes", value: "\(5e9)", expected: "a finite number in [0, bytes = \(4e9)]")) {
            _ = try m.kernelTime(bad)
        }
    }

    @Test("a simulated device passes the kernel's class and written bytes to the model")
    func simulatedDeviceUsesTable() throws {
        let plain = try SimulatedDevice(profile: try decode(try tree()), index: 0)
        let tuned = try SimulatedDevice(profile: try decode(try tree(table: ["softmax": ["compute": fig(0.5), "memory": fig(0.5)]])), index: 0)
        let x = TensorDesc([1024, 4096], .f32)
        let a = try #require(try plain.model(.softmax, inputs: [x]))
        let b = try #require(try tuned.model(.softmax, inputs: [x]))
        #expect(abs((b.total - b.launch) / (a.total - a.launch) - 2) < 1e-9)
        let r = try #require(try tuned.model(.rmsNorm(eps: 1e-6), inputs: [x, TensorDesc([4096], .f32)]))
        let r0 = try #require(try plain.model(.rmsNorm(eps: 1e-6), inputs: [x, TensorDesc([4096], .f32)]))
        #expect(r == r0)
    }
}
