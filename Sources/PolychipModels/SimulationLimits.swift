import PolychipCore

/// The ranges `polychip simulate` and ``ModelSimulator`` accept for every integer a user
/// gives (docs/scenarios.md, "Limits"), checked before any arithmetic or allocation.
///
/// Within them every product the simulator forms in `Int` (tokens × hidden size × bytes,
/// sequences × keys × latent width, parameter counts of a config) stays below 2⁶³, and the
/// per-stage tables it keeps (a stage-size² all-to-all matrix per MoE layer) stay under about
/// 100 MB. Outside them the answer is a typed `invalidArgument` naming the flag.
public enum SimulationLimits {
    /// Nodes (`--nodes`).
    public static let maxNodes = 4096
    /// Devices in all (`--devices` × `--nodes`).
    public static let maxWorld = 65536
    /// Devices of one pipeline stage (TP × DP): the all-to-all matrices are stage size².
    public static let maxStageDevices = 1024
    /// Sequences per step (`--batch`).
    public static let maxBatch = 1 << 20
    /// Tokens per sequence (`--context`).
    public static let maxContext = 1 << 24
    /// Tokens in the KV caches or prompts of one step together (batch × context).
    public static let maxStepTokens = 1 << 32
    /// INT4 group size (`--group-size`).
    public static let maxGroupSize = 1 << 16
    /// Plans one sweep may try (the product of the `--sweep` value counts).
    public static let maxSweepPlans = 4096
    /// Every dimension of a model config (hidden size, intermediate sizes, vocabulary, ranks).
    public static let maxModelDimension = 1 << 20
    /// Counts of a model config (layers, heads, experts, head dims, groups).
    public static let maxModelCount = 1 << 16

    static func bad(_ argument: String, _ reason: String) -> PolychipError {
        .invalidArgument(kernel: "simulate", argument: argument, reason: reason)
    }

    /// Checks `value` against `1...limit`.
    static func check(_ value: Int, _ argument: String, max limit: Int, min lower: Int = 1) throws {
        guard value >= lower, value <= limit else { throw bad(argument, "must be in \(lower)…\(limit), got \(value)") }
    }

    /// Devices in all for `devicesPerNode` × `nodes`, range-checked before the product.
    public static func world(devicesPerNode: Int, nodes: Int) throws -> Int {
        try check(devicesPerNode, "--devices", max: maxWorld)
        try check(nodes, "--nodes", max: maxNodes)
        let (w, o) = devicesPerNode.multipliedReportingOverflow(by: nodes)
        guard !o, w <= maxWorld else {
            throw bad("--nodes", "\(devicesPerNode) devices × \(nodes) nodes exceeds the \(maxWorld) devices the simulator handles")
        }
        return w
    }
}
