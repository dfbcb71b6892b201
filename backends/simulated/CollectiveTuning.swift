// CollectiveTuning.swift — expert-parallel dispatch/combine costs the fabric model does not
// see, from published measurements: a fixed cost per call, a cost per message (token row), and
// the achieved fraction of the modeled bandwidth inside a node and across nodes (the two-level
// split: HCCS or NVLink vs RoCE or InfiniBand) — separately for dispatch and combine, which
// real libraries implement as different kernels (DeepEP-Ascend's INT8 dispatch costs about
// what its BF16 combine costs, with half the bytes). The profile carries the figures
// (`interconnect.allToAllTuning`); `polychip simulate --validate --fit` fits them on the
// published records marked `fit` and judges them on the others (docs/device-profiles.md,
// "Validated against"). Plain `allToAll(bytes:…)` calls are not tuned: the figures describe
// expert exchanges.

import Foundation

/// The two directions of an expert-parallel exchange.
public enum ExpertPhase: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Tokens to their experts.
    case dispatch
    /// Expert outputs back to their tokens.
    case combine

    /// The phase's name.
    public var description: String { rawValue }
}

extension DeviceProfile {
    /// `interconnect.allToAllTuning`: `dispatch` terms, and `combine` terms where the combine
    /// kernel differs (absent: combine uses the dispatch terms).
    public struct AllToAllTuning: Codable, Sendable, Equatable {
        /// Terms for dispatch (and for combine when `combine` is absent).
        public var dispatch: AllToAllTerms?
        /// Terms for combine.
        public var combine: AllToAllTerms?

        /// Creates a tuning block.
        public init(dispatch: AllToAllTerms? = nil, combine: AllToAllTerms? = nil) {
            self.dispatch = dispatch
            self.combine = combine
        }

        /// The terms that apply to `phase`.
        public func terms(for phase: ExpertPhase) -> AllToAllTerms? {
            phase == .combine ? (combine ?? dispatch) : dispatch
        }
    }

    /// One phase's terms. Every term is optional; an absent one changes nothing.
    public struct AllToAllTerms: Codable, Sendable, Equatable {
        /// Extra fixed cost of one exchange, seconds (on top of `collectiveOverhead`).
        public var callOverhead: Sourced<Double>?
        /// Cost per message (one token row) a rank sends or receives, seconds.
        public var perMessageOverhead: Sourced<Double>?
        /// Fraction of the intra-node fabric's modeled bandwidth (after `link.efficiency`) the
        /// exchange achieves, in (0, 1].
        public var intraNodeEfficiency: Sourced<Double>?
        /// Fraction of the inter-node network's modeled bandwidth (after
        /// `interNode.efficiency`) the exchange achieves, in (0, 1].
        public var interNodeEfficiency: Sourced<Double>?

        /// Creates the terms.
        public init(callOverhead: Sourced<Double>? = nil, perMessageOverhead: Sourced<Double>? = nil,
                    intraNodeEfficiency: Sourced<Double>? = nil, interNodeEfficiency: Sourced<Double>? = nil) {
            self.callOverhead = callOverhead
            self.perMessageOverhead = perMessageOverhead
            self.intraNodeEfficiency = intraNodeEfficiency
            self.interNodeEfficiency = interNodeEfficiency
        }
    }
}

extension TimeModel {
    /// An expert-parallel exchange of messages of `messageBytes` (one token row each): the
    /// contention model's all-to-all with the profile's `allToAllTuning` for `phase` —
    /// intra-node links and inter-node NICs run at their tuned fractions of the modeled
    /// bandwidth, and each rank that exchanges anything pays the call overhead and the
    /// per-message overhead for the larger of the messages it sends and receives.
    public func expertAllToAll(bytes: [[Double]], group: [Int]? = nil, messageBytes: Double, phase: ExpertPhase,
                               algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        guard messageBytes.isFinite, messageBytes > 0 else {
            throw .invalidArgument(name: "messageBytes", value: "\(messageBytes)", expected: "a finite byte count > 0")
        }
        guard let t = profile.interconnect.allToAllTuning?.terms(for: phase) else {
            return try allToAll(bytes: bytes, group: group, algorithm: algorithm, faults: faults)
        }
        var tuned = profile
        tuned.interconnect.allToAllTuning = nil
        if let e = t.intraNodeEfficiency?.value { tuned.interconnect.link.efficiency.value *= e }
        if let e = t.interNodeEfficiency?.value { tuned.interconnect.interNode?.efficiency.value *= e }
        let cost = try TimeModel(profile: tuned).allToAll(bytes: bytes, group: group, algorithm: algorithm, faults: faults)
        let call = t.callOverhead?.value ?? 0, perMsg = t.perMessageOverhead?.value ?? 0
        let msgs = Self.messages(bytes, messageBytes: messageBytes)
        func extra(_ d: Int) -> Double {
            guard d < msgs.count, msgs[d] > 0 else { return 0 }
            return call + perMsg * msgs[d]
        }
        var out = cost
        out.perDevice = cost.perDevice.enumerated().map { d, time in time + extra(d) }
        let worst = bytes.indices.map(extra).max() ?? 0
        out.latency = cost.latency + worst
        out.total = max(cost.total + worst, out.perDevice.max() ?? 0)
        return out
    }

    /// Messages each rank sends or receives (the larger), off the diagonal.
    public static func messages(_ bytes: [[Double]], messageBytes: Double) -> [Double] {
        bytes.indices.map { i in
            var sent = 0.0, recv = 0.0
            for j in bytes.indices where j != i { sent += bytes[i][j]; recv += bytes[j][i] }
            return max(sent, recv) / messageBytes
        }
    }
}
