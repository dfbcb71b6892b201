// PublishedValidationTests.swift — the published-measurement records, `simulate --validate`
// and `--fit`: the records decode, every one is priced, the held-out medians stay where they
// are (a profile change that worsens a chip's held-out median by more than 5 points fails),
// and the bundled profiles carry exactly what the fit records determine.

import Foundation
import Testing
import Polychip
import PolychipModels

/// Held-out median |error| per profile when the profiles were last fitted (docs/device-profiles.md,
/// "Validated against"). Lower them when a change improves a chip; never raise them to pass.
private let heldOutBaseline: [String: Double] = [
    "ascend-910b": 0.048,
    "ascend-910c": 0.121,
    "h100-sxm": 0.078,
    "hygon-bw200": 0.158,
]

private func sources() throws -> [PublishedSource] { try PublishedSource.bundled() }

@Suite("Published measurements")
struct PublishedValidationTests {
    @Test("every record file decodes, names a bundled profile, and the profiles list their records")
    func records() throws {
        let srcs = try sources()
        #expect(srcs.count >= 9)
        let names = Set(SimulatedBackend.bundledProfileNames())
        for s in srcs {
            #expect(names.contains(s.profile), "\(s.id) names profile \(s.profile)")
            #expect(!s.citation.url.isEmpty && !s.measures.isEmpty)
            let p = try SimulatedBackend.loadProfile(s.profile)
            #expect(p.validation?.records.contains(s.id) == true, "\(s.profile) should list \(s.id) in validation.records")
        }
        // Every bundled profile says what backs it.
        for n in names { #expect(try SimulatedBackend.loadProfile(n).validation != nil, "\(n) has no validation block") }
    }

    @Test("simulate --validate prices every record; held-out medians stay within 5 points of the baseline and 25%")
    func heldOut() throws {
        let report = try PublishedValidation.run(sources: try sources())
        for r in report.rows { #expect(r.failure == nil && r.error != nil, "\(r.source)/\(r.record): \(r.failure ?? "no error")") }
        for s in report.summaries {
            guard let base = heldOutBaseline[s.profile] else {
                #expect(s.heldOutRecords == 0, "\(s.profile) has held-out records but no baseline")
                continue
            }
            let m = try #require(s.heldOutMedian)
            #expect(m <= base + 0.05, "\(s.profile): held-out median \(m) worsened past \(base) + 5 points")
            #expect(m <= 0.25, "\(s.profile): held-out median \(m) above the 25% target")
        }
        #expect(Set(report.summaries.map(\.profile)).isSuperset(of: heldOutBaseline.keys))
        // Chips without published data are listed with the reason their profile gives.
        #expect(report.unvalidated["mtt-s4000"]?.contains("no published") == true)
        #expect(report.text().contains("Summary: median |error| on held-out records per profile"))
    }

    @Test("the bundled profiles hold the values the fit records determine (the fit is a fixed point)")
    func fitReproducesProfiles() throws {
        let values = try PublishedFit.fit(sources: try sources())
        #expect(!values.isEmpty)
        for v in values {
            let current = v.current ?? (v.path.hasSuffix("Efficiency") ? 1 : 0)
            #expect(abs(v.value - current) <= max(2e-3 * abs(current), 1e-9), "\(v.profile) \(v.path): fit \(v.value), profile \(current)")
        }
    }

    @Test("held-out records never move the fit")
    func holdoutDoesNotFit() throws {
        var srcs = try sources()
        let before = try PublishedFit.fit(sources: srcs)
        for i in srcs.indices {
            for j in srcs[i].records.indices where srcs[i].records[j].split != .fit { srcs[i].records[j].published.value *= 3 }
        }
        let after = try PublishedFit.fit(sources: srcs)
        #expect(before == after)
    }

    @Test("a malformed record file is a typed error naming the field")
    func badRecords() throws {
        let good = """
        {"schemaVersion": 1, "id": "t", "title": "t", "citation": {"url": "u"}, "chip": "c", "profile": "h100-sxm", "measures": "m",
         "records": [{"id": "a", "split": "holdout", "setting": {"kind": "gemm", "m": 64, "n": 64, "k": 64, "dtype": "bf16"},
                      "published": {"value": 1, "unit": "TFLOPS"}}]}
        """
        _ = try PublishedSource.decode(Data(good.utf8), origin: "t.json")
        func reason(_ text: String) -> String {
            do { _ = try PublishedSource.decode(Data(text.utf8), origin: "t.json"); return "" } catch { return error.reason }
        }
        #expect(reason(good.replacingOccurrences(of: "\"TFLOPS\"", with: "\"furlongs\"")).contains("published.unit"))
        #expect(reason(good.replacingOccurrences(of: "\"m\": 64", with: "\"m\": -1")).contains("setting.m"))
        #expect(reason(good.replacingOccurrences(of: "\"gemm\"", with: "\"teleport\"")).contains("unknown kind"))
        #expect(reason(good.replacingOccurrences(of: "\"bf16\"", with: "\"bf17\"")).contains("dtype"))
        #expect(reason(good.replacingOccurrences(of: "\"holdout\"", with: "\"maybe\"")).contains("split"))
        #expect(reason(good.replacingOccurrences(of: "\"measures\": \"m\",", with: "")).contains("measures"))
        #expect(reason("{").contains("t.json") || reason("{").count > 0)
    }

    @Test("counted bytes follow each source's definition")
    func countedBytes() throws {
        // DeepEP's intranode normal dispatch: one row per (token, destination rank), own rank included.
        let json = """
        {"kind": "expertAllToAll", "phase": "dispatch", "scheme": "perRank", "epSize": 8, "tokensPerRank": 4096, "experts": 256,
         "topK": 8, "bytesPerMessage": 7392, "countedBytesPerUnit": 7392, "countedUnit": "rankRows"}
        """
        guard case .expertAllToAll(let e) = try JSONDecoder().decode(RecordSetting.self, from: Data(json.utf8)) else {
            Issue.record("not an expert all-to-all setting")
            return
        }
        let t = ExpertRouting.sample(e, devicesPerNode: 8, seed: 1)
        let rows = ExpertRouting.countedUnits(t, unit: "rankRows", epSize: 8, devicesPerNode: 8)
        // 1 − C(224,8)/C(256,8) ≈ 0.6609 of the 8 ranks per token, 4096 tokens from each of 8 ranks.
        var miss = 1.0
        for i in 0..<8 { miss *= Double(224 - i) / Double(256 - i) }
        let expected = 4096.0 * 8 * (1 - miss)
        #expect(abs(rows / expected - 1) < 0.02)
        let sel = ExpertRouting.countedUnits(t, unit: "selections", epSize: 8, devicesPerNode: 8)
        #expect(abs(sel - 4096 * 8) < 1e-6)
    }
}

private extension Error {
    var reason: String { (self as? PublishedRecordError)?.description ?? "\(self)" }
}
