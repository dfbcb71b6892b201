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

    @OptionGroup var params: KernelParameters

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
        let op = try params.op(kind, inputs: named)
        for flag in params.ignored(by: kind) { eprint("run: warning: \(flag) does not apply to \(kind.name); ignored") }
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

/// Kernel parameters as command-line options (each kernel reads the ones it has; a given
/// option the kernel does not read is reported, not silently ignored). Numeric options take
/// negative values after a space (`--routed-scale -1`).
struct KernelParameters: ParsableArguments {
    @Flag(help: "matmul/grouped-matmul: B is [N,K] (weight layout).") var transposeB = false
    @Option(parsing: .unconditional, help: "rms-norm epsilon (default 1e-6).") var eps: Double?
    @Option(parsing: .unconditional, help: "scale: multiplier (default 1).") var alpha: Double?
    @Option(help: "rope: neox or gptj (default neox).") var style: String?
    @Option(parsing: .unconditional, help: "rope: θ base (default 10000).") var base: Double?
    @Option(parsing: .unconditional, help: "rope: rotated dimensions.") var rotaryDim: Int?
    @Flag(help: "attention: bottom-right causal mask.") var causal = false
    @Option(parsing: .unconditional, help: "attention/sparse-attention: logit scale (default 1/sqrt(D)).") var scale: Double?
    @Flag(help: "attention/sparse-attention: also output lse.") var lse = false
    @Option(parsing: .unconditional, help: "top-k: k (default 1).") var k: Int?
    @Option(help: "moe-router/moe-layer: softmax or sigmoid (default softmax).") var scoring: String?
    @Option(parsing: .unconditional, help: "moe-router/moe-layer: experts per token (default 1).") var topK: Int?
    @Option(parsing: .unconditional, help: "moe-router/moe-layer: expert groups (default 1).") var nGroup: Int?
    @Option(parsing: .unconditional, help: "moe-router/moe-layer: groups kept (default 1).") var topkGroup: Int?
    @Flag(inversion: .prefixedNo, help: "moe-router/moe-layer: renormalize chosen weights (default on).") var renormalize: Bool?
    @Option(parsing: .unconditional, help: "moe-router/moe-layer: routed scaling factor (default 1).") var routedScale: Double?
    @Option(parsing: .unconditional, help: "moe-permute: number of experts.") var numExperts: Int?
    @Option(parsing: .unconditional, help: "INT4 kernels: group size (default 32).") var groupSize: Int?
    @Flag(help: "quantize-int4: asymmetric format (other INT4 kernels infer it from a 'zeros' input).") var asymmetric = false
    @Option(help: "dequantize-int4: output dtype (default f32).") var outputDtype: String?

    /// The options given on the command line, by flag name.
    var given: [String] {
        var out: [String] = []
        func add(_ name: String, _ present: Bool) { if present { out.append(name) } }
        add("--transpose-b", transposeB); add("--eps", eps != nil); add("--alpha", alpha != nil); add("--style", style != nil)
        add("--base", base != nil); add("--rotary-dim", rotaryDim != nil); add("--causal", causal); add("--scale", scale != nil)
        add("--lse", lse); add("--k", k != nil); add("--scoring", scoring != nil); add("--top-k", topK != nil)
        add("--n-group", nGroup != nil); add("--topk-group", topkGroup != nil); add("--renormalize", renormalize != nil)
        add("--routed-scale", routedScale != nil); add("--num-experts", numExperts != nil); add("--group-size", groupSize != nil)
        add("--asymmetric", asymmetric); add("--output-dtype", outputDtype != nil)
        return out
    }

    /// The options `kind` reads.
    static func applicable(to kind: OpKind) -> Set<String> {
        let router: Set<String> = ["--scoring", "--top-k", "--n-group", "--topk-group", "--renormalize", "--routed-scale"]
        switch kind {
        case .matmul, .groupedMatmul: return ["--transpose-b"]
        case .rmsNorm: return ["--eps"]
        case .scale: return ["--alpha"]
        case .rope: return ["--style", "--base", "--rotary-dim"]
        case .attention: return ["--causal", "--scale", "--lse"]
        case .sparseAttention: return ["--scale", "--lse"]
        case .topK: return ["--k"]
        case .moeRouter: return router
        case .moeLayer: return router.union(["--group-size"])
        case .moePermute: return ["--num-experts"]
        case .quantizeInt4: return ["--group-size", "--asymmetric"]
        case .dequantizeInt4: return ["--group-size", "--output-dtype"]
        case .int4Matmul, .int4GroupedMatmul: return ["--group-size"]
        case .softmax, .silu, .swiglu, .add, .lightningIndexer, .moeCombine: return []
        }
    }

    /// The given options `kind` does not read (reported by `run` as ignored).
    func ignored(by kind: OpKind) -> [String] { given.filter { !Self.applicable(to: kind).contains($0) } }

    func op(_ kind: OpKind, inputs: [String: HostTensor]) throws -> Op {
        func router() throws -> RouterParams {
            let name = scoring ?? "softmax"
            guard let s = RouterScoring(rawValue: name) else { throw ValidationError("--scoring must be softmax or sigmoid, got \(Quoted(name))") }
            return RouterParams(scoring: s, topK: topK ?? 1, nGroup: nGroup ?? 1, topkGroup: topkGroup ?? 1, renormalize: renormalize ?? true,
                                routedScale: routedScale ?? 1, hasBias: inputs["bias"] != nil)
        }
        let g = groupSize ?? 32
        func fmt(_ zerosName: String) -> Int4Format { Int4Format(groupSize: g, symmetric: inputs[zerosName] == nil) }
        switch kind {
        case .matmul: return .matmul(transposeB: transposeB)
        case .groupedMatmul: return .groupedMatmul(transposeB: transposeB)
        case .rmsNorm: return .rmsNorm(eps: eps ?? 1e-6)
        case .softmax: return .softmax
        case .silu: return .silu
        case .swiglu: return .swiglu
        case .add: return .add
        case .scale: return .scale(alpha: alpha ?? 1)
        case .rope:
            let name = style ?? "neox"
            guard let st = RopeStyle(rawValue: name) else { throw ValidationError("--style must be neox or gptj, got \(Quoted(name))") }
            return .rope(RopeParams(style: st, base: base ?? 10000, rotaryDim: rotaryDim))
        case .attention: return .attention(AttentionParams(causal: causal, scale: scale, returnLSE: lse))
        case .lightningIndexer: return .lightningIndexer
        case .topK: return .topK(k: k ?? 1)
        case .sparseAttention: return .sparseAttention(SparseAttentionParams(scale: scale, returnLSE: lse))
        case .moeRouter: return .moeRouter(try router())
        case .moePermute:
            guard let e = numExperts else { throw ValidationError("moe-permute needs --num-experts") }
            return .moePermute(numExperts: e)
        case .moeCombine: return .moeCombine
        case .moeLayer:
            let experts: ExpertFormat = inputs["gate.q"] != nil ? .int4(fmt("gate.zeros")) : .float
            return .moeLayer(MoELayerParams(router: try router(), experts: experts, hasShared: inputs["sharedGate"] != nil))
        case .quantizeInt4: return .quantizeInt4(Int4Format(groupSize: g, symmetric: !asymmetric))
        case .dequantizeInt4:
            let name = outputDtype ?? "f32"
            guard let d = DType(rawValue: name), d.isFloat else { throw ValidationError("--output-dtype must be f32, f16 or bf16, got \(Quoted(name))") }
            return .dequantizeInt4(fmt("zeros"), output: d)
        case .int4Matmul: return .int4Matmul(fmt("zeros"))
        case .int4GroupedMatmul: return .int4GroupedMatmul(fmt("zeros"))
        }
    }
}
