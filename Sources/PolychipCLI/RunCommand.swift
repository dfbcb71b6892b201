import ArgumentParser
import Foundation
import Polychip
import PolychipConformance

/// `polychip run KERNEL --device SEL --input NAME=FILE.npy ... --output NAME=FILE.npy`.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one kernel on NumPy .npy inputs.",
        discussion: """
        Inputs are matched to the kernel's input names (see docs/kernels.md). Optional inputs select \
        variants: 'bias' turns on the router's selection bias, 'zeros' the asymmetric INT4 format, \
        'gate.q' INT4 experts and 'sharedGate' the shared expert of moe-layer. INT4 tensors are \
        packed uint8 arrays with the last dimension halved; bf16 arrays are uint16 bit patterns.

        Kernel parameters (from the kernel descriptors; a parameter of another kernel is reported \
        and ignored):
        \(KernelOptions.help)

        --retries N runs the kernel again after a transient device fault (kernel launch failure, \
        memory error, timeout), and after a lost device on the next --fallback-device; each attempt \
        uploads the inputs afresh, and every failed attempt is listed on stderr. Simulated faults \
        come from the profile or --set, e.g. --set faults.seed=7 \
        --set faults.kernelLaunchFailure.probability=0.5.
        """)

    @Argument(help: "Kernel name, kebab-case (e.g. attention, int4-matmul, moe-router).")
    var kernel: String

    @Option(help: "Device selector.")
    var device: String = "reference"

    @Option(name: .customLong("input"), help: "NAME=FILE.npy (repeatable).")
    var inputs: [String] = []

    @Option(name: .customLong("output"), help: "NAME=FILE.npy to write an output (repeatable). Unnamed outputs are summarized.")
    var outputs: [String] = []

    @Option(help: "Convert float inputs to this dtype before running (f32, f16, bf16).")
    var dtype: String?

    @Option(help: "Retry a kernel this many times after a device fault (transient: same device; lost device: next --fallback-device).")
    var retries: Int = 0

    @Option(name: .customLong("fallback-device"), help: "Device to fail over to when the device is lost (repeatable, in order).")
    var fallbackDevices: [String] = []

    @Flag(help: "Check this call's outputs against the reference at full size (Freivalds' check for GEMMs, sampled rows for attention, DSA, the router and the MoE layer, a full check otherwise); exit 1 if they differ.")
    var verify = false

    @Argument(parsing: .allUnrecognized, help: "Kernel parameters, e.g. --eps 1e-5 (listed below).")
    var kernelParameters: [String] = []

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

    @OptionGroup(title: "Process meshes (MPI)") var mesh: MeshOptions

    @OptionGroup(title: "Output files") var output: OutputOptions

    func run() throws {
        guard let kind = OpKind(name: kernel) else {
            throw ValidationError("unknown kernel \(Quoted(kernel)); known: \(OpKind.allCases.map(\.name).joined(separator: ", "))")
        }
        var named: [String: HostTensor] = [:]
        for spec in inputs {
            let (name, path) = try Self.split(spec, "--input")
            guard named[name] == nil else { throw ValidationError("input \(Quoted(name)) given twice") }
            var t = try NumPyFile.read(path: path)
            if let dtype {
                guard let d = DType(rawValue: dtype), d.isFloat else { throw ValidationError("--dtype must be f32, f16 or bf16") }
                if t.desc.dtype.isFloat && !name.hasSuffix("scales") && name != "bias" && name != "weights" { t = try t.converted(to: d) }
            }
            named[name] = t
        }
        let params = try KernelOptions(kernelParameters, for: kind)
        let op = try params.op(kind, inputs: Set(named.keys))
        for flag in params.ignored { eprint("run: warning: \(flag) does not apply to \(kind.name); ignored") }
        let unknown = Set(named.keys).subtracting(op.inputNames)
        guard unknown.isEmpty else {
            throw ValidationError("\(kind.name) takes inputs \(op.inputNames.joined(separator: ", ")); unexpected: \(unknown.sorted().joined(separator: ", "))")
        }
        let ordered = try op.inputNames.map { n -> HostTensor in
            guard let t = named[n] else { throw ValidationError("\(kind.name) needs input '\(n)' (--input \(n)=FILE.npy)") }
            return try Self.adapt(t, for: n, op: op)
        }
        // Outputs are checked before the kernel runs and written together at the end.
        let (wanted, files) = try declaredOutputs(op)
        if mesh.isMPI { return try runOnMPIMesh(op: op, inputs: ordered, wanted: wanted, files: files) }
        let devs = try simulation.registry.resolve(simulation.profileSelectors.isEmpty ? [device] : simulation.profileSelectors, fallback: [])
        guard devs.count == 1, let dev = devs.first else {
            let ids = devs.map(\.id)
            let shown = ids.prefix(8).joined(separator: ", ") + (ids.count > 8 ? ", …" : "")
            let given = simulation.profileSelectors.isEmpty ? "--device \(Quoted(device))" : "the \(simulation.profiles.count) --profile files"
            throw ValidationError("run takes one device; \(given) names \(ids.count) (\(shown))"
                                  + (ids.isEmpty ? "" : ": give one, e.g. --device \(ids[0])"))
        }
        guard (0...RetryPolicy.maxRetries).contains(retries) else {
            throw ValidationError("--retries must be in 0…\(RetryPolicy.maxRetries), got \(retries)")
        }
        let fallbacks = try fallbackDevices.map { sel -> any Device in
            let found = try simulation.registry.resolve([sel], fallback: [])
            guard found.count == 1, let d = found.first else { throw ValidationError("--fallback-device \(sel) names \(found.count) devices; give one") }
            return d
        }
        let executor = RetryingExecutor(primary: dev, fallbacks: fallbacks, policy: .retries(retries))
        let outcome: RetryingExecutor.Outcome
        do { outcome = try executor.run(op, ordered) } catch {
            for a in executor.log.attempts { eprint("run: \(a)") }
            throw error
        }
        for a in executor.log.attempts { eprint("run: \(a)") }
        let record = outcome.record
        let check = verify ? TimedCallVerifier.verify(op, inputs: ordered, outputs: outcome.outputs) : nil
        for (i, name) in op.outputNames.enumerated() {
            if let path = wanted[name] { try files.stage(path, NumPyFile.encode(outcome.outputs[i])) }
        }
        try files.commit()
        for (i, name) in op.outputNames.enumerated() {
            let v = outcome.outputs[i]
            if let path = wanted[name] {
                print("\(name): \(v.desc) → \(path)")
            } else {
                let preview = v.desc.dtype.isFloat ? v.floats.prefix(6).map { String(format: "%.6g", $0) } : v.ints.prefix(6).map(String.init)
                print("\(name): \(v.desc) [\(preview.joined(separator: ", "))\(v.desc.elementCount > 6 ? ", …" : "")]")
            }
        }
        print(String(format: "%@ on %@: %.3f ms (%@), %.3g FLOP, %.3g bytes", kind.name, outcome.device, record.seconds * 1e3,
                     record.source.rawValue, record.flops, record.bytes)
              + (outcome.attempts > 1 ? " (attempt \(outcome.attempts))" : ""))
        if let check {
            print("verified: \(check.summary)")
            if !check.passed { throw ExitCode(1) }
        }
    }

    /// The `--output NAME=FILE` specs by output name, each name checked against `op`'s outputs
    /// and each path declared (checked) in the command's output set.
    func declaredOutputs(_ op: Op) throws -> (wanted: [String: String], files: OutputFiles) {
        var wanted: [String: String] = [:]
        let files = OutputFiles(replaceReadOnly: output.replaceReadOnly)
        for spec in outputs {
            let (name, path) = try Self.split(spec, "--output")
            guard op.outputNames.contains(name) else {
                throw ValidationError("\(op.kind.name) outputs \(op.outputNames.joined(separator: ", ")); no \(Quoted(name))")
            }
            guard wanted[name] == nil else { throw ValidationError("output \(Quoted(name)) given twice") }
            try files.declare(path, label: name)
            wanted[name] = path
        }
        return (wanted, files)
    }

    static func split(_ spec: String, _ flag: String) throws -> (String, String) {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
            throw ValidationError("\(flag) expects NAME=FILE.npy, got \(Quoted(spec))")
        }
        return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
    }

    /// Packed INT4 arrives as uint8 (`|u1`, read as int4 already). A zero-point input
    /// (`zeros`, `gate.zeros`, …) is i8 [.., K/G] of values 0…15; numpy users naturally save
    /// it as uint8, which the reader took for packed int4: such a file is read back as its
    /// bytes, one zero point each (values above 127 cannot be zero points and are refused).
    /// numpy's int64/float64 defaults were already narrowed by the reader (range-checked).
    static func adapt(_ t: HostTensor, for name: String, op: Op) throws -> HostTensor {
        guard t.desc.dtype == .int4, op.zeroPointInputs.contains(where: { $0.name == name }), let last = t.desc.shape.last else { return t }
        let bytes = t.bytes
        guard let bad = bytes.firstIndex(where: { $0 > 127 }) else {
            return try HostTensor(t.desc.shape.dropLast() + [last / 2], int8s: bytes.map { Int8($0) })
        }
        throw ValidationError("input \(Quoted(name)): uint8 zero point \(bytes[bad]) (element \(bad)) is not a zero point 0…15")
    }
}
