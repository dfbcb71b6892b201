import ArgumentParser
import Foundation
import Polychip
import PolychipBench

extension BenchClock: ExpressibleByArgument {}

/// `polychip bench`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time kernels: measured on real devices, modeled on simulated ones, side by side.",
        discussion: """
        With no options: the headline kernels at realistic LLM shapes on every real device (measured) \
        and every bundled device profile (modeled). Each measured row is warmed up, repeated for at \
        least --min-time seconds, and reported as a median with its min–max; every measured row's \
        timed call is verified at full size against the reference (Freivalds' check for GEMMs, \
        sampled rows for attention, DSA, the router and the MoE layer, a full check otherwise; the \
        method is in the 'verified' column); modeled rows are checked at a reduced size, said so.

        --validate measures the kernels on a real device (default: cpu) and models them on that \
        device's calibrated profile (--profile FILE from `polychip calibrate`, or calibrated on the fly), \
        then prints each kernel's error (modeled/measured − 1) and the median absolute error. \
        --set overrides apply to that profile too.
        """)

    @Option(name: .customLong("device"), help: "Device selector (repeatable). Default: every real device and bundled profile (--validate: cpu).")
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
    @Option(help: ArgumentHelp("Write an SVG roofline chart and a bar chart of measured vs modeled times.", valueName: "FILE.svg"))
    var plot: String?
    @Option(help: ArgumentHelp("Write a Chrome trace-event JSON of every kernel call (Perfetto, chrome://tracing).", valueName: "FILE.json"))
    var trace: String?
    @Flag(name: .customLong("validate"), help: "Model accuracy: measured on the device vs modeled on its calibrated profile (--profile FILE, or calibrated now).")
    var validateModel = false
    @Option(help: ArgumentHelp("With --validate: compare against wall time, or CPU time per worker thread (the time on an idle host; cpu-backend devices on shared machines), and calibrate on the same clock.", valueName: "wall|cpu"))
    var clock: BenchClock = .wall
    @Flag(help: .hidden) var quickCalibration = false

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

    @OptionGroup(title: "Process meshes (MPI)") var mesh: MeshOptions

    @OptionGroup(title: "Collectives (with --mesh mpi)") var collectiveOptions: CollectiveBenchOptions

    @OptionGroup(title: "Output files") var output: OutputOptions

    func validate() throws {
        if json && csv { throw ValidationError("choose one of --json and --csv") }
        guard minTime > 0, minTime.isFinite else { throw ValidationError("--min-time must be > 0") }
        if clock != .wall && !validateModel { throw ValidationError("--clock is used with --validate") }
        if validateModel && simulation.profiles.count > 1 {
            throw ValidationError("--validate takes one --profile: the calibrated profile of the measured device")
        }
    }

    func run() throws {
        if mesh.isMPI || !collectiveOptions.collectives.isEmpty { return try runCollectives(files: try output.files([("--plot", plot)])) }
        guard let dt = DType(rawValue: dtype), dt.isFloat else { throw ValidationError("--dtype must be f32, f16 or bf16") }
        let workloads = try selectedWorkloads(dt)
        let files = try outputFiles()
        if validateModel { return try runValidation(workloads, dtype: dt, files: files) }
        let devs = try simulation.resolve(devices, fallback: Polychip.benchDefaultSelectors)
        guard !devs.isEmpty else { throw ValidationError("no devices to benchmark") }
        var rows: [BenchResult] = []
        let options = BenchOptions(minTime: minTime, verify: !noVerify)
        let queues = devs.map { Queue(device: $0, label: $0.supportsDryRun ? "compute (modeled)" : "compute") }
        let total = workloads.count * devs.count
        var n = 0
        for w in workloads {
            for (d, q) in zip(devs, queues) {
                n += 1
                eprint("[\(n)/\(total)] \(w.kind.name) \(w.label) \(w.dtype) on \(d.id)…")
                do { rows.append(try BenchRunner.run(w, on: d, options: options, queue: q)) } catch {
                    eprint("  skipped: \(error)")
                }
            }
        }
        try writeArtifacts(files, rows: rows, roofs: devs.map { Roof.of($0, dtype: dt) }, queues: queues, title: "polychip bench")
        if json { print(String(decoding: try BenchReport.json(rows), as: UTF8.self)) }
        else if csv { print(BenchReport.csv(rows), terminator: "") }
        else { print(BenchReport.table(rows)) }
    }

    /// `--validate`: measured vs modeled on the calibrated profile, per device.
    func runValidation(_ workloads: [Workload], dtype: DType, files: OutputFiles) throws {
        // The --profile file is the model of the measured device here, not a device of its own.
        let devs = try simulation.registry.resolve(devices.isEmpty ? ["cpu"] : devices, fallback: [])
        if clock == .cpu, let bad = devs.first(where: { !BenchClock.cpuClockApplies(to: $0) }) {
            throw ValidationError("--clock cpu is for cpu-backend devices; \(bad.id) is not one")
        }
        if let bad = devs.first(where: { $0.supportsDryRun || $0.info.kind == .reference }) {
            throw ValidationError("--validate needs a real measured device; \(bad.id) is \(bad.supportsDryRun ? "simulated" : "the reference oracle")")
        }
        if !simulation.profiles.isEmpty && devs.count > 1 { throw ValidationError("--profile describes one device; name one --device") }
        var reports: [ValidationReport] = []
        var allRows: [BenchResult] = []
        var roofs: [Roof] = []
        var queues: [Queue] = []
        for dev in devs {
            let (prof, origin) = try calibratedProfile(for: dev)
            let run = try ModelValidationRun.run(workloads, on: dev, profile: prof, origin: origin, dtype: dtype,
                                                 minTime: minTime, verify: !noVerify, clock: clock, progress: { eprint($0) })
            reports.append(run.report)
            allRows += run.results
            roofs += run.roofs
            queues += run.queues
        }
        try writeArtifacts(files, rows: allRows, roofs: roofs, queues: queues, title: "polychip bench --validate")
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try enc.encode(reports), as: UTF8.self))
        } else if csv {
            for (i, r) in reports.enumerated() {
                let text = r.csv()
                print(i == 0 ? text : String(text.drop(while: { $0 != "\n" }).dropFirst()), terminator: "")
            }
        } else {
            print(reports.map { $0.table() }.joined(separator: "\n\n"))
        }
    }

    /// The `--profile` file, or a profile calibrated now; `--set` overrides applied.
    func calibratedProfile(for dev: any Device) throws -> (DeviceProfile, String) {
        if let profile = simulation.profiles.first {
            return (try SimulatedBackend.loadProfile(profile, settings: simulation.settings), profile)
        }
        eprint("calibrating \(dev.id) (pass --profile FILE from `polychip calibrate --out FILE` to skip)…")
        var plan = quickCalibration ? CalibrationPlan.quick(for: dev) : CalibrationPlan.standard(for: dev)
        // Only the dtypes this run models (f32 first: the profile's curves are f32's).
        plan.dtypes = plan.dtypes.filter { $0 == .f32 || $0.rawValue == dtype }
        plan.clock = clock
        let result = try Calibrator.calibrate(dev, plan: plan, command: "polychip bench --validate --device \(dev.id) --clock \(clock.rawValue) (calibrated on the fly)",
                                              progress: { eprint($0) })
        eprint(result.summary())
        var p = try result.profile(name: CalibrateCommand.defaultName(for: dev))
        if !simulation.settings.isEmpty {
            do { p = try p.applying(settings: simulation.settings) } catch { throw ValidationError("--set: \(error)") }
        }
        return (p, "a profile calibrated now (\(p.name))")
    }

    /// `--plot` and `--trace`, checked before the benchmarks run.
    func outputFiles() throws -> OutputFiles { try output.files([("--plot", plot), ("--trace", trace)]) }

    /// Writes `--plot` and `--trace` (both or neither).
    func writeArtifacts(_ files: OutputFiles, rows: [BenchResult], roofs: [Roof], queues: [Queue], title: String) throws {
        if let plot { try files.stage(plot, Data(BenchPlot.svg(rows: rows, roofs: roofs, title: title).utf8)) }
        if let trace {
            let data = try ChromeTrace.encode(ChromeTrace.tracks(queues: queues.filter { !$0.records.isEmpty }),
                                              metadata: ["command": title, "dtype": dtype])
            try files.stage(trace, data)
        }
        try files.commit()
        for p in [plot, trace].compactMap({ $0 }) { eprint("wrote \(p)") }
    }

    func selectedWorkloads(_ dt: DType) throws -> [Workload] {
        var dims: [String: Int] = [:]
        if let shape {
            guard !kernels.isEmpty else { throw ValidationError("--shape needs --kernel") }
            for part in shape.split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, !kv[0].isEmpty, let v = Int(kv[1]), v >= 0 else {
                    throw ValidationError("--shape expects NAME=VALUE pairs separated by commas, got \(Quoted(part))")
                }
                dims[kv[0]] = v
            }
        }
        if kernels.isEmpty { return try Workloads.defaultSuite(dtype: dt) }
        return try parseKernels(kernels).map { k in
            let known = Set(Workloads.defaults(k).keys)
            if let bad = dims.keys.first(where: { !known.contains($0) }) {
                throw ValidationError("\(k.name) has no dimension \(Quoted(bad)); it takes \(known.sorted().joined(separator: ", "))")
            }
            return try Workloads.make(k, dims, k == .topK ? .f32 : dt)
        }
    }
}
