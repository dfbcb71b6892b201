// TimeModel.swift — modeled kernel and collective times for a simulated device.
//
// Pure and deterministic: the same profile and the same query always give the same time.
// Nothing here touches a clock, a random generator or shared state.
//
// ## Kernels
//
//     total   = launch + max(compute, memory)
//     launch  = unit.launchOverhead                          (msmodeling static per-op cost)
//     compute = W / (R · e_c(W) · k_c),  W = flops · padding  (0 when flops = 0)
//             = (W + h_c) / (R · max_c · k_c)                 (same thing, since e_c is a saturation curve)
//     memory  = B' / (BW · e_m(B) · k_m),  B = bytes          (0 when bytes = 0)
//             = (B' + h_m·B'/B) / (BW · max_m · k_m)
//     B'      = B                                             (no memory.readBandwidth, or writeBytes unknown)
//             = (B − W_b)·BW/BW_r + W_b·(2 − BW/BW_r)         (read bytes at BW_r; a written byte
//                                                              costs what a copy leaves after its read)
//     k_c,k_m = kernelEfficiency[class].compute / .memory    (1 when absent; class = the query's kernelClass)
//     e(w)    = max · w / (w + h)                             (h = halfSaturation; h = 0 → constant max)
//     padding = Σ batch·⌈m/tm⌉tm·⌈n/tn⌉tn·⌈k/tk⌉tk / Σ batch·m·n·k      (GEMM / grouped GEMM)
//             = rows·⌈len/tn⌉tn / (rows·len)                  (row-wise vector kernels; rows padded to tm)
//     R       = the unit's peak rate for the dtype, or for the dtype the profile's
//               missingDtypePolicy upcasts it to (the tile is the effective dtype's tile)
//     bound   = launch if launch ≥ max(compute, memory), else compute if compute ≥ memory, else memory
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

// MARK: - Kernel query and result

/// A GEMM's dimensions: `batch` independent products of `[m, k] · [k, n]`.
public struct GemmShape: Sendable, Hashable, Codable {
    /// Rows of A and C.
    public var m: Int
    /// Columns of B and C.
    public var n: Int
    /// Reduction dimension.
    public var k: Int
    /// Number of independent products of this shape.
    public var batch: Int

    /// Creates a GEMM shape.
    public init(m: Int, n: Int, k: Int, batch: Int = 1) {
        self.m = m
        self.n = n
        self.k = k
        self.batch = batch
    }
}

/// The shape information the model uses for tile padding.
public enum KernelShape: Sendable, Hashable {
    /// One (batched) GEMM; m, n, k are padded to the unit's tile.
    case gemm(GemmShape)
    /// A grouped GEMM (one product per expert segment); every segment is padded separately.
    case groupedGemm([GemmShape])
    /// A row-wise vector kernel over `count` rows of `length` elements; `length` is padded to the
    /// tile's `n` (vector width) and `count` to its `m`.
    case rows(count: Int, length: Int)
}

/// A kernel for the time model: which unit runs it, in which dtype, and its cost
/// (FLOPs and minimum bytes moved, from the kernel catalog's cost model).
public struct KernelCostQuery: Sendable, Hashable {
    /// Kernel name, for error messages and records.
    public var name: String
    /// The unit that executes the kernel (matrix for GEMM-like, vector for the rest).
    public var unit: ComputeUnitKind
    /// The dtype the kernel computes in (emulated per the profile if the unit lacks it).
    public var dtype: ProfileDType
    /// Floating-point (or integer) operations, unpadded; ≥ 0.
    public var flops: Double
    /// Minimum bytes moved to and from device memory; ≥ 0.
    public var bytes: Double
    /// Shape for tile padding; `nil` means no padding.
    public var shape: KernelShape?
    /// The kernel's class, whose `kernelEfficiency` entry (if the profile has one) scales the
    /// compute and memory times; `nil` means efficiency 1.
    public var kernelClass: KernelClass?
    /// Of `bytes`, those written (the outputs); the rest are read. Used only with a profile's
    /// `memory.readBandwidth`; `nil` prices every byte at `memory.bandwidth`.
    public var writeBytes: Double?

    /// Creates a query.
    public init(name: String = "kernel", unit: ComputeUnitKind, dtype: ProfileDType, flops: Double, bytes: Double, shape: KernelShape? = nil,
                kernelClass: KernelClass? = nil, writeBytes: Double? = nil) {
        self.name = name
        self.unit = unit
        self.dtype = dtype
        self.flops = flops
        self.bytes = bytes
        self.shape = shape
        self.kernelClass = kernelClass
        self.writeBytes = writeBytes
    }

    /// A GEMM `[m,k]·[k,n]` (× batch) on the matrix unit: flops = 2·batch·m·n·k,
    /// bytes = batch·(m·k + k·n + m·n)·elementBytes unless `bytes` is given.
    public static func gemm(m: Int, n: Int, k: Int, batch: Int = 1, dtype: ProfileDType, bytes: Double? = nil, name: String = "matmul") -> KernelCostQuery {
        let b = Double(batch), dm = Double(m), dn = Double(n), dk = Double(k)
        let flops = 2 * b * dm * dn * dk
        let bytesMoved = bytes ?? b * (dm * dk + dk * dn + dm * dn) * Double(dtype.bitWidth) / 8
        return KernelCostQuery(name: name, unit: .matrix, dtype: dtype, flops: flops, bytes: bytesMoved,
                               shape: .gemm(GemmShape(m: m, n: n, k: k, batch: batch)))
    }
}

/// A kernel's modeled time and its breakdown. All times in seconds.
public struct ModeledTime: Sendable, Hashable {
    /// What dominates the kernel's time.
    public enum Bound: String, Sendable, Hashable, Codable, CaseIterable {
        /// max(compute, memory) is compute and exceeds the launch overhead.
        case compute
        /// max(compute, memory) is memory and exceeds the launch overhead.
        case memory
        /// The launch overhead is at least max(compute, memory).
        case launch
    }

    /// Launch overhead of the unit.
    public var launch: Double
    /// Compute time (padded FLOPs at rate × efficiency).
    public var compute: Double
    /// Memory time (bytes at bandwidth × efficiency).
    public var memory: Double
    /// `launch + max(compute, memory)`.
    public var total: Double
    /// The dominant term.
    public var bound: Bound
    /// The unit that ran the kernel.
    public var unit: ComputeUnitKind
    /// The dtype asked for.
    public var requestedDtype: ProfileDType
    /// The dtype the unit computed in (differs when emulated).
    public var effectiveDtype: ProfileDType
    /// FLOPs after tile padding.
    public var paddedFlops: Double
    /// paddedFlops / flops (1 without a shape).
    public var paddingFactor: Double
    /// Peak rate used, op/s (0 when flops = 0).
    public var rate: Double
    /// Compute efficiency e_c(paddedFlops) used (0 when flops = 0).
    public var computeEfficiency: Double
    /// Memory efficiency e_m(bytes) used (0 when bytes = 0).
    public var memoryEfficiency: Double

    /// Whether the dtype was emulated through an upcast.
    public var emulated: Bool { effectiveDtype != requestedDtype }
}

/// Why a kernel cannot be modeled.
public enum TimeModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A query field is out of range (negative, NaN, infinite, a negative dimension).
    case invalidQuery(kernel: String, field: String, value: String, expected: String)
    /// The unit lacks the dtype and the profile's policy rejects it.
    case unsupportedDtype(device: String, unit: ComputeUnitKind, dtype: ProfileDType, reason: String)

    /// A one-line message.
    public var description: String {
        switch self {
        case let .invalidQuery(kernel, field, value, expected):
            return "\(kernel): \(field) = \(value): expected \(expected)"
        case let .unsupportedDtype(device, unit, dtype, reason):
            return "\(device): \(dtype) unsupported on the \(unit) unit: \(reason)"
        }
    }
}

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

// MARK: - The model

/// Modeled times for kernels and collectives on one device profile. A value type holding
/// only the profile: pure, deterministic and `Sendable`.
public struct TimeModel: Sendable {
    /// The profile the model reads.
    public let profile: DeviceProfile

    /// The largest collective group the model accepts (direct algorithms are O(p²) transfers).
    public static let maxCollectiveDevices = 4096

    /// The largest global device index the model accepts (2^40).
    public static let maxDeviceIndex = 1 << 40

    /// Creates a model for `profile` (assumed validated, as every loader does).
    public init(profile: DeviceProfile) { self.profile = profile }

    // MARK: Kernels

    /// `max · w / (w + halfSaturation)` of the unit's compute curve (see `EfficiencyCurve`).
    public func computeEfficiency(unit: ComputeUnitKind, flops: Double) -> Double {
        profile.compute.unit(unit).efficiency.efficiency(work: flops)
    }

    /// `max · b / (b + halfSaturation)` of the memory curve.
    public func memoryEfficiency(bytes: Double) -> Double {
        profile.memory.efficiency.efficiency(work: bytes)
    }

    /// Padded work / actual work for `shape` on `tile` (1 when `shape` is nil or its volume is 0).
    ///
    /// GEMM: `Σ batch·⌈m/tm⌉tm·⌈n/tn⌉tn·⌈k/tk⌉tk / Σ batch·m·n·k`;
    /// rows: `⌈count/tm⌉tm·⌈length/tn⌉tn / (count·length)`.
    public static func paddingFactor(_ shape: KernelShape?, tile: DeviceProfile.Tile) -> Double {
        func pad(_ x: Int, _ t: Int) -> Double {
            let tt = Double(Swift.max(1, t))
            return (Double(x) / tt).rounded(.up) * tt
        }
        var padded = 0.0, actual = 0.0
        switch shape {
        case .none:
            return 1
        case .gemm(let g):
            padded = Double(g.batch) * pad(g.m, tile.m) * pad(g.n, tile.n) * pad(g.k, tile.k)
            actual = Double(g.batch) * Double(g.m) * Double(g.n) * Double(g.k)
        case .groupedGemm(let gs):
            for g in gs {
                padded += Double(g.batch) * pad(g.m, tile.m) * pad(g.n, tile.n) * pad(g.k, tile.k)
                actual += Double(g.batch) * Double(g.m) * Double(g.n) * Double(g.k)
            }
        case let .rows(count, length):
            padded = pad(count, tile.m) * pad(length, tile.n)
            actual = Double(count) * Double(length)
        }
        guard actual > 0, padded.isFinite else { return 1 }
        return padded / actual
    }

    /// The modeled time of one kernel (formulas at the top of this file).
    /// - Throws: `TimeModelError.invalidQuery` for negative/NaN/infinite figures or negative
    ///   dimensions; `.unsupportedDtype` when flops > 0 and the policy rejects the dtype.
    public func kernelTime(_ q: KernelCostQuery) throws(TimeModelError) -> ModeledTime {
        try Self.validateShape(q)
        guard q.flops.isFinite, q.flops >= 0 else {
            throw .invalidQuery(kernel: q.name, field: "flops", value: "\(q.flops)", expected: "a finite number ≥ 0")
        }
        guard q.bytes.isFinite, q.bytes >= 0 else {
            throw .invalidQuery(kernel: q.name, field: "bytes", value: "\(q.bytes)", expected: "a finite number ≥ 0")
        }
        if let w = q.writeBytes, !(w.isFinite && w >= 0 && w <= q.bytes) {
            throw .invalidQuery(kernel: q.name, field: "writeBytes", value: "\(w)", expected: "a finite number in [0, bytes = \(q.bytes)]")
        }
        let classEfficiency = q.kernelClass.flatMap { profile.efficiency(of: $0) }
        let unit = profile.compute.unit(q.unit)
        var effective = q.dtype
        var rate = 0.0, paddedFlops = 0.0, factor = 1.0, cEff = 0.0, compute = 0.0
        if q.flops > 0 {
            let resolution: DTypeResolution
            switch profile.dtypeSupport(unit: q.unit, dtype: q.dtype) {
            case .native(let r), .emulated(let r): resolution = r
            case .rejected(let reason): throw .unsupportedDtype(device: profile.name, unit: q.unit, dtype: q.dtype, reason: reason)
            }
            effective = resolution.effective
            rate = resolution.rate
            factor = Self.paddingFactor(q.shape, tile: unit.tile(for: effective))
            paddedFlops = q.flops * factor
            // The ramp-up measures how much of the device a kernel keeps busy. A kernel with
            // few FLOPs per byte (a GEMV) fills the device through its memory traffic, so its
            // work on this curve is the larger of its FLOPs and its bytes at the unit's
            // FLOP-per-byte balance point.
            let balance = profile.memory.bandwidth.value > 0 ? rate / profile.memory.bandwidth.value : 0
            let rampWork = Swift.max(paddedFlops, q.bytes * balance)
            cEff = unit.efficiency.efficiency(work: rampWork) * (classEfficiency?.compute?.value ?? 1)
            compute = paddedFlops / (rate * cEff)
        }
        var mEff = 0.0, memory = 0.0
        if q.bytes > 0 {
            mEff = profile.memory.efficiency.efficiency(work: q.bytes) * (classEfficiency?.memory?.value ?? 1)
            memory = Self.copyEquivalentBytes(q, memory: profile.memory) / (profile.memory.bandwidth.value * mEff)
        }
        let launch = unit.launchOverhead.value
        let busy = Swift.max(compute, memory)
        let bound: ModeledTime.Bound = launch >= busy ? .launch : (compute >= memory ? .compute : .memory)
        return ModeledTime(launch: launch, compute: compute, memory: memory, total: launch + busy, bound: bound,
                           unit: q.unit, requestedDtype: q.dtype, effectiveDtype: effective, paddedFlops: paddedFlops,
                           paddingFactor: factor, rate: rate, computeEfficiency: cEff, memoryEfficiency: mEff)
    }

    /// The bytes of a copy stream that take as long as the query's traffic: `bytes` without a
    /// `readBandwidth` or without `writeBytes`; else reads at `readBandwidth` and writes at
    /// `2 / bandwidth − 1 / readBandwidth` each, expressed in bytes at `bandwidth`.
    static func copyEquivalentBytes(_ q: KernelCostQuery, memory: DeviceProfile.Memory) -> Double {
        guard let rb = memory.readBandwidth?.value, rb > 0, let w = q.writeBytes else { return q.bytes }
        let ratio = memory.bandwidth.value / rb
        return (q.bytes - w) * ratio + w * Swift.max(0, 2 - ratio)
    }

    private static func validateShape(_ q: KernelCostQuery) throws(TimeModelError) {
        func check(_ g: GemmShape, _ label: String) throws(TimeModelError) {
            for (n, v) in [("m", g.m), ("n", g.n), ("k", g.k), ("batch", g.batch)] where v < 0 {
                throw .invalidQuery(kernel: q.name, field: "\(label).\(n)", value: "\(v)", expected: "a dimension ≥ 0")
            }
        }
        switch q.shape {
        case .none: break
        case .gemm(let g): try check(g, "shape")
        case .groupedGemm(let gs):
            for (i, g) in gs.enumerated() { try check(g, "shape[\(i)]") }
        case let .rows(count, length):
            if count < 0 { throw .invalidQuery(kernel: q.name, field: "shape.count", value: "\(count)", expected: "a dimension ≥ 0") }
            if length < 0 { throw .invalidQuery(kernel: q.name, field: "shape.length", value: "\(length)", expected: "a dimension ≥ 0") }
        }
    }

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

// MARK: - The contention engine

/// One transfer of a phase, between *positions* in the group (rank indices).
private struct CollectiveTransfer {
    let src: Int
    let dst: Int
    let bytes: Double
}

private struct CollectivePhase {
    var transfers: [CollectiveTransfer]
    var repeats: Int
}

private enum FabricResourceKey: Hashable {
    case meshLink(Int, Int)
    case ringLink(Int, clockwise: Bool)
    case portOut(Int)
    case portIn(Int)
    case nicOut(Int)
    case nicIn(Int)
    case nodeOut(Int)
    case nodeIn(Int)
}

private struct FabricRoute {
    let resources: [Int]
    let latency: Double
}

private struct CollectiveEngine {
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
