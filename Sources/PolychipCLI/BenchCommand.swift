import ArgumentParser
import Foundation
import Polychip
import PolychipBench

/// `polychip bench`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time kernels: measured on real devices, modeled on simulated ones, side by side.",
        discussion: """
        With no options: the headline kernels at realistic LLM shapes on every real device (measured) \
        and every bundled device profile (modeled). Each measured row is warmed up, repeated for at \
        least --min-time seconds, and reported as a median with its min–max; every row is verified \
        against the reference (at a reduced size, said so in the 'verified' column).
        """)

    @Option(name: .customLong("device"), help: "Device selector (repeatable). Default: every real device and bundled profile.")
    var devices: [String] = []

    @Option(name: .customLong("kernel"), help: "Kernel name (repeatable). Default: the headline suite.")
    var kernels: [String] = []

    @Option(help: "Dimensions for --kernel, e.g. \"M=1,N=4096,K=14336\".")
    var shape: String?

    @Option(help: "Activation dtype: f32, f16 or bf16.")
    var dtype: String = "f32"

    @Flag(help: "Print JSON instead of the table.") var json = false
    @Flag(help: "Print CSV instead of the table.") var csv = false
    @Flag(help: "Skip verification against the reference.") var noVerify = false
    @Option(help: "Minimum measured time per row, seconds.") var minTime: Double = 1.0

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

    func validate() throws {
        if json && csv { throw ValidationError("choose one of --json and --csv") }
        guard minTime > 0, minTime.isFinite else { throw ValidationError("--min-time must be > 0") }
    }

    func run() throws {
        guard let dt = DType(rawValue: dtype), dt.isFloat else { throw ValidationError("--dtype must be f32, f16 or bf16") }
        let workloads = try selectedWorkloads(dt)
        let devs = try simulation.resolve(devices, fallback: Polychip.benchDefaultSelectors)
        guard !devs.isEmpty else { throw ValidationError("no devices to benchmark") }
        var rows: [BenchResult] = []
        let options = BenchOptions(minTime: minTime, verify: !noVerify)
        let total = workloads.count * devs.count
        var n = 0
        for w in workloads {
            for d in devs {
                n += 1
                eprint("[\(n)/\(total)] \(w.kind.name) \(w.label) \(w.dtype) on \(d.id)…")
                do { rows.append(try BenchRunner.run(w, on: d, options: options)) } catch {
                    eprint("  skipped: \(error)")
                }
            }
        }
        if json { print(String(decoding: try BenchReport.json(rows), as: UTF8.self)) }
        else if csv { print(BenchReport.csv(rows), terminator: "") }
        else { print(BenchReport.table(rows)) }
    }

    func selectedWorkloads(_ dt: DType) throws -> [Workload] {
        var dims: [String: Int] = [:]
        if let shape {
            guard !kernels.isEmpty else { throw ValidationError("--shape needs --kernel") }
            for part in shape.split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, !kv[0].isEmpty, let v = Int(kv[1]), v >= 0 else {
                    throw ValidationError("--shape expects NAME=VALUE pairs separated by commas, got '\(part)'")
                }
                dims[kv[0]] = v
            }
        }
        if kernels.isEmpty { return try Workloads.defaultSuite(dtype: dt) }
        return try parseKernels(kernels).map { k in
            let known = Set(Workloads.defaults(k).keys)
            if let bad = dims.keys.first(where: { !known.contains($0) }) {
                throw ValidationError("\(k.name) has no dimension '\(bad)'; it takes \(known.sorted().joined(separator: ", "))")
            }
            return try Workloads.make(k, dims, k == .topK ? .f32 : dt)
        }
    }
}
