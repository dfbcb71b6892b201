import ArgumentParser
import Foundation
import Polychip
import PolychipBench
import PolychipConformance
import PolychipModels

/// `polychip diff`: a GLM-5-shaped decoder stack on a device against the reference, op by op.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Run a decoder-layer stack on a device and on the reference; report per-op error against budgets, router and DSA selection agreement, and find culprit ops.",
        discussion: """
        The stack is the layer description `polychip simulate` prices (MLA with latent KV and \
        decoupled RoPE, the DSA indexer and top-k, sparse attention, sigmoid group-limited routing \
        with a selection bias, INT4 routed experts, a shared expert) at reduced dimensions: by \
        default GLM-5's structure with hidden 256, 32 experts (top-4), 32 tokens. Per op: the local \
        error (the device op on the reference's inputs), the accumulated error (device pipeline vs \
        reference pipeline) and the budgets from the catalog's tolerances; per layer the router's \
        and the DSA selection's agreement. --bisect substitutes reference results for device ops \
        to find the smallest set that brings the final output within budget. Exit status 1 when \
        the final output is over budget. See docs/model-diff.md.
        Example: polychip diff --device sim:ascend-910b --set numerics.kernels.moe-router.accumulator=bf16 --bisect
        """)

    @Option(help: "Device selector (one device; or one --profile).")
    var device: [String] = []

    @Option(help: "Decoder layers.") var layers: Int = 4
    @Option(help: "Prompt tokens (one sequence, prefill).") var tokens: Int = 32
    @Option(help: "Activation dtype: f32, f16 or bf16.") var dtype: String = "f32"
    @Option(help: "Weight storage: w4a8 (INT4 experts; attention as float), int4 or bf16.") var weights: String = "w4a8"
    @Option(help: "INT4 group size.") var groupSize: Int = 32
    @Option(help: "Seed of the input and the generated weights.") var seed: UInt64 = 1
    @Option(help: ArgumentHelp("A DeepSeek-V3-style config.json with the stack's (reduced) dimensions; default: GLM-5's structure at hidden 256.", valueName: "file"))
    var config: String?
    @Option(name: .customLong("weights-from"), help: ArgumentHelp("Load weights from a .safetensors file or a directory of NAME.npy files instead of generating them (names: docs/model-diff.md).", valueName: "path"))
    var weightsFrom: String?
    @Option(help: "INT4 checkpoint layout of --weights-from: auto (native, q4_0, GPTQ v1 by name), gptq-v2 or awq.")
    var int4Format: String = "auto"

    @Flag(help: "Print the weight names and shapes --weights-from reads for this configuration, and exit.")
    var listWeights = false
    @Flag(help: "Find the ops whose substitution by the reference brings the final output within budget.") var bisect = false
    @Option(help: "Most stack runs the bisection may take.") var maxRuns: Int = 400
    @Flag(help: "Print JSON.") var json = false
    @Option(help: ArgumentHelp("Write an SVG of the error growth across ops and layers.", valueName: "file.svg")) var plot: String?

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions
    @OptionGroup var output: OutputOptions

    /// Largest `--group-size` (INT4 groups longer than any reduced dimension are pointless).
    static let maxGroupSize = 4096
    /// Largest `--max-runs` (each run is one pass of the stack on the device).
    static let maxBisectRuns = 100_000

    func validate() throws {
        guard (1...DecoderStackConfig.maxLayers).contains(layers) else { throw ValidationError("--layers must be in 1…\(DecoderStackConfig.maxLayers), got \(layers)") }
        guard (1...DecoderStackConfig.maxTokens).contains(tokens) else { throw ValidationError("--tokens must be in 1…\(DecoderStackConfig.maxTokens), got \(tokens)") }
        guard (2...Self.maxGroupSize).contains(groupSize), groupSize % 2 == 0 else {
            throw ValidationError("--group-size must be even and in 2…\(Self.maxGroupSize), got \(groupSize)")
        }
        guard (1...Self.maxBisectRuns).contains(maxRuns) else { throw ValidationError("--max-runs must be in 1…\(Self.maxBisectRuns), got \(maxRuns)") }
        guard let d = DType(rawValue: dtype), d.isFloat else { throw ValidationError("--dtype must be f32, f16 or bf16, got \(Quoted(dtype))") }
        guard WeightScheme(rawValue: weights) != nil else { throw ValidationError("--weights must be w4a8, int4 or bf16, got \(Quoted(weights))") }
        guard Int4Checkpoint(rawValue: int4Format) != nil else { throw ValidationError("--int4-format must be auto, gptq-v2 or awq, got \(Quoted(int4Format))") }
    }

    func run() throws {
        // Output files are checked before any work and written all-or-nothing at the end.
        let files = try output.files([("--plot", plot)])
        var cfg = DecoderStackConfig(layers: layers, tokens: tokens, dtype: DType(rawValue: dtype) ?? .f32,
                                     weights: WeightScheme(rawValue: weights) ?? .w4a8, groupSize: groupSize, seed: seed)
        if let config { cfg.model = try MoEModelConfig.load(path: config) }
        try cfg.validate()
        if listWeights {
            print("# KEY  float shape  dtype; a KEY without .weight is a projection: KEY.weight (float), or INT4 as KEY.q + KEY.scales [+ KEY.zeros], KEY.q4_0, or GPTQ/AWQ tensors (docs/model-diff.md)")
            for (key, desc) in try DecoderWeights.required(cfg) { print("\(key)  \(desc.shape)  \(desc.dtype)") }
            return
        }
        let devs = try simulation.resolve(device, fallback: [])
        guard devs.count == 1, let dev = devs.first else {
            throw ValidationError("diff takes one device: give one --device or one --profile (got \(devs.count))")
        }
        let w: DecoderWeights?
        if let path = weightsFrom {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ValidationError("--weights-from \(path): no such file or directory") }
            let source: any WeightSource = isDir.boolValue ? NumPyDirectoryWeights(directory: path) : try SafeTensorsWeights(path: path)
            w = try DecoderWeights.load(cfg, from: source, checkpoint: Int4Checkpoint(rawValue: int4Format) ?? .auto)
        } else {
            w = nil
        }
        let stack = try DecoderStack(config: cfg, weights: w)
        let report = try ModelDiff.run(stack, device: dev, bisect: bisect, maxBisectRuns: maxRuns)
        if json { print(String(decoding: try report.json(), as: UTF8.self)) } else { print(report.text(), terminator: "") }
        if let plot {
            try files.stage(plot, Data(ModelDiffPlot.svg(report).utf8))
            try files.commit()
        }
        if !report.final.withinBudget { throw ExitCode(1) }
    }
}
