import PolychipCore

/// Collectives on a simulated mesh: the data moves for real (``Collective/evaluate(_:)``) and
/// each rank's clock advances by the time model's alpha-beta cost on the profile's topology.
///
/// Faults: before any data moves, every simulated rank counts the collective as an operation
/// (device lost) and a memory event (memory error), and the communicator counts it as a
/// `linkDown` event. Downed links (from the plan's `linkDown` trigger, or ``takeDown(_:)``)
/// stay down; the model reroutes around them where the topology allows — the record's
/// breakdown `detail` and ``history`` say which way — or the collective fails with
/// `PolychipError.deviceFault(kind: "linkDown")` naming the unreachable pair. A failed
/// collective stores nothing: inputs and outputs are as they were.
public final class SimulatedCommunicator: Communicator {
    /// The model that prices the transfers.
    public let model: TimeModel
    private struct State {
        var plan: DeviceProfile.Faults?
        var collectives = 0
        var down: [LinkFault] = []
        var history: [CollectiveCost] = []
        var fired: [FiredFault] = []
    }
    private let state: Locked<State>

    /// Creates a communicator over `model`; its fault plan is the profile's `faults` block
    /// (a `linkDown` trigger with a `link` and neither `atEvent` nor `probability` is down from
    /// the start).
    public init(model: TimeModel) {
        self.model = model
        state = Locked(State(plan: model.profile.faults, down: Self.initiallyDown(model.profile.faults, model)))
    }

    private static func initiallyDown(_ plan: DeviceProfile.Faults?, _ model: TimeModel) -> [LinkFault] {
        guard let t = plan?.linkDown, t.atEvent == nil, t.probability == nil, let l = t.link, l.count == 2 else { return [] }
        return [linkFault(l[0], l[1], model)]
    }

    /// The interconnect element between devices `a` and `b`: their direct link (full mesh,
    /// ring), `a`'s switch port (switch), or a NIC of `a`'s node when they sit in different nodes.
    static func linkFault(_ a: Int, _ b: Int, _ model: TimeModel) -> LinkFault {
        let ic = model.profile.interconnect
        let perNode = max(1, ic.devicesPerNode.value)
        if ic.topology.value == .twoLevel, a / perNode != b / perNode { return .nic(node: a / perNode, index: 0) }
        if ic.intraNodeTopology == .switch { return .switchPort(device: a) }
        return .link(a, b)
    }

    /// Replaces the fault plan (`linkDown` is read here; the other kinds are the devices'),
    /// restarts the collective counter and brings every link back up.
    public func injectFaults(_ faults: DeviceProfile.Faults?) {
        state.withLock { s in
            s.plan = faults
            s.collectives = 0
            s.down = Self.initiallyDown(faults, model)
        }
    }

    /// Takes an interconnect element down now (it stays down until ``restoreLinks()``).
    public func takeDown(_ fault: LinkFault) {
        state.withLock { s in if !s.down.contains(fault.normalized) { s.down.append(fault.normalized) } }
    }

    /// Brings every downed element back up.
    public func restoreLinks() { state.withLock { $0.down = [] } }

    /// The elements currently down.
    public var downedLinks: [LinkFault] { state.withLock { $0.down } }

    /// The modeled cost of every collective so far (algorithm, per-device times, reroutes).
    public var history: [CollectiveCost] { state.withLock { $0.history } }

    /// Every `linkDown` fault that fired, in order.
    public var firedFaults: [FiredFault] { state.withLock { $0.fired } }

    public func execute(_ collective: Collective, on mesh: Mesh, inputs: [Tensor], outputs: [Tensor]) throws -> [KernelTiming] {
        let name = collective.description
        let p = mesh.size
        let sims = mesh.devices.map { $0 as? SimulatedDevice }
        // 1. Device faults (lost, memory error), counted once per distinct device.
        var seen = Set<ObjectIdentifier>()
        for d in sims.compactMap({ $0 }) where seen.insert(ObjectIdentifier(d)).inserted {
            try d.checkFaults(.collective(name))
            try d.checkMemoryError(name)
        }
        // 2. Link faults and the cost (may be unreachable).
        let down: [LinkFault] = state.withLock { s in
            s.collectives += 1
            if let plan = s.plan, let t = plan.linkDown {
                let l = t.link.flatMap { $0.count == 2 ? $0 : nil } ?? [t.device ?? 0, ((t.device ?? 0) + 1) % max(2, p)]
                if plan.fires(.linkDown, event: s.collectives, device: l[0], kernel: name) {
                    let f = Self.linkFault(l[0], l[1], model)
                    if !s.down.contains(f.normalized) { s.down.append(f.normalized) }
                    s.fired.append(FiredFault(kind: .linkDown, device: mesh.devices[min(l[0], p - 1)].id, operation: name,
                                              event: s.collectives, detail: "\(f) down: " + DeviceFaultState.reason(.linkDown, plan, event: s.collectives)))
                }
            }
            return s.down
        }
        let bytes = Double(inputs[0].desc.byteCount)
        let cost: CollectiveCost
        do {
            switch collective {
            case .allReduce: cost = try model.allReduce(bytes: bytes, devices: p, faults: down)
            case .allGather: cost = try model.allGather(bytes: bytes * Double(p), devices: p, faults: down)
            case .reduceScatter: cost = try model.reduceScatter(bytes: bytes, devices: p, faults: down)
            case .allToAll(let counts):
                let rowBytes = Double(inputs[0].desc.shape.dropFirst().reduce(1, *) * inputs[0].desc.dtype.bitWidth / 8)
                cost = try model.allToAll(bytes: counts.map { $0.map { Double($0) * rowBytes } }, group: Array(0..<p), faults: down)
            }
        } catch let CollectiveError.unreachable(from, to, reason) {
            throw PolychipError.deviceFault(device: mesh.devices[min(from, p - 1)].id, kernel: name, kind: FaultKind.linkDown.rawValue,
                                            detail: "device \(from) cannot reach device \(to): \(reason); down: \(down.map(\.description).joined(separator: ", ")); nothing was stored")
        } catch {
            throw PolychipError.collectiveMismatch(collective: name, reason: "\(error)")
        }
        // 3. The data, computed on the host, stored only now that nothing can fail.
        let values = try zip(sims, zip(mesh.devices, inputs)).map { sim, pair in
            try sim?.hostValue(pair.1) ?? pair.0.download(pair.1)
        }
        let results = try collective.evaluate(values)
        for (i, r) in results.enumerated() {
            if let sim = sims[i] { try sim.store(r, to: outputs[i]) } else { try mesh.devices[i].upload(r, to: outputs[i]) }
        }
        state.withLock { $0.history.append(cost) }
        var detail = "\(cost.algorithm)"
        if !cost.reroutes.isEmpty { detail += "; rerouted: " + cost.reroutes.map(\.description).joined(separator: "; ") }
        return (0..<p).map { r in
            let t = r < cost.perDevice.count ? cost.perDevice[r] : cost.total
            return .modeled(ModeledBreakdown(launch: 0, compute: 0, memory: 0, communication: t, total: t,
                                             bound: "communication", detail: detail))
        }
    }
}

extension Mesh {
    /// The simulated communicator of a mesh built by `SimulatedBackend.mesh`, for fault
    /// injection (`takeDown`, `injectFaults`) and the collectives' modeled costs (`history`).
    public var simulated: SimulatedCommunicator? { communicator as? SimulatedCommunicator }

    /// Applies a fault plan to every simulated device of the mesh and to its communicator
    /// (counters restart at 0).
    public func injectFaults(_ faults: DeviceProfile.Faults?) {
        for d in devices { (d as? SimulatedDevice)?.injectFaults(faults) }
        simulated?.injectFaults(faults)
    }
}
