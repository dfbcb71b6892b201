// FabricContention.swift — the collective model's engine: routes each transfer of a phase
// over the topology onto resources (links, switch ports, NICs), divides shared resources among
// concurrent transfers, reroutes around faults, and builds each algorithm's phases
// (CollectiveModel.swift has the formulas).

import Foundation

// MARK: - The contention engine

/// One transfer of a phase, between *positions* in the group (rank indices).
struct CollectiveTransfer {
    let src: Int
    let dst: Int
    let bytes: Double
}

struct CollectivePhase {
    var transfers: [CollectiveTransfer]
    var repeats: Int
}

enum FabricResourceKey: Hashable {
    case meshLink(Int, Int)
    case ringLink(Int, clockwise: Bool)
    case portOut(Int)
    case portIn(Int)
    case nicOut(Int)
    case nicIn(Int)
    case nodeOut(Int)
    case nodeIn(Int)
}

struct FabricRoute {
    let resources: [Int]
    let latency: Double
}

struct CollectiveEngine {
    let profile: DeviceProfile
    let ic: DeviceProfile.Interconnect
    let dpn: Int
    let intra: InterconnectTopology
    let twoLevel: Bool
    let downLinks: Set<LinkFault>
    let downPorts: Set<Int>
    let downNICs: [Int: [Int]]
    var resourceIndex: [FabricResourceKey: Int] = [:]
    var bandwidth: [Double] = []
    /// Routes by rank pair (`src · maxCollectiveDevices + dst`), for the engine's group.
    var routes: [Int: FabricRoute] = [:]
    let group: [Int]
    var reroutes: [Reroute] = []
    var reroutedPairs = Set<[Int]>()
    var degradedNodes = Set<Int>()

    init(profile: DeviceProfile, group: [Int], faults: [LinkFault]) throws(CollectiveError) {
        self.profile = profile
        self.group = group
        ic = profile.interconnect
        dpn = Swift.max(1, ic.devicesPerNode.value)
        intra = ic.intraNodeTopology
        twoLevel = ic.topology.value == .twoLevel
        var links = Set<LinkFault>(), ports = Set<Int>(), nics: [Int: [Int]] = [:]
        for f in faults {
            switch f.normalized {
            case let .link(a, b):
                guard a >= 0, b >= 0, a != b, b <= TimeModel.maxDeviceIndex else {
                    throw .invalidFault(fault: f, reason: "needs two distinct device indices in 0…\(TimeModel.maxDeviceIndex)")
                }
                guard intra == .fullMesh || intra == .ring else {
                    throw .invalidFault(fault: f, reason: "a \(intra) node has no device-to-device links (use switchPort for a switch)")
                }
                guard a / dpn == b / dpn else { throw .invalidFault(fault: f, reason: "devices \(a) and \(b) are in different nodes") }
                if !twoLevel && b >= dpn { throw .invalidFault(fault: f, reason: "device \(b) ≥ devicesPerNode = \(dpn)") }
                if intra == .ring {
                    let la = a % dpn, lb = b % dpn
                    guard (la + 1) % dpn == lb || (lb + 1) % dpn == la else {
                        throw .invalidFault(fault: f, reason: "devices \(a) and \(b) are not ring neighbours")
                    }
                }
                links.insert(.link(a, b))
            case let .switchPort(d):
                guard intra == .switch else { throw .invalidFault(fault: f, reason: "a \(intra) node has no switch ports") }
                guard d >= 0, d <= TimeModel.maxDeviceIndex else {
                    throw .invalidFault(fault: f, reason: "needs a device index in 0…\(TimeModel.maxDeviceIndex)")
                }
                ports.insert(d)
            case let .nic(node, index):
                guard twoLevel, let n = ic.interNode else { throw .invalidFault(fault: f, reason: "only a twoLevel topology has inter-node NICs") }
                guard node >= 0, index >= 0, index < n.nicsPerNode.value else {
                    throw .invalidFault(fault: f, reason: "needs node ≥ 0 and 0 ≤ index < nicsPerNode = \(n.nicsPerNode.value)")
                }
                if !(nics[node]?.contains(index) ?? false) { nics[node, default: []].append(index) }
            }
        }
        downLinks = links
        downPorts = ports
        downNICs = nics
    }

    // MARK: Resources and routing

    private mutating func resource(_ key: FabricResourceKey) -> Int {
        if let i = resourceIndex[key] { return i }
        let link = ic.link.bandwidth.value * ic.link.efficiency.value
        let links = Double(Swift.max(1, ic.linksPerDevice.value))
        let bw: Double
        switch key {
        case .meshLink:
            bw = Double(Swift.max(1, ic.linksPerDevice.value / Swift.max(1, dpn - 1))) * link
        case .ringLink:
            bw = Double(Swift.max(1, ic.linksPerDevice.value / 2)) * link
        case .portOut, .portIn:
            bw = links * link
        case .nicOut, .nicIn:
            let n = ic.interNode
            let nic = (n?.bandwidth.value ?? 0) * (n?.efficiency.value ?? 0)
            bw = nic * Swift.max(1, Double(n?.nicsPerNode.value ?? 1) / Double(dpn))
        case .nodeOut(let node), .nodeIn(let node):
            let n = ic.interNode
            let nic = (n?.bandwidth.value ?? 0) * (n?.efficiency.value ?? 0)
            let up = (n?.nicsPerNode.value ?? 0) - (downNICs[node]?.count ?? 0)
            bw = Double(Swift.max(0, up)) * nic
        }
        let i = bandwidth.count
        bandwidth.append(bw)
        resourceIndex[key] = i
        return i
    }

    private func linkDown(_ a: Int, _ b: Int) -> Bool {
        downLinks.contains(a < b ? .link(a, b) : .link(b, a))
    }

    /// Neighbours of x inside its node over working links, in deterministic order.
    private func neighbours(_ x: Int) -> [Int] {
        let base = (x / dpn) * dpn
        switch intra {
        case .ring:
            let l = x - base
            let cw = base + (l + 1) % dpn, ccw = base + (l - 1 + dpn) % dpn
            var out: [Int] = []
            if cw != x && !linkDown(x, cw) { out.append(cw) }
            if ccw != x && ccw != cw && !linkDown(x, ccw) { out.append(ccw) }
            return out
        default:
            return (base..<(base + dpn)).filter { $0 != x && !linkDown(x, $0) }
        }
    }

    /// The healthy intra-node path (device list) from a to b.
    private func healthyPath(_ a: Int, _ b: Int) -> [Int] {
        switch intra {
        case .ring:
            let base = (a / dpn) * dpn
            let la = a - base, lb = b - base
            let cwDist = (lb - la + dpn) % dpn
            let ccwDist = dpn - cwDist
            var path = [a]
            if cwDist <= ccwDist {
                for s in 1...cwDist { path.append(base + (la + s) % dpn) }
            } else {
                for s in 1...ccwDist { path.append(base + (la - s + dpn * 2) % dpn) }
            }
            return path
        default:
            return [a, b]
        }
    }

    private func bfsPath(_ a: Int, _ b: Int) -> [Int]? {
        var previous: [Int: Int] = [a: a]
        var queue = [a]
        var head = 0
        while head < queue.count {
            let x = queue[head]
            head += 1
            if x == b { break }
            for y in neighbours(x) where previous[y] == nil {
                previous[y] = x
                if y == b { break }
                queue.append(y)
            }
            if previous[b] != nil { break }
        }
        guard previous[b] != nil else { return nil }
        var path = [b]
        var cur = b
        while cur != a, let p = previous[cur] {
            path.append(p)
            cur = p
        }
        return path.reversed()
    }

    private mutating func hopResources(_ path: [Int]) -> [Int] {
        var out: [Int] = []
        for i in 0..<(path.count - 1) {
            let x = path[i], y = path[i + 1]
            switch intra {
            case .ring:
                let base = (x / dpn) * dpn
                let cw = base + (x - base + 1) % dpn
                out.append(resource(.ringLink(x, clockwise: y == cw)))
            default:
                out.append(resource(.meshLink(x, y)))
            }
        }
        return out
    }

    /// The route between ranks `src` and `dst` of the group.
    mutating func route(_ src: Int, _ dst: Int) throws(CollectiveError) -> FabricRoute {
        let key = src &* TimeModel.maxCollectiveDevices &+ dst
        if let r = routes[key] { return r }
        let r = try computeRoute(group[src], group[dst])
        routes[key] = r
        return r
    }

    private mutating func computeRoute(_ a: Int, _ b: Int) throws(CollectiveError) -> FabricRoute {
        let na = a / dpn, nb = b / dpn
        if na != nb {
            guard twoLevel, let inter = ic.interNode else {
                throw .unreachable(from: a, to: b, reason: "devices in different nodes and topology \(ic.topology.value) has no inter-node network")
            }
            for node in [na, nb] {
                let down = downNICs[node] ?? []
                if down.count >= inter.nicsPerNode.value {
                    throw .unreachable(from: a, to: b, reason: "all \(inter.nicsPerNode.value) NICs of node \(node) are down")
                }
                if !down.isEmpty && degradedNodes.insert(node).inserted {
                    let up = inter.nicsPerNode.value - down.count
                    reroutes.append(Reroute(fault: .nic(node: node, index: down.sorted()[0]), from: nil, to: nil, path: [],
                                            description: "node \(node): \(down.count) of \(inter.nicsPerNode.value) NICs down; inter-node traffic shares the remaining \(up)"))
                }
            }
            let res = [resource(.nicOut(a)), resource(.nodeOut(na)), resource(.nodeIn(nb)), resource(.nicIn(b))]
            return FabricRoute(resources: res, latency: inter.latency.value)
        }
        switch intra {
        case .switch:
            for d in [a, b] where downPorts.contains(d) {
                throw .unreachable(from: a, to: b, reason: "the switch port of device \(d) is down and a single switch offers no other path")
            }
            return FabricRoute(resources: [resource(.portOut(a)), resource(.portIn(b))], latency: ic.link.latency.value)
        case .fullMesh, .ring, .twoLevel:
            let healthy = healthyPath(a, b)
            var brokenHop: LinkFault? = nil
            for i in 0..<(healthy.count - 1) where linkDown(healthy[i], healthy[i + 1]) {
                brokenHop = .link(Swift.min(healthy[i], healthy[i + 1]), Swift.max(healthy[i], healthy[i + 1]))
                break
            }
            var path = healthy
            if let fault = brokenHop {
                guard let p = bfsPath(a, b) else {
                    let why = intra == .ring ? "the ring is cut in two places" : "no other device of the node has working links to both"
                    throw .unreachable(from: a, to: b, reason: "\(fault) is down and \(why)")
                }
                path = p
                if reroutedPairs.insert([a, b]).inserted {
                    let via = path.dropFirst().dropLast().map(String.init).joined(separator: ", ")
                    reroutes.append(Reroute(fault: fault, from: a, to: b, path: path,
                                            description: "\(fault) down: \(a)→\(b) rerouted via \(via.isEmpty ? "—" : via) (\(path.count - 1) hops)"))
                }
            }
            return FabricRoute(resources: hopResources(path), latency: Double(path.count - 1) * ic.link.latency.value)
        }
    }

    // MARK: Phase evaluation

    private struct Outcome {
        var total = 0.0
        var latency = 0.0
        var transfer = 0.0
        var phases = 0
        var finish: [Double]
    }

    private mutating func evaluate(_ phases: [CollectivePhase]) throws(CollectiveError) -> Outcome {
        var out = Outcome(finish: [Double](repeating: 0, count: group.count))
        for ph in phases where ph.repeats > 0 {
            var routed: [(CollectiveTransfer, FabricRoute)] = []
            routed.reserveCapacity(ph.transfers.count)
            for t in ph.transfers where t.bytes > 0 && t.src != t.dst {
                routed.append((t, try route(t.src, t.dst)))
            }
            if routed.isEmpty { continue }
            var load = [Double](repeating: 0, count: bandwidth.count)
            for (t, r) in routed { for x in r.resources { load[x] += t.bytes } }
            var duration = 0.0, critLatency = 0.0, critTransfer = 0.0
            var own = [Double](repeating: -1, count: group.count)
            for (t, r) in routed {
                var bottleneck = 0.0
                for x in r.resources {
                    let bw = bandwidth[x]
                    let time = bw > 0 ? load[x] / bw : Double.infinity
                    if time > bottleneck { bottleneck = time }
                }
                let time = r.latency + bottleneck
                if time > duration {
                    duration = time
                    critLatency = r.latency
                    critTransfer = bottleneck
                }
                if time > own[t.src] { own[t.src] = time }
                if time > own[t.dst] { own[t.dst] = time }
            }
            let start = out.total
            let reps = Double(ph.repeats)
            for p in 0..<group.count where own[p] >= 0 {
                out.finish[p] = start + (reps - 1) * duration + own[p]
            }
            out.total += reps * duration
            out.latency += reps * critLatency
            out.transfer += reps * critTransfer
            out.phases += ph.repeats
        }
        return out
    }

    // MARK: Algorithms

    mutating func cost(_ op: CollectiveOperation, algorithm: CollectiveAlgorithm, bytes: Double, matrix: [[Double]]?) throws(CollectiveError) -> CollectiveCost {
        let phases = try build(op, algorithm: algorithm, bytes: bytes, matrix: matrix)
        let o = try evaluate(phases)
        let overhead = group.count > 1 ? ic.collectiveOverhead.value : 0
        let perDevice = o.finish.map { group.count > 1 ? $0 + overhead : 0 }
        var slowest = 0
        for (i, t) in perDevice.enumerated() where t > perDevice[slowest] { slowest = i }
        return CollectiveCost(operation: op, algorithm: algorithm, group: group, bytes: bytes, overhead: overhead,
                              latency: o.latency, transfer: o.transfer, total: overhead + o.total,
                              perDevice: perDevice, slowestDevice: group[slowest], phases: o.phases,
                              reroutes: reroutes)
    }

    /// The algorithm's phases, in ranks (positions in `group`).
    private func build(_ op: CollectiveOperation, algorithm: CollectiveAlgorithm, bytes n: Double, matrix: [[Double]]?) throws(CollectiveError) -> [CollectivePhase] {
        let q = group.count
        let g = Array(0..<q)
        if q <= 1 { return [] }
        func notApplicable(_ reason: String) -> CollectiveError {
            .algorithmNotApplicable(algorithm: algorithm, operation: op, reason: reason)
        }
        switch (op, algorithm) {
        case (.allToAll, .direct):
            let m = matrix ?? []
            var ts: [CollectiveTransfer] = []
            for i in 0..<q { for j in 0..<q where i != j { ts.append(CollectiveTransfer(src: g[i], dst: g[j], bytes: m[i][j])) } }
            return [CollectivePhase(transfers: ts, repeats: 1)]
        case (.allToAll, .ring):
            let m = matrix ?? []
            return (1..<q).map { s in
                CollectivePhase(transfers: (0..<q).map { i in CollectiveTransfer(src: g[i], dst: g[(i + s) % q], bytes: m[i][(i + s) % q]) }, repeats: 1)
            }
        case (.allToAll, _):
            throw notApplicable("all-to-all is modeled with direct or ring (pairwise exchange)")

        case (.allReduce, .ring):
            return [CollectivePhase(transfers: Self.ringStep([g], n / Double(q)), repeats: 2 * (q - 1))]
        case (.reduceScatter, .ring), (.allGather, .ring):
            return [CollectivePhase(transfers: Self.ringStep([g], n / Double(q)), repeats: q - 1)]

        case (.allReduce, .direct):
            let step = Self.directStep([g], n / Double(q))
            return [CollectivePhase(transfers: step, repeats: 1), CollectivePhase(transfers: step, repeats: 1)]
        case (.reduceScatter, .direct), (.allGather, .direct):
            return [CollectivePhase(transfers: Self.directStep([g], n / Double(q)), repeats: 1)]

        case (.allReduce, .tree):
            return Self.binomialTree(g, n)
        case (_, .tree):
            throw notApplicable("the tree algorithm is modeled for all-reduce only")

        case (.allReduce, .halvingDoubling):
            return Self.halvingDoubling(g, n, reduceScatter: true, allGather: true)
        case (.reduceScatter, .halvingDoubling), (.allGather, .halvingDoubling):
            guard q & (q - 1) == 0 else { throw notApplicable("recursive halving/doubling needs a power-of-two group, got \(q)") }
            return Self.halvingDoubling(g, n, reduceScatter: op == .reduceScatter, allGather: op == .allGather)

        case (_, .hierarchical):
            guard twoLevel else { throw notApplicable("hierarchical needs a twoLevel topology") }
            var nodes: [[Int]] = []
            var nodeOf: [Int: Int] = [:]
            for (rank, d) in group.enumerated() {
                let node = d / dpn
                if let i = nodeOf[node] { nodes[i].append(rank) } else { nodeOf[node] = nodes.count; nodes.append([rank]) }
            }
            let k = nodes[0].count
            guard nodes.allSatisfy({ $0.count == k }) else {
                throw notApplicable("hierarchical needs the same number of devices in every node, got \(nodes.map(\.count))")
            }
            let columns = (0..<k).map { j in nodes.map { $0[j] } }
            let nodeCount = Double(nodes.count)
            let intraStep: (Double) -> CollectivePhase = { total in
                self.intra == .ring
                    ? CollectivePhase(transfers: Self.ringStep(nodes, total / Double(k)), repeats: k - 1)
                    : CollectivePhase(transfers: Self.directStep(nodes, total / Double(k)), repeats: 1)
            }
            let perColumn = n / Double(k)
            switch op {
            case .allReduce:
                return [intraStep(n),
                        CollectivePhase(transfers: Self.ringStep(columns, perColumn / nodeCount), repeats: 2 * (nodes.count - 1)),
                        intraStep(n)]
            case .reduceScatter:
                return [intraStep(n),
                        CollectivePhase(transfers: Self.ringStep(columns, perColumn / nodeCount), repeats: nodes.count - 1)]
            case .allGather:
                return [CollectivePhase(transfers: Self.ringStep(columns, perColumn / nodeCount), repeats: nodes.count - 1),
                        intraStep(n)]
            case .allToAll:
                throw notApplicable("all-to-all is modeled with direct or ring (pairwise exchange)")
            }
        }
    }

    /// Every member of every group sends `bytes` to its ring successor.
    private static func ringStep(_ groups: [[Int]], _ bytes: Double) -> [CollectiveTransfer] {
        var ts: [CollectiveTransfer] = []
        for grp in groups where grp.count > 1 {
            for i in 0..<grp.count { ts.append(CollectiveTransfer(src: grp[i], dst: grp[(i + 1) % grp.count], bytes: bytes)) }
        }
        return ts
    }

    /// Every member of every group sends `bytes` to every other member at once.
    private static func directStep(_ groups: [[Int]], _ bytes: Double) -> [CollectiveTransfer] {
        var ts: [CollectiveTransfer] = []
        for grp in groups where grp.count > 1 {
            for i in 0..<grp.count { for j in 0..<grp.count where i != j { ts.append(CollectiveTransfer(src: grp[i], dst: grp[j], bytes: bytes)) } }
        }
        return ts
    }

    /// Binomial-tree reduce to rank 0 then broadcast: 2⌈log2 q⌉ phases of n bytes.
    private static func binomialTree(_ g: [Int], _ n: Double) -> [CollectivePhase] {
        let q = g.count
        var rounds = 0
        while (1 << rounds) < q { rounds += 1 }
        var phases: [CollectivePhase] = []
        for r in 0..<rounds {
            let s = 1 << r
            let ts = stride(from: s, to: q, by: 2 * s).map { i in CollectiveTransfer(src: g[i], dst: g[i - s], bytes: n) }
            phases.append(CollectivePhase(transfers: ts, repeats: 1))
        }
        for r in (0..<rounds).reversed() {
            let s = 1 << r
            let ts = stride(from: 0, to: q, by: 2 * s).filter { $0 + s < q }.map { i in CollectiveTransfer(src: g[i], dst: g[i + s], bytes: n) }
            phases.append(CollectivePhase(transfers: ts, repeats: 1))
        }
        return phases
    }

    /// Rabenseifner: recursive-halving reduce-scatter and/or recursive-doubling all-gather among
    /// the largest power-of-two prefix q'; the q − q' extra ranks first send their n bytes to
    /// ranks 0… (fold) and get the result back at the end.
    private static func halvingDoubling(_ g: [Int], _ n: Double, reduceScatter: Bool, allGather: Bool) -> [CollectivePhase] {
        let q = g.count
        var qp = 1
        while qp * 2 <= q { qp *= 2 }
        let extra = q - qp
        var levels = 0
        while (1 << levels) < qp { levels += 1 }
        var phases: [CollectivePhase] = []
        if extra > 0 {
            phases.append(CollectivePhase(transfers: (0..<extra).map { j in CollectiveTransfer(src: g[qp + j], dst: g[j], bytes: n) }, repeats: 1))
        }
        if reduceScatter {
            for r in 0..<levels {
                let step = qp >> (r + 1)
                let chunk = n / Double(1 << (r + 1))
                phases.append(CollectivePhase(transfers: (0..<qp).map { i in CollectiveTransfer(src: g[i], dst: g[i ^ step], bytes: chunk) }, repeats: 1))
            }
        }
        if allGather {
            for r in (0..<levels).reversed() {
                let step = qp >> (r + 1)
                let chunk = n / Double(1 << (r + 1))
                phases.append(CollectivePhase(transfers: (0..<qp).map { i in CollectiveTransfer(src: g[i], dst: g[i ^ step], bytes: chunk) }, repeats: 1))
            }
        }
        if extra > 0 {
            phases.append(CollectivePhase(transfers: (0..<extra).map { j in CollectiveTransfer(src: g[j], dst: g[qp + j], bytes: n) }, repeats: 1))
        }
        return phases
    }
}
