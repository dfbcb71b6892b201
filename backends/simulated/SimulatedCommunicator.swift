import PolychipCore

/// Collectives on a simulated mesh: the data moves for real (``Collective/evaluate(_:)``) and
/// each rank's clock advances by the time model's alpha-beta cost on the profile's topology.
public struct SimulatedCommunicator: Communicator {
    /// The model that prices the transfers.
    public let model: TimeModel

    /// Creates a communicator over `model`.
    public init(model: TimeModel) { self.model = model }

    public func execute(_ collective: Collective, on mesh: Mesh, inputs: [Tensor], outputs: [Tensor]) throws -> [KernelTiming] {
        let values = try zip(mesh.devices, inputs).map { try $0.download($1) }
        let results = try collective.evaluate(values)
        let p = mesh.size
        let bytes = Double(inputs[0].desc.byteCount)
        let cost: CollectiveCost
        do {
            switch collective {
            case .allReduce: cost = try model.allReduce(bytes: bytes, devices: p)
            case .allGather: cost = try model.allGather(bytes: bytes * Double(p), devices: p)
            case .reduceScatter: cost = try model.reduceScatter(bytes: bytes, devices: p)
            case .allToAll(let counts):
                let rowBytes = Double(inputs[0].desc.shape.dropFirst().reduce(1, *) * inputs[0].desc.dtype.bitWidth / 8)
                cost = try model.allToAll(bytes: counts.map { $0.map { Double($0) * rowBytes } })
            }
        } catch {
            throw PolychipError.collectiveMismatch(collective: collective.description, reason: "\(error)")
        }
        for (i, r) in results.enumerated() { try mesh.devices[i].upload(r, to: outputs[i]) }
        // Each rank finishes when its own last transfer does (an all-to-all with uneven counts
        // releases lightly loaded ranks early); the slowest rank ends the collective.
        return (0..<p).map { r in
            let t = r < cost.perDevice.count ? cost.perDevice[r] : cost.total
            return .modeled(ModeledBreakdown(launch: 0, compute: 0, memory: 0, communication: t, total: t, bound: "communication"))
        }
    }
}
