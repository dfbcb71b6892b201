import ArgumentParser
import Foundation
import Polychip

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

    @OptionGroup var params: KernelParameters

    @OptionGroup(title: "Simulated devices") var simulation: SimulationOptions

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
        let unknown = Set(named.keys).subtracting(op.inputNames)
        guard unknown.isEmpty else {
            throw ValidationError("\(kind.name) takes inputs \(op.inputNames.joined(separator: ", ")); unexpected: \(unknown.sorted().joined(separator: ", "))")
        }
        let ordered = try op.inputNames.map { n -> HostTensor in
            guard let t = named[n] else { throw ValidationError("\(kind.name) needs input '\(n)' (--input \(n)=FILE.npy)") }
            return try Self.adapt(t, for: n, op: op)
        }
        // Outputs are checked before the kernel runs and written together at the end.
        var wanted: [String: String] = [:]
        let files = OutputFiles(replaceReadOnly: output.replaceReadOnly)
        for spec in outputs {
            let (name, path) = try Self.split(spec, "--output")
            guard op.outputNames.contains(name) else {
                throw ValidationError("\(kind.name) outputs \(op.outputNames.joined(separator: ", ")); no \(Quoted(name))")
            }
            guard wanted[name] == nil else { throw ValidationError("output \(Quoted(name)) given twice") }
            try files.declare(path, label: name)
            wanted[name] = path
        }
        let devs = try simulation.registry.resolve(simulation.profileSelectors.isEmpty ? [device] : simulation.profileSelectors, fallback: [])
        guard devs.count == 1, let dev = devs.first else {
            throw ValidationError("run takes one device: give --device or one --profile")
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
    }

    static func split(_ spec: String, _ flag: String) throws -> (String, String) {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
            throw ValidationError("\(flag) expects NAME=FILE.npy, got \(Quoted(spec))")
        }
        return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
    }

    /// Packed INT4 arrives as uint8 (read as int4 already); an i32 file for a float input is an error
    /// the kernel's validation reports. Nothing else to adapt today.
    static func adapt(_ t: HostTensor, for name: String, op: Op) throws -> HostTensor { t }
}

/// Kernel parameters as command-line options (each kernel reads the ones it has).
struct KernelParameters: ParsableArguments {
    @Flag(help: "matmul/grouped-matmul: B is [N,K] (weight layout).") var transposeB = false
    @Option(help: "rms-norm epsilon.") var eps: Double = 1e-6
    @Option(help: "scale: multiplier.") var alpha: Double = 1
    @Option(help: "rope: neox or gptj.") var style: String = "neox"
    @Option(help: "rope: θ base.") var base: Double = 10000
    @Option(help: "rope: rotated dimensions.") var rotaryDim: Int?
    @Flag(help: "attention: bottom-right causal mask.") var causal = false
    @Option(help: "attention/sparse-attention: logit scale (default 1/sqrt(D)).") var scale: Double?
    @Flag(help: "attention/sparse-attention: also output lse.") var lse = false
    @Option(help: "top-k: k.") var k: Int = 1
    @Option(help: "moe-router/moe-layer: softmax or sigmoid.") var scoring: String = "softmax"
    @Option(help: "moe-router/moe-layer: experts per token.") var topK: Int = 1
    @Option(help: "moe-router/moe-layer: expert groups.") var nGroup: Int = 1
    @Option(help: "moe-router/moe-layer: groups kept.") var topkGroup: Int = 1
    @Flag(inversion: .prefixedNo, help: "moe-router/moe-layer: renormalize chosen weights.") var renormalize = true
    @Option(help: "moe-router/moe-layer: routed scaling factor.") var routedScale: Double = 1
    @Option(help: "moe-permute: number of experts.") var numExperts: Int?
    @Option(help: "INT4 kernels: group size.") var groupSize: Int = 32
    @Flag(help: "quantize-int4: asymmetric format (other INT4 kernels infer it from a 'zeros' input).") var asymmetric = false
    @Option(help: "dequantize-int4: output dtype.") var outputDtype: String = "f32"

    func op(_ kind: OpKind, inputs: [String: HostTensor]) throws -> Op {
        func router() throws -> RouterParams {
            guard let s = RouterScoring(rawValue: scoring) else { throw ValidationError("--scoring must be softmax or sigmoid") }
            return RouterParams(scoring: s, topK: topK, nGroup: nGroup, topkGroup: topkGroup, renormalize: renormalize,
                                routedScale: routedScale, hasBias: inputs["bias"] != nil)
        }
        func fmt(_ zerosName: String) -> Int4Format { Int4Format(groupSize: groupSize, symmetric: inputs[zerosName] == nil) }
        switch kind {
        case .matmul: return .matmul(transposeB: transposeB)
        case .groupedMatmul: return .groupedMatmul(transposeB: transposeB)
        case .rmsNorm: return .rmsNorm(eps: eps)
        case .softmax: return .softmax
        case .silu: return .silu
        case .swiglu: return .swiglu
        case .add: return .add
        case .scale: return .scale(alpha: alpha)
        case .rope:
            guard let st = RopeStyle(rawValue: style) else { throw ValidationError("--style must be neox or gptj") }
            return .rope(RopeParams(style: st, base: base, rotaryDim: rotaryDim))
        case .attention: return .attention(AttentionParams(causal: causal, scale: scale, returnLSE: lse))
        case .lightningIndexer: return .lightningIndexer
        case .topK: return .topK(k: k)
        case .sparseAttention: return .sparseAttention(SparseAttentionParams(scale: scale, returnLSE: lse))
        case .moeRouter: return .moeRouter(try router())
        case .moePermute:
            guard let e = numExperts else { throw ValidationError("moe-permute needs --num-experts") }
            return .moePermute(numExperts: e)
        case .moeCombine: return .moeCombine
        case .moeLayer:
            let experts: ExpertFormat = inputs["gate.q"] != nil ? .int4(fmt("gate.zeros")) : .float
            return .moeLayer(MoELayerParams(router: try router(), experts: experts, hasShared: inputs["sharedGate"] != nil))
        case .quantizeInt4: return .quantizeInt4(Int4Format(groupSize: groupSize, symmetric: !asymmetric))
        case .dequantizeInt4:
            guard let d = DType(rawValue: outputDtype), d.isFloat else { throw ValidationError("--output-dtype must be f32, f16 or bf16") }
            return .dequantizeInt4(fmt("zeros"), output: d)
        case .int4Matmul: return .int4Matmul(fmt("zeros"))
        case .int4GroupedMatmul: return .int4GroupedMatmul(fmt("zeros"))
        }
    }
}
