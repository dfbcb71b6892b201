import ArgumentParser
import Foundation
import Polychip
import PolychipModels

/// `polychip simulate`.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Predict a MoE model's step on nodes of simulated devices: time breakdown, tokens/s, memory fit.",
        discussion: """
        Builds every layer of the model from meta tensors, times each kernel with the profile's time \
        model and each collective with its interconnect model (expert-parallel all-to-all with \
        sampled per-device counts, tensor-parallel all-reduce), and checks memory per device. \
        Several --profile values print a comparison table; --sweep tries parallel plans and \
        prints the best per profile. Example: polychip simulate --model glm5 --profile ascend-910b \
        --devices 8 --phase decode
        """)

    @Option(help: "glm5, deepseek-v3, deepseek-v3.2, or a DeepSeek-V3-style config.json.")
    var model: String = "glm5"

    @Option(name: .customLong("profile"), help: "Device profile name or file (repeatable). Default: ascend-910b.")
    var profiles: [String] = []

    @Option(name: .customLong("set"), help: "Profile override PATH=VALUE (repeatable), as for sim devices.")
    var settings: [String] = []

    @Option(help: "Devices per node (default: the profile's node size).")
    var devices: Int?

    @Option(help: "Nodes.") var nodes: Int = 1
    @Option(help: "Tensor parallelism of attention, dense FFN and shared expert.") var tp: Int?
    @Option(help: "Expert parallelism.") var ep: Int?
    @Option(help: "Pipeline stages.") var pp: Int?
    @Option(help: "Data parallelism of attention (inside a stage).") var dp: Int?

    @Option(help: "prefill or decode.") var phase: String = "decode"
    @Option(help: "Sequences per step (default: 16 for decode, 1 for prefill).") var batch: Int?
    @Option(help: "Tokens per sequence: KV cache length (decode) or prompt length (prefill).") var context: Int = 8192
    @Option(help: "int4 (W4A16), w4a8 (GLM-5 serving recipe) or bf16.") var weights: String = "w4a8"
    @Option(help: "INT4 group size (elements per f32 scale).") var groupSize: Int = 128
    @Option(help: "Expert routing model: uniform, balanced or zipf:S.") var routing: String = "uniform"
    @Option(help: "Seed of the routing sample.") var seed: UInt64 = 1
    @Option(help: "Memory per device kept free for the runtime, GiB.") var reserveGb: Double = 0

    @Option(name: .customLong("sweep"), help: "Plan axis to sweep, e.g. ep=1,2,4,8 (repeatable: tp, dp, ep, pp).")
    var sweeps: [String] = []

    @Flag(name: .customLong("validate"), help: "Price the published measurements (backends/profiles/published) with their bundled profiles: modeled vs published, the error per record, the median per chip and class.")
    var validatePublished = false
    @Flag(help: "With --validate: print the profile figures the records marked fit determine (held-out records never enter).")
    var fit = false
    @Option(help: ArgumentHelp("With --validate: a directory of record files instead of the bundled ones.", valueName: "DIR"))
    var records: String?

    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Write an SVG plot of the time breakdown and memory (single profile).") var plot: String?
    @Option(help: "Write a Chrome trace (one track per device) of the step (single profile).") var trace: String?

    @OptionGroup(title: "Output files") var output: OutputOptions

    func run() throws {
        if validatePublished || fit || records != nil { return try runPublishedValidation() }
        let files = try output.files([("--plot", plot), ("--trace", trace)])
        let cfg: MoEModelConfig
        if let builtIn = MoEModelConfig.builtIn[model.lowercased()] { cfg = builtIn } else if model.hasSuffix(".json") {
            cfg = try MoEModelConfig.load(path: model)
        } else {
            throw ValidationError("unknown model \(Quoted(model)); use \(MoEModelConfig.builtIn.keys.sorted().joined(separator: ", ")) or a config .json")
        }
        guard let ph = SimulationPhase(rawValue: phase) else { throw ValidationError("--phase must be prefill or decode") }
        guard let ws = WeightScheme(rawValue: weights) else { throw ValidationError("--weights must be int4, w4a8 or bf16") }
        let routingModel = try RoutingModel.parse(routing)
        let axes = try sweeps.map(PlanSweep.parseAxis)
        let plans = axes.reduce(1.0) { $0 * Double($1.1.count) }
        if plans > Double(SimulationLimits.maxSweepPlans) {
            throw ValidationError("--sweep: the axes give more than the \(SimulationLimits.maxSweepPlans) plans a sweep tries")
        }
        let names = profiles.isEmpty ? ["ascend-910b"] : profiles
        if names.count > 1 && (plot != nil || trace != nil) { throw ValidationError("--plot and --trace take a single --profile") }
        var reports: [SimulationReport] = []
        var sweepResults: [PlanSweep.Result] = []
        for name in names {
            var profile = try SimulatedBackend.loadProfile(name)
            if !settings.isEmpty {
                do { profile = try profile.applying(settings: settings) } catch { throw ValidationError("\(error)") }
            }
            let perNode = devices ?? profile.interconnect.devicesPerNode.value
            let world = try SimulationLimits.world(devicesPerNode: perNode, nodes: nodes)
            let plan = try ParallelPlan.resolve(world: world, model: cfg, tp: tp, dp: dp, ep: ep, pp: pp, devicesPerNode: perNode)
            let req = SimulationRequest(model: cfg, profile: profile, devicesPerNode: perNode, nodes: nodes, plan: plan, phase: ph,
                                        batch: batch ?? (ph == .decode ? 16 : 1), context: context, weights: ws, groupSize: groupSize,
                                        routing: routingModel, seed: seed, reserveBytes: reserveGb * 1024 * 1024 * 1024,
                                        recordTrace: trace != nil)
            if axes.isEmpty {
                reports.append(try ModelSimulator.run(req))
            } else {
                var fixed: [String: Int] = [:]
                for (k, v) in [("tp", tp), ("dp", dp), ("ep", ep), ("pp", pp)] { if let v { fixed[k] = v } }
                sweepResults.append(PlanSweep.run(base: req, axes: axes, fixed: fixed))
            }
        }
        if !axes.isEmpty {
            if json {
                let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(sweepResults), as: UTF8.self))
            } else {
                print(sweepResults.map(PlanSweep.table).joined(separator: "\n"), terminator: "")
            }
            return
        }
        if json {
            if reports.count == 1 { print(String(decoding: try reports[0].json(), as: UTF8.self)) } else {
                let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(reports), as: UTF8.self))
            }
        } else if reports.count == 1 {
            print(reports[0].text(), terminator: "")
        } else {
            print(PlanSweep.comparison(reports), terminator: "")
        }
        if let plot, let r = reports.first { try files.stage(plot, Data(r.svg().utf8)) }
        if let trace, let r = reports.first { try files.stage(trace, try r.chromeTrace()) }
        try files.commit()
    }
}
