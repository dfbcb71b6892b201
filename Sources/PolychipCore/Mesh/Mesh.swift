/// How the devices of a mesh are wired.
public enum MeshTopology: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Every pair directly linked (Ascend HCCS in an 8-card node).
    case fullMesh
    /// Each device linked to two neighbours.
    case ring
    /// All devices on one switch.
    case `switch`
    /// Nodes of `devicesPerNode` fully linked devices joined by a slower network.
    case twoLevel(devicesPerNode: Int)

    public var description: String {
        switch self {
        case .fullMesh: return "full-mesh"
        case .ring: return "ring"
        case .switch: return "switch"
        case .twoLevel(let n): return "two-level(\(n)/node)"
        }
    }
}

/// Runs collectives for a mesh. Simulated meshes model time; real ones move data.
public protocol Communicator: Sendable {
    /// Executes `collective` with one input and one output tensor per device of `mesh`,
    /// returning one timing per device.
    func execute(_ collective: Collective, on mesh: Mesh, inputs: [Tensor], outputs: [Tensor]) throws -> [KernelTiming]
}

/// Stages every collective through host memory: download, combine on the host, upload.
/// Correct on any mix of devices; its measured time includes the transfers.
public struct HostStagedCommunicator: Communicator {
    /// Creates the communicator.
    public init() {}

    public func execute(_ collective: Collective, on mesh: Mesh, inputs: [Tensor], outputs: [Tensor]) throws -> [KernelTiming] {
        let t0 = Queue.wallClock()
        let values = try zip(mesh.devices, inputs).map { try $0.download($1) }
        let results = try collective.evaluate(values)
        for (i, r) in results.enumerated() { try mesh.devices[i].upload(r, to: outputs[i]) }
        let dt = Queue.wallClock() - t0
        return Array(repeating: .measured(seconds: dt), count: inputs.count)
    }
}

/// A group of devices with an interconnect topology; collectives run on it.
public final class Mesh: Sendable {
    /// Member devices; rank `r` is `devices[r]`.
    public let devices: [any Device]
    /// Wiring.
    public let topology: MeshTopology
    /// One compute queue per device.
    public let queues: [Queue]
    /// One communication queue per device (collectives are recorded here).
    public let commQueues: [Queue]
    /// Who runs the collectives.
    public let communicator: any Communicator

    /// Creates a mesh. A device may appear at several ranks (useful for testing on one device).
    public init(devices: [any Device], topology: MeshTopology = .fullMesh, communicator: (any Communicator)? = nil) throws {
        guard !devices.isEmpty else { throw PolychipError.collectiveMismatch(collective: "mesh", reason: "a mesh needs at least one device") }
        if case .twoLevel(let n) = topology, n < 1 {
            throw PolychipError.collectiveMismatch(collective: "mesh", reason: "devicesPerNode must be ≥ 1")
        }
        self.devices = devices
        self.topology = topology
        self.queues = devices.map { Queue(device: $0, label: "compute") }
        self.commQueues = devices.map { Queue(device: $0, label: "comm") }
        self.communicator = communicator ?? HostStagedCommunicator()
    }

    /// Number of devices.
    public var size: Int { devices.count }

    /// Validates and runs a collective; records one slice per participating device.
    ///
    /// Modeled (simulated) collectives are barriers on the virtual clocks: every rank's record
    /// starts when the last rank's compute and communication queues are done and lasts that
    /// rank's modeled time, on the rank's communication queue. Compute queues keep going
    /// (communication overlaps compute) until a caller that needs the result joins them with
    /// ``waitForCommunication()``.
    public func run(_ collective: Collective, inputs: [Tensor], outputs: [Tensor]) throws {
        guard inputs.count == size, outputs.count == size else {
            throw PolychipError.collectiveMismatch(collective: collective.description, reason: "need one input and one output per device (\(size)), got \(inputs.count) and \(outputs.count)")
        }
        let expected = try collective.validate(inputs.map(\.desc))
        for r in 0..<size {
            guard outputs[r].desc == expected[r] else {
                throw PolychipError.collectiveMismatch(collective: collective.description, reason: "output on rank \(r) must be \(expected[r]), got \(outputs[r].desc)")
            }
            _ = try inputs[r].requireBuffer(on: devices[r])
            _ = try outputs[r].requireBuffer(on: devices[r])
        }
        let timings = try communicator.execute(collective, on: self, inputs: inputs, outputs: outputs)
        let sent = collective.bytesSent(inputs.map(\.desc))
        // A modeled collective is a barrier: it starts when the last participant arrives
        // (every rank's compute and communication clocks), so the slowest rank sets its start.
        let barrier = (0..<size).reduce(0.0) { max($0, commQueues[$1].virtualTime, queues[$1].virtualTime) }
        for r in 0..<size {
            let q = commQueues[r]
            let rec: KernelRecord
            switch timings[r] {
            case .measured(let s):
                let end = Queue.wallClock()
                rec = KernelRecord(kernel: collective.description, inputShapes: [inputs[r].shape], dtypes: [inputs[r].dtype],
                                   device: devices[r].id, start: end - s, end: end, flops: 0, bytes: sent[r], source: .measured)
            case .modeled(let b):
                rec = KernelRecord(kernel: collective.description, inputShapes: [inputs[r].shape], dtypes: [inputs[r].dtype],
                                   device: devices[r].id, start: barrier, end: barrier + b.total, flops: 0, bytes: sent[r],
                                   source: .modeled, breakdown: b)
            }
            q.append(rec)
        }
    }

    /// Joins every rank's compute clock to its communication clock: kernels enqueued next
    /// start after the collectives issued so far (use it where their results are consumed).
    public func waitForCommunication() {
        for r in 0..<size { queues[r].wait(until: commQueues[r].virtualTime) }
    }

    /// Convenience: allocates outputs, runs the collective on host values, returns the results.
    public func run(_ collective: Collective, _ values: [HostTensor]) throws -> [HostTensor] {
        guard values.count == size else {
            throw PolychipError.collectiveMismatch(collective: collective.description, reason: "need \(size) inputs, got \(values.count)")
        }
        let outDescs = try collective.validate(values.map(\.desc))
        let ins = try zip(devices, values).map { try $0.tensor($1) }
        let outs = try zip(devices, outDescs).map { try $0.allocate($1) }
        try run(collective, inputs: ins, outputs: outs)
        return try zip(devices, outs).map { try $0.download($1) }
    }
}

/// A device whose backend builds meshes of fresh devices like it (its own communicator and
/// interconnect model), instead of ranks that alias one device joined by host staging.
public protocol MeshBuildingDevice: Device {
    /// A mesh of `ranks` fresh devices like this one, and `spares` more for failover.
    func makeMesh(ranks: Int, spares: Int) throws -> (mesh: Mesh, spares: [any Device])
}

extension Mesh {
    /// `ranks` devices like `device` for collective and expert-parallel work: the backend's
    /// own mesh where it builds one (``MeshBuildingDevice``), otherwise `device` repeated with
    /// the host-staged communicator; `spares` devices for failover either way.
    public static func replicating(_ device: any Device, ranks: Int, spares: Int) throws -> (mesh: Mesh, spares: [any Device]) {
        if let builder = device as? any MeshBuildingDevice { return try builder.makeMesh(ranks: ranks, spares: spares) }
        return (try Mesh(devices: Array(repeating: device, count: ranks)), Array(repeating: device, count: spares))
    }
}
