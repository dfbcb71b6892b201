// PublishedValidation.swift — `polychip simulate --validate`: every published record priced
// with its bundled profile, modeled vs published with the error, and the median absolute error
// per chip and per class, on held-out records (which fitted nothing) and, separately, on the
// fit records. Every record's error is printed, the worst included.

import Foundation
import PolychipCore
import PolychipSimulated

/// One priced record.
public struct PublishedValidationRow: Codable, Sendable, Equatable {
    /// Source id (file).
    public var source: String
    /// Record id.
    public var record: String
    /// The chip the source measured.
    public var chip: String
    /// The bundled profile that priced it.
    public var profile: String
    /// Fit, holdout or context.
    public var split: RecordSplit
    /// Kernel class, collective or `expertAllToAll`.
    public var reportClass: String
    /// The figure as published (`206 TFLOPS`).
    public var publishedFigure: String
    /// The published figure as seconds (its own FLOP/byte definition).
    public var publishedSeconds: Double?
    /// The profile's prediction, seconds.
    public var modeledSeconds: Double?
    /// modeled / published − 1.
    public var error: Double?
    /// Why the record could not be priced, if so.
    public var failure: String?
    /// The record's note.
    public var note: String?
}

/// Medians of one profile.
public struct PublishedValidationSummary: Codable, Sendable, Equatable {
    /// Profile name.
    public var profile: String
    /// Chips its records measured.
    public var chips: [String]
    /// Records marked fit.
    public var fitRecords: Int
    /// Records held out (they judge the profile).
    public var heldOutRecords: Int
    /// Records printed for context only.
    public var contextRecords: Int
    /// Records that could not be priced.
    public var failedRecords: Int
    /// Median |error| over held-out records (nil when none).
    public var heldOutMedian: Double?
    /// Median |error| over fit records.
    public var fitMedian: Double?
    /// Per class: held-out count and median |error|.
    public var heldOutByClass: [String: ClassMedian]

    /// A count and a median.
    public struct ClassMedian: Codable, Sendable, Equatable {
        /// Held-out records of the class.
        public var records: Int
        /// Their median |error|.
        public var median: Double
    }
}

/// The whole report.
public struct PublishedValidationReport: Codable, Sendable, Equatable {
    /// Every record, in source order.
    public var rows: [PublishedValidationRow]
    /// One summary per profile, by name.
    public var summaries: [PublishedValidationSummary]
    /// Bundled profiles no record prices, with the reason their file gives.
    public var unvalidated: [String: String]

    /// The median of |x|.
    public static func medianAbs(_ xs: [Double]) -> Double? {
        let a = xs.map { abs($0) }.sorted()
        guard !a.isEmpty else { return nil }
        return a.count % 2 == 1 ? a[a.count / 2] : (a[a.count / 2 - 1] + a[a.count / 2]) / 2
    }

    /// The plain-text report.
    public func text() -> String {
        var out = "Published measurements priced with the bundled profiles (polychip simulate --validate)\n"
        out += "error = modeled / published − 1 · fit records set profile figures, held-out records judge them, context records are printed only\n"
        for s in summaries {
            out += "\n\(s.profile) (\(s.chips.joined(separator: "; "))) — \(s.fitRecords) fit, \(s.heldOutRecords) held out, \(s.contextRecords) context"
            out += s.failedRecords > 0 ? ", \(s.failedRecords) not priced\n" : "\n"
            let rs = rows.filter { $0.profile == s.profile }
            let w0 = max(6, rs.map(\.source.count).max() ?? 0), w1 = max(6, rs.map(\.record.count).max() ?? 0)
            let w2 = max(5, rs.map(\.reportClass.count).max() ?? 0), w3 = max(9, rs.map(\.publishedFigure.count).max() ?? 0)
            out += "  " + pad("source", w0) + "  " + pad("record", w1) + "  split    " + pad("class", w2) + "  " + pad("published", w3)
                + "  published t   modeled t     error\n"
            for r in rs {
                out += "  " + pad(r.source, w0) + "  " + pad(r.record, w1) + "  " + pad(r.split.rawValue, 7) + "  " + pad(r.reportClass, w2)
                    + "  " + pad(r.publishedFigure, w3) + "  " + lpad(Self.time(r.publishedSeconds), 11) + "  " + lpad(Self.time(r.modeledSeconds), 10)
                if let e = r.error { out += "  " + lpad(Self.percent(e), 8) } else { out += "  " + lpad("–", 8) }
                if let f = r.failure { out += "  not priced: \(f)" }
                out += "\n"
            }
            out += "  held-out median |error| " + (s.heldOutMedian.map { Self.percent($0, signed: false) } ?? "– (no held-out record)")
                + " over \(s.heldOutRecords) · fit median " + (s.fitMedian.map { Self.percent($0, signed: false) } ?? "–") + " over \(s.fitRecords)\n"
            if !s.heldOutByClass.isEmpty {
                out += "  held out, per class: " + s.heldOutByClass.keys.sorted().map { k in
                    let c = s.heldOutByClass[k]!
                    return "\(k) \(Self.percent(c.median, signed: false)) (\(c.records))"
                }.joined(separator: ", ") + "\n"
            }
        }
        out += "\nSummary: median |error| on held-out records per profile\n"
        let w = max(8, summaries.map(\.profile.count).max() ?? 0)
        out += "  " + pad("profile", w) + "  held out  median   fit  median\n"
        for s in summaries {
            out += "  " + pad(s.profile, w) + "  " + lpad("\(s.heldOutRecords)", 8) + "  " + lpad(s.heldOutMedian.map { Self.percent($0, signed: false) } ?? "–", 6)
                + "  " + lpad("\(s.fitRecords)", 4) + "  " + lpad(s.fitMedian.map { Self.percent($0, signed: false) } ?? "–", 6) + "\n"
        }
        for (p, why) in unvalidated.sorted(by: { $0.key < $1.key }) { out += "  " + pad(p, w) + "  no published records: \(why)\n" }
        return out
    }

    static func percent(_ x: Double, signed: Bool = true) -> String {
        let v = x * 100
        return (signed && v >= 0 ? "+" : "") + String(format: abs(v) >= 100 ? "%.0f%%" : "%.1f%%", v)
    }

    static func time(_ s: Double?) -> String {
        guard let s else { return "–" }
        if s >= 1 { return String(format: "%.3f s", s) }
        if s >= 1e-3 { return String(format: "%.3f ms", s * 1e3) }
        return String(format: "%.1f µs", s * 1e6)
    }
}

private func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
private func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }

/// Runs the validation.
public enum PublishedValidation {
    /// A stable seed per record (FNV-1a of `source/record`), so every run samples the same routing.
    public static func seed(_ source: String, _ record: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in "\(source)/\(record)".utf8 { h = (h ^ UInt64(b)) &* 0x0100_0000_01b3 }
        return h
    }

    /// The profile that prices a source: the bundled one (or a `--profile` file of the same
    /// name), with the source's settings and then the user's `--set` settings applied.
    public static func profile(for source: PublishedSource, overrides: [String: String], settings: [String]) throws -> DeviceProfile {
        let base = overrides[source.profile] ?? source.profile
        return try SimulatedBackend.loadProfile(base, settings: (source.settings ?? []) + settings)
    }

    /// Prices every record of `sources`; `overrides` maps a profile name to a file that
    /// replaces it; `settings` are `--set` overrides applied to every profile.
    public static func run(sources: [PublishedSource], overrides: [String: String] = [:], settings: [String] = []) throws -> PublishedValidationReport {
        var rows: [PublishedValidationRow] = []
        for src in sources {
            let prof: DeviceProfile
            do { prof = try profile(for: src, overrides: overrides, settings: settings) } catch {
                throw PublishedRecordError(file: src.id, reason: "profile '\(src.profile)' with the source's settings: \(error)")
            }
            let model = TimeModel(profile: prof)
            for r in src.records {
                let sd = seed(src.id, r.id)
                var row = PublishedValidationRow(source: src.id, record: r.id, chip: src.chip, profile: src.profile, split: r.split,
                                                 reportClass: r.setting.reportClass, publishedFigure: figure(r.published),
                                                 publishedSeconds: nil, modeledSeconds: nil, error: nil, failure: nil, note: r.note)
                let traffic = PublishedPricing.traffic(r, profile: prof, seed: sd)
                row.publishedSeconds = PublishedPricing.publishedSeconds(r, profile: prof, traffic: traffic)
                do { row.modeledSeconds = try PublishedPricing.modeledSeconds(r, model: model, traffic: traffic) } catch { row.failure = "\(error)" }
                if let p = row.publishedSeconds, let m = row.modeledSeconds, p > 0 { row.error = m / p - 1 }
                else if row.failure == nil { row.failure = "the published figure has no time equivalent for this setting" }
                rows.append(row)
            }
        }
        let names = Array(Set(rows.map(\.profile))).sorted()
        let summaries = names.map { name -> PublishedValidationSummary in
            let rs = rows.filter { $0.profile == name }
            let held = rs.filter { $0.split == .holdout }, fit = rs.filter { $0.split == .fit }
            var byClass: [String: PublishedValidationSummary.ClassMedian] = [:]
            for c in Set(held.map(\.reportClass)) {
                let errs = held.filter { $0.reportClass == c }.compactMap(\.error)
                if let m = PublishedValidationReport.medianAbs(errs) { byClass[c] = .init(records: errs.count, median: m) }
            }
            return PublishedValidationSummary(
                profile: name, chips: Array(Set(rs.map(\.chip))).sorted(), fitRecords: fit.count, heldOutRecords: held.count,
                contextRecords: rs.filter { $0.split == .context }.count, failedRecords: rs.filter { $0.failure != nil }.count,
                heldOutMedian: PublishedValidationReport.medianAbs(held.compactMap(\.error)),
                fitMedian: PublishedValidationReport.medianAbs(fit.compactMap(\.error)), heldOutByClass: byClass)
        }
        var unvalidated: [String: String] = [:]
        for n in SimulatedBackend.bundledProfileNames() where !names.contains(n) {
            if let p = try? SimulatedBackend.loadProfile(n) { unvalidated[n] = p.validation?.note ?? "the profile gives no validation status" }
        }
        return PublishedValidationReport(rows: rows, summaries: summaries, unvalidated: unvalidated)
    }

    static func figure(_ f: PublishedFigure) -> String {
        let v = f.value == f.value.rounded() && abs(f.value) < 1e9 ? String(format: "%.0f", f.value) : String(format: "%g", f.value)
        return "\(v) \(f.unit)"
    }
}
