// CollectiveModel.swift — modeled collective times for a simulated device (the TimeModel's
// collective half; the routing and contention engine is FabricContention.swift).
//
// ## Collectives (alpha-beta with link contention)
//
// An algorithm is a sequence of phases (steps); in a phase a set of transfers (src → dst,
// bytes) run concurrently. Every transfer is routed over the topology onto *resources*
// (directed links, switch ports, NICs), each with an effective bandwidth
// (bandwidth · links · efficiency). Concurrent transfers on one resource divide it:
//
//     load(r)      = Σ bytes of the phase's transfers routed over r
//     time(t)      = latency(path t) + max_{r ∈ path t} load(r) / bw(r)
//     phase time   = max_t time(t)                    (bulk-synchronous: the slowest transfer ends the step)
//     total        = collectiveOverhead + Σ_phases repeats · phase time
//     perDevice[d] = overhead + start of d's last phase + its own slowest transfer in that phase
//
// so the slowest device sets the end time, and a device with less traffic (all-to-all with
// uneven counts) finishes earlier. Resources per topology (B = link bandwidth, L = links per
// device, P = devicesPerNode, e = link efficiency):
//
// - fullMesh: a directed link per ordered pair, bw = ⌊L/(P−1)⌋·B·e, latency = hops·link.latency.
//   A ring step therefore uses one link per device; a direct step uses all of them.
// - ring: a directed link to each neighbour, bw = max(1, ⌊L/2⌋)·B·e; shortest direction,
//   clockwise on ties; latency = hops·link.latency.
// - switch: an egress and an ingress port per device, bw = L·B·e; latency = link.latency.
// - twoLevel: the node topology inside a node; across nodes a transfer uses its device's NIC
//   share (bw = B_nic·max(1, nics/P)·e_nic, each way) and its node's NIC pool
//   (bw = (nics − downed)·B_nic·e_nic, each way, shared by all the node's devices);
//   latency = interNode.latency.
//
// Closed forms this gives on a healthy, uncontended fabric (p devices, n bytes, α = latency,
// β = 1/bw of the resource the algorithm loads):
//
//     allReduce ring             2(p−1)·(α + n/p·β)
//     allReduce direct           2·(α + n/p·β_pair)            full mesh: every pair has its own link
//                                2·(α + (p−1)·n/p·β_port)      switch: the p−1 sends share the port
//     allReduce tree (binomial)  2⌈log2 p⌉·(α + n·β)
//     allReduce halvingDoubling  2·log2 p·α + 2·(p−1)/p·n·β    (p a power of two; others fold the
//                                                              extra devices in first: +2·(α + n·β))
//     reduceScatter / allGather  ring (p−1)·(α + n/p·β); direct α + (p−1)·n/p·β_port (switch)
//                                or α + n/p·β_pair (mesh); halvingDoubling log2 p·α + (p−1)/p·n·β
//     allToAll direct            α + max_r load(r)·β           (uses every link at once)
//     allToAll ring (pairwise)   Σ_{s=1}^{p−1} (α + max_i bytes[i][i+s]·β)
//     hierarchical allReduce     intra reduce-scatter + inter-node ring all-reduce of n/k among the
//                                k "columns" of same-local-rank devices + intra all-gather
//
// A downed link is routed around where the topology allows (full mesh: via another device of
// the node, 2 hops; ring: the other way round) and reported in `CollectiveCost.reroutes`; where
// it does not (a 2-device mesh, a ring cut twice, a dead switch port, a node with no NIC left)
// the collective throws `CollectiveError.unreachable` with the reason.

import Foundation

// MARK: - Collective types

/// The collective operations the model costs.
public enum CollectiveOperation: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Sum of every device's n-byte buffer, result on every device.
    case allReduce
    /// Every device contributes n/p bytes; every device ends with all n bytes.
    case allGather
    /// Every device holds n bytes; device i ends with the i-th n/p-byte slice of the sum.
    case reduceScatter
    /// Device i sends bytes[i][j] to device j (variable counts).
    case allToAll

    /// The operation's name.
    public var description: String { rawValue }
}

/// A failed interconnect element, in global device indices (device d sits in node
/// `d / devicesPerNode` at local position `d % devicesPerNode`).
public enum LinkFault: Hashable, Sendable, CustomStringConvertible {
    /// The direct link(s) between two devices of a node (fullMesh or ring), both directions.
    case link(Int, Int)
    /// A device's port into its node's switch (switch topology): the device is cut off.
    case switchPort(device: Int)
    /// One of a node's inter-node NICs (twoLevel): the node's NIC pool shrinks by one.
    case nic(node: Int, index: Int)

    /// A short description (`link 0↔1`).
    public var description: String {
        switch self {
        case let .link(a, b): return "link \(a)↔\(b)"
        case let .switchPort(d): return "switch port of device \(d)"
        case let .nic(node, index): return "NIC \(index) of node \(node)"
        }
    }

    var normalized: LinkFault {
        if case let .link(a, b) = self, a > b { return .link(b, a) }
        return self
    }
}

/// A reroute the model took around a fault.
public struct Reroute: Sendable, Hashable, CustomStringConvertible {
    /// The fault that forced it.
    public var fault: LinkFault
    /// Source device of the rerouted traffic (nil for a NIC-pool degradation).
    public var from: Int?
    /// Destination device (nil for a NIC-pool degradation).
    public var to: Int?
    /// Devices the traffic passes, from source to destination (empty for a NIC-pool degradation).
    public var path: [Int]
    /// Human-readable account.
    public var description: String
}

/// A collective's modeled cost. All times in seconds.
public struct CollectiveCost: Sendable, Equatable {
    /// The operation.
    public var operation: CollectiveOperation
    /// The algorithm used (the chosen one when the caller asked for the fastest).
    public var algorithm: CollectiveAlgorithm
    /// The participating devices (global indices), in rank order.
    public var group: [Int]
    /// The operation's byte count: the per-device buffer for allReduce/reduceScatter, the full
    /// gathered buffer for allGather, the largest per-device send total for allToAll.
    public var bytes: Double
    /// The static per-collective cost (`interconnect.collectiveOverhead`; 0 for one device).
    public var overhead: Double
    /// Σ over phases of the critical transfer's latency term.
    public var latency: Double
    /// Σ over phases of the critical transfer's bandwidth term (including contention).
    public var transfer: Double
    /// `overhead + latency + transfer` — the time the slowest device finishes.
    public var total: Double
    /// When each device of `group` finishes (same order as `group`), overhead included.
    public var perDevice: [Double]
    /// The device (global index) that finishes last (the first such on ties).
    public var slowestDevice: Int
    /// Number of phases (steps), counting repeats.
    public var phases: Int
    /// Reroutes taken around downed links.
    public var reroutes: [Reroute]
}

/// Why a collective cannot be modeled.
public enum CollectiveError: Error, CustomStringConvertible, Equatable, Sendable {
    /// An argument is out of range (empty or oversized group, duplicate device, negative bytes, …).
    case invalidArgument(name: String, value: String, expected: String)
    /// The profile does not list the algorithm.
    case algorithmUnavailable(algorithm: CollectiveAlgorithm, device: String, available: [CollectiveAlgorithm])
    /// The algorithm does not implement the operation for this group.
    case algorithmNotApplicable(algorithm: CollectiveAlgorithm, operation: CollectiveOperation, reason: String)
    /// A fault names no element of this topology.
    case invalidFault(fault: LinkFault, reason: String)
    /// Two devices cannot reach each other with the given faults.
    case unreachable(from: Int, to: Int, reason: String)

    /// A one-line message.
    public var description: String {
        switch self {
        case let .invalidArgument(name, value, expected):
            return "collective argument \(name) = \(value): expected \(expected)"
        case let .algorithmUnavailable(algorithm, device, available):
            return "\(device) offers no \(algorithm) collective algorithm (available: \(available.map(\.rawValue).joined(separator: ", ")))"
        case let .algorithmNotApplicable(algorithm, operation, reason):
            return "\(algorithm) does not apply to \(operation): \(reason)"
        case let .invalidFault(fault, reason):
            return "fault '\(fault)': \(reason)"
        case let .unreachable(from, to, reason):
            return "device \(from) cannot reach device \(to): \(reason)"
        }
    }
}

extension TimeModel {
    // MARK: Collectives — public entry points

    /// The profile's deterministic `faults.linkDown.link`, as a `LinkFault` (a `switchPort`
    /// fault of the first device on a switch topology); empty when none is configured.
    public var configuredLinkFaults: [LinkFault] {
        guard let l = profile.faults?.linkDown?.link, l.count == 2 else { return [] }
        if profile.interconnect.intraNodeTopology == .switch { return [.switchPort(device: l[0])] }
        return [.link(l[0], l[1])]
    }

    /// All-reduce of an n-byte buffer over devices `0..<devices`.
    /// - Parameters:
    ///   - algorithm: one of the profile's `collectiveAlgorithms`; `nil` picks the fastest
    ///     applicable one (ties: the profile's order).
    ///   - faults: downed links, ports or NICs.
    public func allReduce(bytes: Double, devices: Int, algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        try collective(.allReduce, bytes: bytes, group: try Self.range(devices), algorithm: algorithm, faults: faults)
    }

    /// All-gather whose gathered output is `bytes` (each device contributes bytes/p) over `0..<devices`.
    public func allGather(bytes: Double, devices: Int, algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        try collective(.allGather, bytes: bytes, group: try Self.range(devices), algorithm: algorithm, faults: faults)
    }

    /// Reduce-scatter of an n-byte buffer (each device keeps n/p) over `0..<devices`.
    public func reduceScatter(bytes: Double, devices: Int, algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        try collective(.reduceScatter, bytes: bytes, group: try Self.range(devices), algorithm: algorithm, faults: faults)
    }

    /// All-to-all with uniform `bytesPerPair` from every device to every other, over `0..<devices`.
    public func allToAll(bytesPerPair: Double, devices: Int, algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        let g = try Self.range(devices)
        let m = (0..<g.count).map { i in (0..<g.count).map { j in i == j ? 0 : bytesPerPair } }
        return try allToAll(bytes: m, group: g, algorithm: algorithm, faults: faults)
    }

    /// All-to-all with variable counts: `bytes[i][j]` from rank i to rank j (the diagonal is a
    /// local copy and costs nothing). `group` maps ranks to global device indices
    /// (default `0..<bytes.count`).
    public func allToAll(bytes: [[Double]], group: [Int]? = nil, algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        let g: [Int]
        if let explicit = group { g = explicit } else { g = try Self.range(bytes.count) }
        guard bytes.count == g.count, bytes.allSatisfy({ $0.count == g.count }) else {
            throw .invalidArgument(name: "bytes", value: "\(bytes.count)×\(bytes.first?.count ?? 0) matrix",
                                   expected: "a \(g.count)×\(g.count) matrix (one row and column per device)")
        }
        for (i, row) in bytes.enumerated() {
            for (j, b) in row.enumerated() where !(b.isFinite && b >= 0) {
                throw .invalidArgument(name: "bytes[\(i)][\(j)]", value: "\(b)", expected: "a finite byte count ≥ 0")
            }
        }
        return try run(.allToAll, bytes: 0, matrix: bytes, group: g, algorithm: algorithm, faults: faults)
    }

    /// All-reduce, all-gather or reduce-scatter over an explicit group of global device
    /// indices (e.g. a tensor-parallel group `[0, 1, 2, 3]` or a data-parallel group across
    /// nodes `[0, 8, 16, 24]`). For allToAll use `allToAll(bytes:group:…)`.
    public func collective(_ op: CollectiveOperation, bytes: Double, group: [Int], algorithm: CollectiveAlgorithm? = nil, faults: [LinkFault] = []) throws(CollectiveError) -> CollectiveCost {
        guard op != .allToAll else {
            throw .invalidArgument(name: "operation", value: "allToAll", expected: "allReduce, allGather or reduceScatter (use allToAll(bytes:group:) for a byte matrix)")
        }
        guard bytes.isFinite, bytes >= 0 else {
            throw .invalidArgument(name: "bytes", value: "\(bytes)", expected: "a finite byte count ≥ 0")
        }
        return try run(op, bytes: bytes, matrix: nil, group: group, algorithm: algorithm, faults: faults)
    }

    private static func range(_ devices: Int) throws(CollectiveError) -> [Int] {
        guard devices >= 1, devices <= maxCollectiveDevices else {
            throw .invalidArgument(name: "devices", value: "\(devices)", expected: "1…\(maxCollectiveDevices)")
        }
        return Array(0..<devices)
    }

    // MARK: Collectives — algorithm selection

    private func run(_ op: CollectiveOperation, bytes: Double, matrix: [[Double]]?, group: [Int],
                     algorithm: CollectiveAlgorithm?, faults: [LinkFault]) throws(CollectiveError) -> CollectiveCost {
        try validateGroup(group)
        let available = profile.interconnect.collectiveAlgorithms.value
        var engine = try CollectiveEngine(profile: profile, group: group, faults: faults)
        let opBytes: Double
        if let m = matrix {
            opBytes = m.map { row in row.reduce(0, +) }.enumerated().map { i, s in s - m[i][i] }.max() ?? 0
        } else {
            opBytes = bytes
        }
        if let a = algorithm {
            guard available.contains(a) else {
                throw .algorithmUnavailable(algorithm: a, device: profile.name, available: available)
            }
            return try engine.cost(op, algorithm: a, bytes: opBytes, matrix: matrix)
        }
        var best: CollectiveCost? = nil
        var firstError: CollectiveError? = nil
        for a in available {
            do {
                let c = try engine.cost(op, algorithm: a, bytes: opBytes, matrix: matrix)
                if best == nil || c.total < (best?.total ?? .infinity) { best = c }
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let b = best { return b }
        throw firstError ?? .algorithmNotApplicable(algorithm: available.first ?? .ring, operation: op, reason: "no available algorithm applies")
    }

    private func validateGroup(_ group: [Int]) throws(CollectiveError) {
        guard !group.isEmpty, group.count <= Self.maxCollectiveDevices else {
            throw .invalidArgument(name: "group", value: "\(group.count) devices", expected: "1…\(Self.maxCollectiveDevices) devices")
        }
        var seen = Set<Int>()
        let ic = profile.interconnect
        for d in group {
            guard d >= 0, d <= Self.maxDeviceIndex else {
                throw .invalidArgument(name: "group", value: "\(d)", expected: "device indices in 0…\(Self.maxDeviceIndex)")
            }
            guard seen.insert(d).inserted else { throw .invalidArgument(name: "group", value: "\(d) twice", expected: "distinct devices") }
            if ic.topology.value != .twoLevel && d >= ic.devicesPerNode.value {
                throw .invalidArgument(name: "group", value: "device \(d)",
                                       expected: "an index < devicesPerNode = \(ic.devicesPerNode.value) (topology \(ic.topology.value) has a single node; use twoLevel for more)")
            }
        }
    }
}
