// ProfileValidationStatus.swift — what backs a profile's figures: a confidence per estimated
// figure, whether published measurements validate the profile, and the checks of the
// optional schema fields that say so (called from DeviceProfile.validate()).

import Foundation
import PolychipCore

/// How far to trust one figure of a profile. Figures copied from a datasheet or measured need
/// none; estimates say how rough they are, so a user knows which numbers to replace with
/// their own `polychip calibrate` output.
public enum FigureConfidence: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// Published by the vendor or measured, possibly re-expressed (a card figure halved per chip).
    case high
    /// A third-party copy of a vendor figure, a figure derived from published ones by a stated
    /// rule, or a single published measurement used as a rate.
    case medium
    /// An assumption: an analogy with another chip or an engineering rule of thumb.
    case low

    /// The confidence as written in profiles.
    public var description: String { rawValue }

    /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
    public init(from decoder: any Decoder) throws {
        self = try decodeProfileEnum(Self.self, from: decoder)
    }
}

extension DeviceProfile {
    /// Whether published measurements back a profile (`validation` in the JSON).
    public struct ValidationStatus: Codable, Sendable, Equatable {
        /// `validated`: held-out published records judge the profile; `fitted`: published
        /// records set some of its figures but none is held out to judge them; `none`: no
        /// published measurement of this chip was found.
        public enum State: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
            /// Held-out published records judge the profile.
            case validated
            /// Published records set figures; none is held out.
            case fitted
            /// No published measurement found.
            case none

            /// The state as written in profiles.
            public var description: String { rawValue }

            /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
            public init(from decoder: any Decoder) throws {
                self = try decodeProfileEnum(Self.self, from: decoder)
            }
        }

        /// The state.
        public var status: State
        /// Ids of the published-record files (`backends/profiles/published/ID.json`) priced
        /// with this profile; empty for `none`.
        public var records: [String]
        /// What was searched or found, in a sentence (shown by `polychip devices`).
        public var note: String

        /// Creates a status.
        public init(status: State, records: [String] = [], note: String) {
            self.status = status
            self.records = records
            self.note = note
        }

        /// One line for listings: `validated against deepgemm-h800, deepep-h800 — …`.
        public var summary: String {
            switch status {
            case .none: return "no published measurements — \(note)"
            case .fitted: return "fitted to \(records.joined(separator: ", ")) (none held out) — \(note)"
            case .validated: return "validated against \(records.joined(separator: ", ")) — \(note)"
            }
        }
    }

    /// What `polychip devices` shows for a simulated device: the profile's origin, its
    /// interconnect, whether published measurements back it, and how many of its figures are
    /// estimates (and which matter most).
    public var listingDetails: [String: String] {
        var d = ["profile": origin, "interconnect": interconnect.topology.value.rawValue]
        d["validation"] = validation?.summary ?? "not stated (no validation block in the profile)"
        let est = estimatedFigures()
        let low = est.filter { $0.confidence == .low }.count, medium = est.filter { $0.confidence == .medium }.count
        if !est.isEmpty { d["estimates"] = "\(low) figures of low confidence, \(medium) of medium (docs/device-profiles.md lists them)" }
        return d
    }

    /// Figures marked with a `confidence`, and figures whose source starts with "assumption" or
    /// "estimate" (counted as `low`), as `(path, confidence, source)` in document order: the
    /// numbers a user should replace first.
    public func estimatedFigures() -> [(path: String, confidence: FigureConfidence, source: String)] {
        guard let data = try? encoded(), let tree = try? DeviceProfile.parseJSON(data, origin: origin) else { return [] }
        var out: [(String, FigureConfidence, String)] = []
        func walk(_ node: JSONValue, _ path: [ProfilePathComponent]) {
            switch node {
            case .object(let members):
                var src = ""
                if let m = members.first(where: { $0.0 == "source" }), case .string(let t) = m.1 { src = t }
                if let c = members.first(where: { $0.0 == "confidence" }), case .string(let s) = c.1,
                   let conf = FigureConfidence(rawValue: s) {
                    out.append((renderProfilePath(path), conf, src))
                } else if members.contains(where: { $0.0 == "value" }),
                          ["assumption", "engineering estimate", "estimate"].contains(where: { src.lowercased().hasPrefix($0) }) {
                    // A figure its source calls an assumption or estimate is one, stated or not.
                    out.append((renderProfilePath(path), .low, src))
                }
                for (k, v) in members { walk(v, path + [.key(k)]) }
            case .array(let items):
                for (i, v) in items.enumerated() { walk(v, path + [.index(i)]) }
            default:
                break
            }
        }
        walk(tree, [])
        return out
    }

    /// Checks `interconnect.allToAllTuning` and `validation`: overheads finite and ≥ 0,
    /// efficiencies in (0, 1], a status with records unless `none`.
    func validateTuningAndStatus(_ v: ProfileValidator) throws(ProfileError) {
        for (phase, terms) in [("dispatch", interconnect.allToAllTuning?.dispatch), ("combine", interconnect.allToAllTuning?.combine)] {
            guard let t = terms else { continue }
            let p = "interconnect.allToAllTuning.\(phase)"
            if let c = t.callOverhead { try v.nonNegative(c, p + ".callOverhead") }
            if let c = t.perMessageOverhead { try v.nonNegative(c, p + ".perMessageOverhead") }
            if let e = t.intraNodeEfficiency { try v.fraction(e, p + ".intraNodeEfficiency") }
            if let e = t.interNodeEfficiency { try v.fraction(e, p + ".interNodeEfficiency") }
        }
        if let s = validation {
            try v.check(s.status == .none || !s.records.isEmpty, "validation.records", "[]",
                        "the published-record ids that \(s.status) this profile")
            try v.source(s.note, "validation.note")
        }
    }
}
