import ArgumentParser
import Foundation
import Polychip
import PolychipConformance

/// `conform --isolate`, `--case-timeout`, `-j`: cases in worker processes.
struct IsolationFlags: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Run each case in a worker process, so a crash or a hang becomes a result (crashed, timeout) and the run goes on. Default: on for plugin devices.")
    var isolate: Bool?

    @Option(name: .customLong("case-timeout"), help: ArgumentHelp("With isolation: seconds one case may take before its worker is killed (status timeout).", valueName: "seconds"))
    var caseTimeout: Double = 300

    @Option(name: [.customShort("j"), .customLong("jobs")], help: "Worker processes running cases at once (1…256; more than 1 implies --isolate). Results and their order do not depend on it.")
    var jobs: Int = 1

    func validate() throws {
        guard (1...256).contains(jobs) else { throw ValidationError("-j must be in 1…256, got \(jobs)") }
        guard caseTimeout > 0, caseTimeout <= 86_400 else { throw ValidationError("--case-timeout must be in (0, 86400] seconds, got \(caseTimeout)") }
        if jobs > 1 && isolate == false { throw ValidationError("-j \(jobs) runs cases in worker processes; drop --no-isolate") }
    }

    /// Whether `device`'s cases run in workers.
    func isolates(_ device: any Device) -> Bool { isolate ?? (jobs > 1 || device is PluginDevice) }

    /// The worker executable: `POLYCHIP_WORKER_EXECUTABLE`, else this `polychip`, else a
    /// `polychip` beside the running program (tests drive the CLI in-process from a bundle that
    /// sits next to the built binary).
    static func workerExecutable() throws -> URL {
        if let env = ProcessInfo.processInfo.environment["POLYCHIP_WORKER_EXECUTABLE"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        guard let me = Bundle.main.executableURL else {
            throw PolychipError.io(path: "polychip", reason: "cannot locate the polychip executable for --isolate; set POLYCHIP_WORKER_EXECUTABLE")
        }
        if me.lastPathComponent == "polychip" { return me }
        var dir = me.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("polychip")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw PolychipError.io(path: me.path, reason: "no polychip executable beside it for --isolate; set POLYCHIP_WORKER_EXECUTABLE")
    }

    /// The cases of `options` on `device`, in this process or in workers.
    func run(on device: any Device, options: ConformanceOptions, simulation: SimulationOptions, verbose: Bool) throws -> [CaseResult] {
        let expected = ExpectedFailures(Polychip.expectedFailures(for: device))
        let progress: @Sendable (String) -> Void = { line in if verbose { eprint("  " + line) } }
        guard isolates(device) else { return ConformanceRunner.run(on: device, options: options, expected: expected, progress: progress) }
        var args = ["conform-worker", "--device", device.id]
        for p in PluginHost.all { args += ["--plugin", p.library.path] }
        for s in simulation.settings { args += ["--set", s] }
        for p in simulation.profiles { args += ["--profile", p] }
        let isolation = IsolationOptions(executable: try Self.workerExecutable(), arguments: args, workers: jobs, caseTimeout: caseTimeout)
        eprint("conform: \(device.id): each case in a worker process (\(jobs) at once, case timeout \(caseTimeout) s)")
        return try IsolatedConformance.run(on: device, options: options, isolation: isolation, expected: expected, progress: progress)
    }
}

/// `polychip conform-worker`: serves conformance cases for `conform --isolate` (not for direct use).
struct ConformWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conform-worker", abstract: "Serve conformance cases on standard input (used by conform --isolate).",
        shouldDisplay: false)

    @Option(name: .customLong("device"), help: "The device selector.")
    var device: String

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

    func run() throws {
        CaseWorker.serve(device: try simulation.registry.device(device))
    }
}
