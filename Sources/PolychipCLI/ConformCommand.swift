import ArgumentParser
import Foundation
import Polychip
import PolychipConformance

/// `polychip conform`.
struct ConformCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conform",
        abstract: "Check kernels on devices against the reference backend.",
        discussion: "Exit status is non-zero iff any case fails or passes unexpectedly.")

    @Option(name: .customLong("device"), help: "Device selector BACKEND[:PROFILE][:INDEX] (repeatable). Default: POLYCHIP_DEVICES or reference.")
    var devices: [String] = []

    @Option(name: .customLong("kernel"), help: "Kernel name, kebab-case (repeatable). Default: all kernels and collectives.")
    var kernels: [String] = []

    @Option(name: .customLong("dtype"), help: "Restrict to a dtype: f32, f16 or bf16 (repeatable).")
    var dtypes: [String] = []

    @Option(help: "Write one JSON object per case to this file.")
    var json: String?

    @Option(help: "Write JUnit XML to this file.")
    var junit: String?

    @Option(help: "Write a markdown support matrix to this file.")
    var markdown: String?

    @Option(help: "Base seed for the random inputs.")
    var seed: UInt64 = 0x5EED

    @Option(name: .customLong("expert-parallel"), help: "Also run the expert-parallel MoE layer on meshes of this many ranks of each device (repeatable, e.g. 2, 4, 8).")
    var expertParallel: [Int] = []

    @Flag(name: .shortAndLong, help: "Print one line per case on stderr.")
    var verbose = false

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

    func run() throws {
        let kinds = kernels.isEmpty ? nil : try parseKernels(kernels)
        let dts = try dtypes.map { s -> DType in
            guard let d = DType(rawValue: s), d.isFloat else { throw ValidationError("unknown dtype '\(s)'; use f32, f16 or bf16") }
            return d
        }
        let devs = try simulation.resolve(devices, fallback: ["reference"])
        let options = ConformanceOptions(kernels: kinds, dtypes: dts.isEmpty ? nil : dts, seed: seed)
        var results: [CaseResult] = []
        for d in devs {
            eprint("conform: \(d.id) (\(d.info.name))")
            let verbose = self.verbose
            results += ConformanceRunner.run(on: d, options: options, expected: ExpectedFailures(Polychip.expectedFailures(for: d))) { line in
                if verbose { eprint("  " + line) }
            }
        }
        if !expertParallel.isEmpty {
            let prepared = try ExpertParallelConformance.prepare(dtypes: dts.isEmpty ? DType.floats : dts, seed: seed)
            for d in devs {
                for p in expertParallel {
                    guard p >= 1 else { throw ValidationError("--expert-parallel needs a rank count ≥ 1") }
                    let mesh: Mesh
                    if let sim = d as? SimulatedDevice {
                        mesh = try SimulatedBackend.mesh(profile: sim.profile.origin.hasSuffix(".json") ? sim.profile.origin : sim.profile.name, count: p)
                    } else {
                        mesh = try Mesh(devices: Array(repeating: d, count: p))
                    }
                    eprint("conform: expert-parallel MoE on \(p) × \(d.id)")
                    let verbose = self.verbose
                    for r in ExpertParallelConformance.run(mesh: mesh, prepared: prepared) {
                        if verbose { eprint("  \(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape) on \(r.device)") }
                        results.append(r)
                    }
                }
            }
        }
        let report = ConformanceReport(results: results)
        print(report.consoleMatrix())
        if let json { try writeFile(json, try report.json()) }
        if let junit { try writeFile(junit, Data(report.junitXML().utf8)) }
        if let markdown { try writeFile(markdown, Data(report.markdownMatrix().utf8)) }
        if report.failed { throw ExitCode(1) }
    }
}
