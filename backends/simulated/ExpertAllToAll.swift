// ExpertAllToAll.swift — expert-parallel dispatch/combine priced from token-level routing,
// with the three exchange schemes real EP libraries use: one message per (token, expert)
// (DeepEP low-latency kernels, Ascend MoeDistributeDispatch), one per (token, destination
// rank) (DeepEP's intra-node normal kernels), and the two-level scheme of DeepEP's inter-node
// normal kernels — each token crosses the network once per destination node, to the peer with
// the sender's local index, which forwards it inside its node; the two stages are pipelined,
// so the exchange lasts as long as the slower of the inter-node and intra-node stages.

import Foundation

/// Where each token of each rank goes: `destinations[r][t]` lists the expert-parallel ranks
/// (positions in the group, with repetition: one entry per selected expert on that rank) that
/// token `t` of rank `r` is sent to.
public struct ExpertTraffic: Sendable, Equatable {
    /// Per source rank, per sampled token, the destination ranks (one entry per expert).
    public var destinations: [[[Int]]]
    /// Bytes of one token's message (hidden state plus scales and metadata).
    public var bytesPerMessage: Double
    /// Each sampled token stands for this many real tokens (sampling caps the work).
    public var tokenWeight: Double

    /// Creates a traffic description.
    public init(destinations: [[[Int]]], bytesPerMessage: Double, tokenWeight: Double = 1) {
        self.destinations = destinations
        self.bytesPerMessage = bytesPerMessage
        self.tokenWeight = tokenWeight
    }

    /// Group size (ranks).
    public var ranks: Int { destinations.count }
}

/// How an expert-parallel exchange sends a token to its experts.
public enum ExpertExchangeScheme: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// One message per selected expert (no deduplication).
    case perExpert
    /// One message per destination rank, shared by that rank's selected experts.
    case perRank
    /// Once per destination node over the inter-node network (to the same-local-index peer),
    /// then once per destination rank inside the node; the two stages are pipelined.
    case perNode

    /// The scheme's name.
    public var description: String { rawValue }
}

extension TimeModel {
    /// The byte matrices of an exchange: `direct` for `.perExpert`/`.perRank`; for `.perNode`
    /// the inter-node stage and the intra-node (forwarding) stage. Rank `r` of the group is
    /// global device `group[r]`; nodes come from the profile's `devicesPerNode`. `balanced`
    /// replaces each entry by the mean over rank pairs of its kind (same node or not, same local
    /// index or not): the expected traffic of a random routing, without its sampling noise.
    public func expertMatrices(_ traffic: ExpertTraffic, scheme: ExpertExchangeScheme, group: [Int], balanced: Bool = false) -> [[[Double]]] {
        let raw = rawMatrices(traffic, scheme: scheme, group: group)
        guard balanced else { return raw }
        let per = max(profile.interconnect.devicesPerNode.value, 1)
        return raw.map { m in
            var sum: [Int: Double] = [:], count: [Int: Double] = [:]
            func kind(_ i: Int, _ j: Int) -> Int {
                (group[i] / per == group[j] / per ? 2 : 0) + (group[i] % per == group[j] % per ? 1 : 0)
            }
            for i in m.indices { for j in m.indices where i != j { sum[kind(i, j), default: 0] += m[i][j]; count[kind(i, j), default: 0] += 1 } }
            return m.indices.map { i in m.indices.map { j in i == j ? 0 : (sum[kind(i, j)] ?? 0) / max(count[kind(i, j)] ?? 1, 1) } }
        }
    }

    func rawMatrices(_ traffic: ExpertTraffic, scheme: ExpertExchangeScheme, group: [Int]) -> [[[Double]]] {
        let p = traffic.ranks, b = traffic.bytesPerMessage * traffic.tokenWeight
        let per = max(profile.interconnect.devicesPerNode.value, 1)
        func zeros() -> [[Double]] { [[Double]](repeating: [Double](repeating: 0, count: p), count: p) }
        switch scheme {
        case .perExpert, .perRank:
            var m = zeros()
            for (i, tokens) in traffic.destinations.enumerated() {
                for dests in tokens {
                    for j in (scheme == .perRank ? Array(Set(dests)) : dests) where j != i { m[i][j] += b }
                }
            }
            return [m]
        case .perNode:
            // Position of each global device in the group, to find the forwarding peer.
            var position: [Int: Int] = [:]
            for (r, d) in group.enumerated() { position[d] = r }
            var inter = zeros(), intra = zeros()
            for (i, tokens) in traffic.destinations.enumerated() {
                let node = group[i] / per, local = group[i] % per
                for dests in tokens {
                    var byNode: [Int: Set<Int>] = [:]
                    for j in dests { byNode[group[j] / per, default: []].insert(j) }
                    for (n, ranks) in byNode {
                        // The entry point into node n: the sender itself, or its same-local-index peer.
                        let entry = n == node ? i : (position[n * per + local] ?? ranks.min() ?? i)
                        if entry != i { inter[i][entry] += b }
                        for j in ranks where j != entry { intra[entry][j] += b }
                    }
                }
            }
            return [inter, intra]
        }
    }

    /// Prices an expert-parallel exchange: `dispatch` sends the traffic as described, `combine`
    /// the same rows back. `.perNode` takes the slower of its two pipelined stages; each stage
    /// is an all-to-all on the contention model with the profile's tuning for the phase.
    public func expertExchange(_ traffic: ExpertTraffic, scheme: ExpertExchangeScheme, group: [Int]? = nil,
                               phase: ExpertPhase = .dispatch, balanced: Bool = false) throws(CollectiveError) -> CollectiveCost {
        let g = group ?? Array(0..<traffic.ranks)
        guard g.count == traffic.ranks else {
            throw .invalidArgument(name: "group", value: "\(g.count) devices", expected: "\(traffic.ranks) (one per rank of the traffic)")
        }
        var stages = expertMatrices(traffic, scheme: scheme, group: g, balanced: balanced)
        if phase == .combine {
            stages = stages.reversed().map { m in m.indices.map { i in m.indices.map { j in m[j][i] } } }
        }
        var best: CollectiveCost? = nil
        for m in stages where m.contains(where: { $0.contains { $0 > 0 } }) {
            let c = try expertAllToAll(bytes: m, group: g, messageBytes: traffic.bytesPerMessage, phase: phase)
            if best == nil || c.total > (best?.total ?? 0) { best = c }
        }
        if let b = best { return b }
        return try allToAll(bytes: [[Double]](repeating: [Double](repeating: 0, count: g.count), count: g.count), group: g)
    }
}
