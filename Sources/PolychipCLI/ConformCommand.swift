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

    @Option(name: .customLong("kernel"), help: "Kernel name, kebab-case (repeatable); moe-layer-ep alone runs only the --expert-parallel cases. Default: all kernels and collectives.")
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

    @Option(help: "How many cases: quick (the fixed set), standard (plus the device's tiling boundaries and adversarial cases; what CI runs) or thorough (every boundary value, pairs, every dtype).")
    var level: ConformanceLevel = .standard

    @Option(help: "Rerun with small blocks so multi-block paths run at small shapes: 'small' sets POLYCHIP_CPU_TILING=small and POLYCHIP_OPENCL_TUNING=small (simulated devices compute on the CPU engine).")
    var tiles: String?

    @Option(name: .customLong("expert-parallel"), help: "Also run the expert-parallel MoE layer on meshes of this many ranks of each device (repeatable, e.g. 2, 4, 8).")
    var expertParallel: [Int] = []

    @Option(help: "Expert-parallel MoE: retry a kernel, transfer or collective this many times after a device fault (transient: in place; lost device: on a spare).")
    var retries: Int = 0

    @Option(help: "Expert-parallel MoE: spare devices per mesh that replace a lost device (simulated: the next device indices).")
    var spares: Int = 0

    @Flag(name: .shortAndLong, help: "Print one line per case on stderr.")
    var verbose = false

    @OptionGroup(title: "Crash isolation") var isolation: IsolationFlags

    @OptionGroup(title: "Case bundles") var bundles: BundleFlags

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

    @OptionGroup(title: "Process meshes (MPI)") var mesh: MeshOptions

    @OptionGroup(title: "Output files") var output: OutputOptions

    func run() throws {
        let files = try output.files([("--json", json), ("--junit", junit), ("--markdown", markdown)])
        let maxRanks = ExpertParallelConformance.maxRanks
        for p in expertParallel where p < 1 || p > maxRanks {
            throw ValidationError("--expert-parallel must be a rank count in 1…\(maxRanks), got \(p)")
        }
        guard (0...RetryPolicy.maxRetries).contains(retries) else {
            throw ValidationError("--retries must be in 0…\(RetryPolicy.maxRetries), got \(retries)")
        }
        guard (0...maxRanks).contains(spares) else { throw ValidationError("--spares must be in 0…\(maxRanks), got \(spares)") }
        if let tiles {
            guard tiles == "small" else { throw ValidationError("--tiles takes 'small', got '\(tiles.prefix(64))'") }
            // Before any device opens: the CPU and OpenCL backends read these when a device is made.
            setenv("POLYCHIP_CPU_TILING", "small", 1)
            let opencl = ProcessInfo.processInfo.environment["POLYCHIP_OPENCL_TUNING"].map { "small," + $0 } ?? "small"
            setenv("POLYCHIP_OPENCL_TUNING", opencl, 1)
        }
        if mesh.isMPI { return try runOnMPIMesh(files: files) }
        let ep = ExpertParallelConformance.kernelName
        let epOnly = !kernels.isEmpty && kernels.allSatisfy { $0 == ep }
        if epOnly && expertParallel.isEmpty { throw ValidationError("--kernel \(ep) needs --expert-parallel P") }
        let kernelNames = kernels.filter { $0 != ep }
        let kinds = kernelNames.isEmpty ? nil : try parseKernels(kernelNames)
        let dts = try dtypes.map { s -> DType in
            guard let d = DType(rawValue: s), d.isFloat else { throw ValidationError("unknown dtype \(Quoted(s)); use f32, f16 or bf16") }
            return d
        }
        let options = ConformanceOptions(kernels: kinds, dtypes: dts.isEmpty ? nil : dts, seed: seed, level: level)
        if let grade = bundles.grade { return try gradeBundle(grade, files: files) }
        let devs = try simulation.resolve(devices, fallback: ["reference"])
        if let export = bundles.export { return try exportBundle(export, options: options, devices: devs) }
        var results: [CaseResult] = []
        for d in devs where !epOnly {
            eprint("conform: \(d.id) (\(d.info.name)), level \(level)")
            results += try isolation.run(on: d, options: options, simulation: simulation, verbose: verbose)
        }
        if !expertParallel.isEmpty {
            let prepared = try ExpertParallelConformance.prepare(dtypes: dts.isEmpty ? DType.floats : dts, seed: seed)
            for d in devs {
                for p in expertParallel {
                    let (mesh, spareDevices) = try Mesh.replicating(d, ranks: p, spares: spares)
                    eprint("conform: expert-parallel MoE on \(p) × \(d.id)")
                    let verbose = self.verbose
                    let log = RetryLog()
                    for r in ExpertParallelConformance.run(mesh: mesh, prepared: prepared, retry: .retries(retries),
                                                           spares: spareDevices, log: log) {
                        if verbose { eprint("  \(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape) on \(r.device)\(r.message.map { ": " + $0 } ?? "")") }
                        results.append(r)
                    }
                    if !log.attempts.isEmpty {
                        if verbose { for a in log.attempts { eprint("  fault: \(a)") } }
                        eprint("conform: expert-parallel MoE on \(p) × \(d.id): \(log.summary)")
                    }
                }
            }
        }
        try writeReports(ConformanceReport(results: results), files: files)
    }

    /// The console matrix, then the files asked for (all or nothing), from the process that
    /// reports (`lead`: every process but an MPI rank other than 0); exit status 1 when
    /// anything failed, on every process.
    func writeReports(_ report: ConformanceReport, files: OutputFiles, lead: Bool = true) throws {
        if lead {
            print(report.consoleMatrix())
            if let json { try files.stage(json, try report.json()) }
            if let junit { try files.stage(junit, Data(report.junitXML().utf8)) }
            if let markdown { try files.stage(markdown, Data(report.markdownMatrix().utf8)) }
            try files.commit()
        }
        if report.failed { throw ExitCode(1) }
    }
}

extension ConformanceLevel: ExpressibleByArgument {}
