// DecoderStack.swift — an executable stack of GLM-5-style decoder layers at reduced,
// configurable dimensions: the steps of LayerGraph (the description `polychip simulate`
// prices at full size) run on real data, one catalog kernel call at a time, through a caller's
// executor (the reference, a device, or a mix of both: `polychip diff`).

import Foundation
import PolychipCore

/// What an executable decoder stack is: a model's dimensions (reduced), how many layers, how
/// many prompt tokens, the activation dtype, the weight scheme and the seed.
public struct DecoderStackConfig: Sendable, Hashable {
    /// The model's dimensions (its `numLayers` is not used; ``layers`` is). Layers below
    /// `firstKDense` get a dense FFN, the rest the MoE FFN.
    public var model: MoEModelConfig
    /// Decoder layers in the stack.
    public var layers: Int
    /// Prompt tokens (one sequence, prefill).
    public var tokens: Int
    /// Activation and float-weight dtype (f32, f16 or bf16).
    public var dtype: DType
    /// Where each weight is stored (``WeightScheme/storage(_:)``; int8 W8A8 runs as float).
    public var weights: WeightScheme
    /// INT4 group size (``WeightScheme/int4Group(k:preferred:)`` where it does not divide K).
    public var groupSize: Int
    /// Seed of the input and of every generated weight.
    public var seed: UInt64

    /// Creates a configuration.
    public init(model: MoEModelConfig = .glm5Small, layers: Int = 4, tokens: Int = 32, dtype: DType = .f32,
                weights: WeightScheme = .w4a8, groupSize: Int = 32, seed: UInt64 = 1) {
        self.model = model; self.layers = layers; self.tokens = tokens; self.dtype = dtype
        self.weights = weights; self.groupSize = groupSize; self.seed = seed
    }

    /// Largest number of elements of all weights together (a bound on host memory: 256 Mi
    /// elements, ~1 GiB in f32).
    public static let maxWeightElements = 1 << 28
    /// Largest prompt (the DSA indexer's score matrix is `tokens²`).
    public static let maxTokens = 4096
    /// Most layers.
    public static let maxLayers = 256
    /// Most bytes of activations one run keeps (every value is kept for the per-op
    /// comparison): 4 GiB, a typed `resourceExhausted` beyond.
    public static let maxActivationBytes = 1 << 32

    /// Checks the configuration; throws `invalidArgument` naming the field.
    public func validate() throws {
        func bad(_ a: String, _ r: String) -> PolychipError { .invalidArgument(kernel: "decoder-stack", argument: a, reason: r) }
        guard (1...Self.maxLayers).contains(layers) else { throw bad("layers", "must be in 1…\(Self.maxLayers), got \(layers)") }
        guard (1...Self.maxTokens).contains(tokens) else { throw bad("tokens", "must be in 1…\(Self.maxTokens), got \(tokens)") }
        guard dtype.isFloat else { throw bad("dtype", "must be f32, f16 or bf16, got \(dtype)") }
        guard groupSize >= 2, groupSize % 2 == 0 else { throw bad("groupSize", "must be even and ≥ 2, got \(groupSize)") }
        try model.validate(path: "<stack config>")
        let c = model
        guard c.qkRopeHeadDim > 0, c.kvLoraRank > 0, c.qkNopeHeadDim > 0 else {
            throw bad("model", "the executable layer needs qk_rope_head_dim, qk_nope_head_dim and kv_lora_rank > 0")
        }
        let elements = try DecoderWeights.plan(self).reduce(0) { total, w in
            let (n, o) = total.addingReportingOverflow(w.desc.elementCount)
            guard !o, n <= Self.maxWeightElements else {
                throw bad("model", "the weights exceed \(Self.maxWeightElements) elements; reduce the dimensions")
            }
            return n
        }
        _ = elements
    }

    /// The block dimensions of the executable stack: one sequence of ``tokens`` in prefill on one device.
    public var dims: LayerDims {
        LayerDims(tokens: tokens, sequences: 1, keys: tokens, heads: model.heads, phase: .prefill, act: dtype,
                  expertWidth: model.moeIntermediate, topK: model.expertsPerToken)
    }

    /// The layer description's steps for layer `layer`.
    public func steps(layer: Int) -> [LayerStep] {
        LayerGraph.attention(model, dims) + (layer < model.firstKDense ? LayerGraph.denseFFN(model, dims) : LayerGraph.moeFFN(model, dims))
    }
}

extension MoEModelConfig {
    /// GLM-5's structure at reduced size, for executable stacks: MLA with low-rank queries and a
    /// latent KV with decoupled RoPE, the DSA indexer (top-16), sigmoid routing over 32 experts
    /// in 4 groups (2 kept; GLM-5 itself uses one group) with a selection bias and routed
    /// scaling 2.5, top-4, one shared expert.
    public static let glm5Small = MoEModelConfig(
        name: "GLM-5 (reduced)", hiddenSize: 256, numLayers: 4, firstKDense: 0, routedExperts: 32, expertsPerToken: 4,
        sharedExperts: 1, moeIntermediate: 64, denseIntermediate: 512, heads: 4, qLoraRank: 128, kvLoraRank: 64,
        qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32, vocabSize: 1024, indexHeads: 4, indexHeadDim: 32,
        indexTopK: 16, nGroup: 4, topkGroup: 2, scoring: .sigmoid, routedScale: 2.5, mtpLayers: 0, maxContext: 4096)
}

/// One catalog kernel call of a stack, in execution order.
public struct StackCall: Sendable, Hashable {
    /// Position among the stack's calls (0-based).
    public var index: Int
    /// Layer (0-based).
    public var layer: Int
    /// The description's step name (`attn.q_a_proj`).
    public var name: String
    /// Layer-type group.
    public var group: String
    /// The kernel with its parameters.
    public var op: Op
    /// Inputs: activations `L<layer>/<value>` or weights `@<weight key>`.
    public var args: [String]
    /// Outputs: `L<layer>/<value>`, in the op's output order.
    public var results: [String]
    /// Row order of the outputs.
    public var layout: RowLayout
    /// The kernel.
    public var kind: OpKind { op.kind }
    /// `L<layer>.<name>`.
    public var id: String { "L\(layer).\(name)" }
}

/// The values one run of a stack produced, by key `L<layer>/<value>`.
public struct StackRun: Sendable {
    /// Every activation (the input is `L0/x`; layer `l`'s output `L<l>/y`).
    public var values: [String: HostTensor]
    /// The last layer's output.
    public var output: HostTensor
}

/// An executable decoder stack: configuration, weights, input and the ordered calls.
public struct DecoderStack: Sendable {
    /// The configuration.
    public let config: DecoderStackConfig
    /// The weights.
    public let weights: DecoderWeights
    /// The input hidden states `[tokens, hidden]`.
    public let input: HostTensor
    /// Kernel calls and glue in execution order.
    public let items: [Item]
    /// The kernel calls in execution order.
    public let calls: [StackCall]

    /// A kernel call or exact data movement.
    public enum Item: Sendable {
        /// A kernel call.
        case call(StackCall)
        /// Glue of a layer, on `L<layer>/…` values.
        case glue(layer: Int, GlueStep)
    }

    /// Builds the stack with seeded weights (or `weights` loaded by the caller) and a seeded
    /// input (or `input`).
    public init(config: DecoderStackConfig, weights: DecoderWeights? = nil, input: HostTensor? = nil) throws {
        try config.validate()
        self.config = config
        let w = try weights ?? DecoderWeights.seeded(config)
        self.weights = w
        let h = config.model.hiddenSize
        if let input {
            guard input.desc == TensorDesc([config.tokens, h], config.dtype) else {
                throw PolychipError.invalidArgument(kernel: "decoder-stack", argument: "input",
                                                    reason: "expected \(TensorDesc([config.tokens, h], config.dtype)), got \(input.desc)")
            }
            self.input = input
        } else {
            var rng = SplitMix64(seed: config.seed ^ 0x1F2E_3D4C_5B6A_7988)
            self.input = try HostTensor([config.tokens, h], config.dtype, floats: (0..<(config.tokens * h)).map { _ in rng.normal() })
        }
        var items: [Item] = [], calls: [StackCall] = []
        for l in 0..<config.layers {
            for step in config.steps(layer: l) {
                func key(_ v: String) -> String { v.hasPrefix("@") ? "@layers.\(l).\(v.dropFirst())" : "L\(l)/\(v)" }
                let call: (Op, [String], [String])?
                switch step.action {
                case .collective:
                    call = nil
                case .glue(let g):
                    items.append(.glue(layer: l, g))
                    call = nil
                case .kernel(let k):
                    guard k.count == 1 else {
                        throw PolychipError.unsupported(kernel: k.op.kind.name, device: "decoder-stack", reason: "\(step.name) repeats per sequence; the stack runs one")
                    }
                    call = (k.op, k.args.map(key), k.results.map(key))
                case .linear(let s):
                    let base = "layers.\(l).\(s.weight)"
                    if let f = w.int4[base] {
                        call = (.int4Matmul(f), [key(s.input)] + Self.int4Args(base, f), [key(s.output)])
                    } else {
                        call = (.matmul(transposeB: true), [key(s.input), "@\(base).weight"], [key(s.output)])
                    }
                case .experts(let s):
                    let base = "layers.\(l).\(s.weight)"
                    if let f = w.int4[base] {
                        call = (.int4GroupedMatmul(f), [key(s.input)] + Self.int4Args(base, f) + [key(s.offsets)], [key(s.output)])
                    } else {
                        call = (.groupedMatmul(transposeB: true), [key(s.input), "@\(base).weight", key(s.offsets)], [key(s.output)])
                    }
                }
                if let (op, args, results) = call {
                    let c = StackCall(index: calls.count, layer: l, name: step.name, group: step.group, op: op, args: args,
                                      results: results, layout: step.layout)
                    calls.append(c)
                    items.append(.call(c))
                }
            }
        }
        self.items = items
        self.calls = calls
    }

    static func int4Args(_ base: String, _ f: Int4Format) -> [String] {
        ["@\(base).q", "@\(base).scales"] + (f.symmetric ? [] : ["@\(base).zeros"])
    }

    /// The value of an argument in `values` (activations) or the weights.
    public func value(_ arg: String, in values: [String: HostTensor]) throws -> HostTensor {
        if arg.hasPrefix("@") {
            guard let t = weights.tensors[String(arg.dropFirst())] else {
                throw PolychipError.invalidArgument(kernel: "decoder-stack", argument: arg, reason: "no such weight")
            }
            return t
        }
        guard let t = values[arg] else {
            throw PolychipError.invalidArgument(kernel: "decoder-stack", argument: arg, reason: "no value of that name has been computed")
        }
        return t
    }

    /// Runs the stack: glue on the host, every kernel call through `execute(call, inputs)`,
    /// which returns the call's outputs (in the op's order, with the validated descriptors).
    public func run(_ execute: (StackCall, [HostTensor]) throws -> [HostTensor]) throws -> StackRun {
        var values: [String: HostTensor] = ["L0/x": input]
        var bytes = input.bytes.count
        func keep(_ name: String, _ v: HostTensor, after step: String) throws {
            bytes += v.bytes.count
            guard bytes <= DecoderStackConfig.maxActivationBytes else {
                throw PolychipError.resourceExhausted(resource: "host memory",
                    reason: "the stack's activations pass \(DecoderStackConfig.maxActivationBytes) bytes at \(step); reduce the layers or tokens")
            }
            values[name] = v
        }
        var layer = 0
        for item in items {
            let l: Int
            switch item { case .call(let c): l = c.layer; case .glue(let gl, _): l = gl }
            if l != layer {
                // Layers are alike: after the first, its size times the layers says whether the run fits.
                if layer == 0, bytes.multipliedReportingOverflow(by: config.layers).partialValue > DecoderStackConfig.maxActivationBytes
                    || bytes.multipliedReportingOverflow(by: config.layers).overflow {
                    throw PolychipError.resourceExhausted(resource: "host memory",
                        reason: "\(config.layers) layers of \(bytes) bytes of activations each exceed \(DecoderStackConfig.maxActivationBytes) bytes; reduce the layers or tokens")
                }
                guard let y = values["L\(layer)/y"] else { throw PolychipError.invalidTensor(reason: "layer \(layer) produced no output") }
                values["L\(l)/x"] = y
                layer = l
            }
            switch item {
            case .glue(let gl, let g):
                let ins = try g.inputs.map { try value("L\(gl)/\($0)", in: values) }
                for (name, v) in zip(g.outputs, try g.apply(ins)) { try keep("L\(gl)/\(name)", v, after: "layer \(gl) glue") }
            case .call(let c):
                let ins = try c.args.map { try value($0, in: values) }
                let expected = try c.op.validate(ins.map(\.desc))
                let outs = try execute(c, ins)
                guard outs.map(\.desc) == expected else {
                    throw PolychipError.invalidTensor(reason: "\(c.id): outputs \(outs.map(\.desc)), expected \(expected)")
                }
                for (name, v) in zip(c.results, outs) { try keep(name, v, after: c.id) }
            }
        }
        guard let out = values["L\(config.layers - 1)/y"] else { throw PolychipError.invalidTensor(reason: "the stack produced no output") }
        return StackRun(values: values, output: out)
    }
}

extension SplitMix64 {
    /// A standard normal sample (Box–Muller).
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}
