import ArgumentParser
import Foundation
import Polychip
import PolychipBench

/// `polychip calibrate [--out FILE] [--device SEL] [--name NAME]`.
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Micro-benchmark a real device and write its profile in the bundled schema.",
        discussion: """
        Runs the device's own kernels: square GEMMs per float dtype (matrix-unit peak and ramp-up), \
        silu/swiglu on cache-resident rows (vector unit), scale/add streaming past the caches (memory \
        bandwidth), INT4 GEMVs (read-only bandwidth), tiny kernels (launch overhead), host-to-device writes \
        (host link) and one or two kernels per kernel class at shapes of their own (the class's achieved \
        fraction of the roofline: attention, sparse attention, top-k, router, rms-norm, softmax, \
        quantize-int4), fits the time model's curves and writes a profile that `--device sim:FILE.json` and \
        `polychip bench --validate --profile FILE.json` accept. Every figure's source records the date \
        and this command.
        """)

    @Option(help: ArgumentHelp("Write the profile here (default: print it).", valueName: "FILE.json"))
    var out: String?

    @Option(help: "The device to calibrate: a real device selector (cpu, cpu:threads=1, opencl:N).")
    var device: String = "cpu"

    @Option(help: "Profile name (sim:NAME); default: the --out file's name, or calibrated-BACKEND.")
    var name: String?

    @Flag(help: "Small sizes and short runs (seconds; for tests, not a faithful profile).") var quick = false

    @Option(help: "Minimum measured time per point, seconds (default: the plan's).") var minTime: Double?

    @Option(help: ArgumentHelp("Fit to wall time, or to CPU time per worker thread (the time on an idle host; cpu-backend devices on shared machines).", valueName: "wall|cpu"))
    var clock: BenchClock = .wall

    @OptionGroup(title: "Interconnect (MPI)") var interconnectOptions: InterconnectCalibrationOptions

    @OptionGroup(title: "Process meshes (MPI)") var mesh: MeshOptions

    func validate() throws {
        if let minTime, !(minTime > 0 && minTime.isFinite) { throw ValidationError("--min-time must be > 0") }
        if let name, !Self.isValidName(name) {
            throw ValidationError("--name must be 1…64 ASCII letters, digits, '.', '_' or '-', got \(Quoted(name))")
        }
        if let out, !out.hasSuffix(".json") { throw ValidationError("--out must end in .json (sim:FILE selects files by that suffix)") }
    }

    @OptionGroup(title: "Output files") var output: OutputOptions

    func run() throws {
        let files = try output.files([("--out", out)])
        if interconnectOptions.interconnect { return try runInterconnect(files: files) }
        let dev = try Polychip.registry.device(device)
        var plan = quick ? CalibrationPlan.quick(for: dev) : CalibrationPlan.standard(for: dev)
        if let minTime { plan.minTime = minTime }
        plan.clock = clock
        var command = "polychip calibrate --device \(device)"
        if let out { command += " --out \(URL(fileURLWithPath: out).lastPathComponent)" }
        if quick { command += " --quick" }
        if let minTime { command += " --min-time \(minTime)" }
        if clock != .wall { command += " --clock \(clock.rawValue)" }
        eprint("calibrating \(dev.id) (\(dev.info.name))…")
        let result = try Calibrator.calibrate(dev, plan: plan, command: command, progress: { eprint($0) })
        let profileName = name ?? out.map(Self.name(fromPath:)) ?? Self.defaultName(for: dev)
        let profile = try result.profile(name: profileName)
        let data: Data
        do { data = try profile.encoded() } catch {
            throw PolychipError.malformedFile(path: out ?? "<stdout>", field: error.path ?? "", reason: error.description)
        }
        eprint(result.summary())
        if let out {
            try files.stage(out, data)
            try files.commit()
            eprint("wrote \(out): use --device sim:\(out) or bench --validate --profile \(out)")
        } else {
            print(String(decoding: data, as: UTF8.self))
        }
    }

    /// `calibrated-cpu` for `cpu:0`.
    static func defaultName(for device: any Device) -> String {
        let backend = device.id.split(separator: ":").first.map(String.init) ?? "device"
        return sanitize("calibrated-\(backend)")
    }

    /// The file's base name without `.json`, reduced to the allowed characters.
    static func name(fromPath path: String) -> String {
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let s = sanitize(base)
        return s.isEmpty ? "calibrated" : s
    }

    static func sanitize(_ s: String) -> String {
        String(s.unicodeScalars.map { isAllowed($0) ? Character($0) : "-" })
    }

    static func isAllowed(_ u: Unicode.Scalar) -> Bool {
        u.isASCII && (CharacterSet.alphanumerics.contains(u) || "._-".unicodeScalars.contains(u))
    }

    static func isValidName(_ s: String) -> Bool { !s.isEmpty && s.count <= 64 && s.unicodeScalars.allSatisfy(isAllowed) }
}
