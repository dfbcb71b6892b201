import Foundation
import PolychipCore
import PolychipSimulated

/// What to simulate: a model, a device profile, how many devices, a parallel plan and a workload.
public struct SimulationRequest: Sendable {
    /// The model.
    public var model: MoEModelConfig
    /// The device profile every device follows.
    public var profile: DeviceProfile
    /// Devices per node.
    public var devicesPerNode: Int
    /// Nodes.
    public var nodes: Int
    /// The parallel plan (see ``ParallelPlan/resolve(world:model:tp:dp:ep:pp:)``).
    public var plan: ParallelPlan
    /// Prefill or decode.
    public var phase: SimulationPhase
    /// Sequences per step (all data-parallel ranks together).
    public var batch: Int
    /// Tokens per sequence already in the KV cache (decode) or in the prompt (prefill).
    public var context: Int
    /// Weight storage and GEMM dtypes.
    public var weights: WeightScheme
    /// INT4 group size (elements per f32 scale).
    public var groupSize: Int
    /// How tokens pick experts.
    public var routing: RoutingModel
    /// Seed of the routing sample.
    public var seed: UInt64
    /// Memory each device keeps free for the runtime (workspace, allocator, graphs), bytes.
    public var reserveBytes: Double
    /// Record a per-kernel timeline (for `--trace`).
    public var recordTrace: Bool

    /// Creates a request.
    public init(model: MoEModelConfig, profile: DeviceProfile, devicesPerNode: Int, nodes: Int = 1, plan: ParallelPlan,
                phase: SimulationPhase = .decode, batch: Int = 16, context: Int = 8192, weights: WeightScheme = .w4a8,
                groupSize: Int = 128, routing: RoutingModel = .uniform, seed: UInt64 = 1, reserveBytes: Double = 0,
                recordTrace: Bool = false) {
        self.model = model; self.profile = profile; self.devicesPerNode = devicesPerNode; self.nodes = nodes
        self.plan = plan; self.phase = phase; self.batch = batch; self.context = context; self.weights = weights
        self.groupSize = groupSize; self.routing = routing; self.seed = seed; self.reserveBytes = reserveBytes
        self.recordTrace = recordTrace
    }
}

/// One modeled kernel or collective slice on one device, for the Chrome trace.
public struct TraceSlice: Sendable, Codable, Hashable {
    /// Global device rank.
    public var device: Int
    /// Operation name (`attn.q_b_proj`, `moe.dispatch`, …).
    public var name: String
    /// Layer-type group.
    public var group: String
    /// Layer index.
    public var layer: Int
    /// Start, seconds.
    public var start: Double
    /// Duration, seconds.
    public var seconds: Double
    /// `compute`, `memory`, `launch`, `communication` or `wait`.
    public var bound: String
}
