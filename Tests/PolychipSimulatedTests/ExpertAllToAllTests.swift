// ExpertAllToAllTests.swift — the expert exchange schemes, the per-phase all-to-all tuning and
// the optional schema fields that carry confidence and validation status.

import Foundation
import Testing
@testable import PolychipSimulated

private func bundled(_ name: String) throws -> DeviceProfile {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("backends/profiles").path
    return try DeviceProfile.load(path: dir + "/\(name).json")
}

/// Four ranks on two nodes of two (global devices 0–3), each with one token per destination list.
private func traffic(_ dests: [[[Int]]], bytes: Double = 1_000_000) -> ExpertTraffic {
    ExpertTraffic(destinations: dests, bytesPerMessage: bytes)
}

@Suite("Expert all-to-all")
struct ExpertAllToAllTests {
    @Test("per-expert, per-rank and per-node schemes move the bytes their libraries move")
    func schemes() throws {
        var p = try bundled("h100-sxm")
        p.interconnect.devicesPerNode.value = 2
        let m = TimeModel(profile: p)
        // Rank 0's token goes to experts on ranks 1, 1, 2 and 3 (ranks 2 and 3 are the other node).
        let t = traffic([[[1, 1, 2, 3]], [], [], []])
        let perExpert = m.expertMatrices(t, scheme: .perExpert, group: [0, 1, 2, 3])
        #expect(perExpert.count == 1 && perExpert[0][0] == [0, 2e6, 1e6, 1e6])
        let perRank = m.expertMatrices(t, scheme: .perRank, group: [0, 1, 2, 3])
        #expect(perRank[0][0] == [0, 1e6, 1e6, 1e6])
        // Per node: once across to the same-local-index peer (2), which forwards to 3.
        let perNode = m.expertMatrices(t, scheme: .perNode, group: [0, 1, 2, 3])
        #expect(perNode.count == 2)
        #expect(perNode[0][0] == [0, 0, 1e6, 0])
        #expect(perNode[1][0] == [0, 1e6, 0, 0] && perNode[1][2] == [0, 0, 0, 1e6])
        // The exchange lasts as long as the slower stage; combine sends the same rows back.
        let d = try m.expertExchange(t, scheme: .perNode, phase: .dispatch)
        let c = try m.expertExchange(t, scheme: .perNode, phase: .combine)
        #expect(d.total > 0 && c.total > 0)
        let inter = try m.allToAll(bytes: perNode[0])
        #expect(d.total >= inter.total - 1e-12)
    }

    @Test("balanced matrices average over rank pairs of the same kind")
    func balanced() throws {
        var p = try bundled("h100-sxm")
        p.interconnect.devicesPerNode.value = 2
        let m = TimeModel(profile: p)
        let t = traffic([[[1]], [[0]], [[3, 0]], [[2]]])
        let b = m.expertMatrices(t, scheme: .perExpert, group: [0, 1, 2, 3], balanced: true)[0]
        // Same-node pairs (0↔1, 2↔3) carry 4 MB over 4 pairs; the cross-node pairs with the same
        // local index (0↔2, 1↔3) carry 1 MB over 4; the other cross-node pairs nothing.
        #expect(b[0][1] == 1e6 && b[2][3] == 1e6)
        #expect(b[0][2] == 0.25e6 && b[1][3] == 0.25e6 && b[0][3] == 0)
        #expect(b[0][0] == 0)
    }

    @Test("tuning adds call and per-message overheads and scales intra- and inter-node bandwidth, per phase")
    func tuning() throws {
        var p = try bundled("h100-sxm")
        p.interconnect.allToAllTuning = nil
        let bytes: [[Double]] = [[0, 8e6], [8e6, 0]]
        let bare = try TimeModel(profile: p).expertAllToAll(bytes: bytes, messageBytes: 1e6, phase: .dispatch)
        let plain = try TimeModel(profile: p).allToAll(bytes: bytes)
        #expect(bare == plain)
        p.interconnect.allToAllTuning = .init(
            dispatch: .init(callOverhead: Sourced(10e-6, source: "test"), perMessageOverhead: Sourced(1e-6, source: "test"),
                            intraNodeEfficiency: Sourced(0.5, source: "test")),
            combine: nil)
        let tuned = try TimeModel(profile: p).expertAllToAll(bytes: bytes, messageBytes: 1e6, phase: .dispatch)
        // 8 messages per rank, the transfer at half the link efficiency.
        let expected = plain.overhead + plain.latency + 2 * plain.transfer + 10e-6 + 8e-6
        #expect(abs(tuned.total - expected) < 1e-9)
        // Combine falls back to the dispatch terms; plain allToAll is never tuned.
        let combine = try TimeModel(profile: p).expertAllToAll(bytes: bytes, messageBytes: 1e6, phase: .combine)
        #expect(abs(combine.total - tuned.total) < 1e-12)
        #expect(try TimeModel(profile: p).allToAll(bytes: bytes) == plain)
        #expect(throws: CollectiveError.self) { try TimeModel(profile: p).expertAllToAll(bytes: bytes, messageBytes: 0, phase: .dispatch) }
    }

    @Test("tuning and status fields are validated, naming the field")
    func schemaChecks() throws {
        var p = try bundled("ascend-910c")
        p.interconnect.allToAllTuning?.combine?.interNodeEfficiency = Sourced(1.5, source: "test")
        #expect(throws: ProfileError.invalidValue(file: p.origin, path: "interconnect.allToAllTuning.combine.interNodeEfficiency",
                                                  value: "1.5", expected: "an efficiency in (0, 1]")) { try p.validate() }
        var q = try bundled("ascend-910c")
        q.validation = .init(status: .validated, records: [], note: "x")
        #expect(throws: ProfileError.self) { try q.validate() }
        // An unknown confidence is an unknownValue error at its path.
        let data = try bundled("mlu590").encoded()
        var text = String(decoding: data, as: UTF8.self)
        text = text.replacingOccurrences(of: "\"source\" : \"community figures (no official Cambricon data; shared\\/device-facts.md): 314 BF16\"",
                                         with: "\"source\" : \"x\", \"confidence\" : \"certain\"")
        #expect(throws: ProfileError.self) { try DeviceProfile.decode(data: Data(text.utf8), origin: "t.json") }
    }

    @Test("estimated figures are listed with their confidence; chips without data say so")
    func estimates() throws {
        let k = try bundled("kunlun-r300")
        let est = k.estimatedFigures()
        #expect(est.contains { $0.path == "compute.matrix.peak.f32" && $0.confidence == .low })
        #expect(!est.contains { $0.path == "compute.matrix.peak.f16" && $0.confidence == .low })
        #expect(k.validation?.status == DeviceProfile.ValidationStatus.State.none)
        #expect(k.listingDetails["validation"]?.hasPrefix("no published measurements") == true)
        // An unmarked figure whose source is an assumption counts as low.
        let m = try bundled("mtt-s4000")
        #expect(m.estimatedFigures().contains { $0.path == "interconnect.nodeTopology" && $0.confidence == .low })
        #expect(try bundled("h100-sxm").validation?.status == .validated)
    }

    @Test("the published numerics of the new chips: BF16 emulated on Kunlun, FP64 native on Hygon only")
    func numerics() throws {
        let k = try bundled("kunlun-r300")
        guard case .emulated(let r) = k.dtypeSupport(unit: .matrix, dtype: .bf16) else {
            Issue.record("R300 bf16 should be emulated (no BF16 rate published)")
            return
        }
        #expect(r.effective == .f32)
        guard case .native = try bundled("hygon-bw200").dtypeSupport(unit: .matrix, dtype: .f64) else {
            Issue.record("BW200 has FP64 matrix rates")
            return
        }
        for chip in ["iluvatar-bi150", "enflame-t20", "kunlun-r300"] {
            guard case .rejected = try bundled(chip).dtypeSupport(unit: .matrix, dtype: .f64) else {
                Issue.record("\(chip) publishes no FP64 rate")
                continue
            }
        }
        guard case .rejected = try bundled("enflame-t20").dtypeSupport(unit: .matrix, dtype: .fp8) else {
            Issue.record("T20 has no FP8")
            return
        }
    }
}
