// LayerGraph.swift — one decoder layer of a DeepSeek-V3 / GLM-5-style model as a sequence of
// steps: the single description that `polychip simulate` prices at full size (ModelSimulator)
// and that the executable layer stack runs on real data at reduced size (DecoderStack,
// `polychip diff`). Both walk the same steps, so what is priced and what is executed cannot
// drift apart. It lives in its own file so it can move beside a per-kernel descriptor later.

import PolychipCore

/// The dimensions one block of a layer is built for (per device of a parallel plan in the
/// simulator; the whole model in the executable stack).
public struct LayerDims: Sendable, Hashable {
    /// Token rows this device processes (a DP group's tokens: `sequences` in decode,
    /// `sequences · keys` in prefill).
    public var tokens: Int
    /// Sequences among those tokens.
    public var sequences: Int
    /// Keys per sequence: the KV-cache length (decode) or the prompt length (prefill).
    public var keys: Int
    /// Attention heads on this device (`heads / TP`).
    public var heads: Int
    /// Prefill or decode.
    public var phase: SimulationPhase
    /// Activation (storage) dtype.
    public var act: DType
    /// MoE: tokens this device routes (its share of `tokens` under TP).
    public var routed: Int
    /// MoE: expert rows this device receives after dispatch.
    public var expertRows: Int
    /// MoE: expert intermediate width on this device (`moe_intermediate / ETP`).
    public var expertWidth: Int
    /// MoE: expert-TP copies of each routed row (the combine reads `routed · k · etp` rows).
    public var etp: Int
    /// Shared-expert and dense-FFN width divisor (TP).
    public var tp: Int

    /// Creates block dimensions; the MoE fields default to one device holding every expert.
    public init(tokens: Int, sequences: Int, keys: Int, heads: Int, phase: SimulationPhase, act: DType,
                routed: Int? = nil, expertRows: Int? = nil, expertWidth: Int, etp: Int = 1, tp: Int = 1, topK: Int = 1) {
        self.tokens = tokens; self.sequences = sequences; self.keys = keys; self.heads = heads
        self.phase = phase; self.act = act
        self.routed = routed ?? tokens
        self.expertRows = expertRows ?? (routed ?? tokens) * topK
        self.expertWidth = expertWidth; self.etp = etp; self.tp = tp
    }
}

/// One step of a layer.
public struct LayerStep: Sendable {
    /// Operation name, shared by the simulator's report and the diff's table (`attn.q_a_proj`).
    public var name: String
    /// Layer-type group (`attention (MLA + DSA)`, `MoE FFN`, `dense FFN`).
    public var group: String
    /// What the step does.
    public var action: LayerAction
    /// Where the rows of the step's results live: token order, or the expert order of the
    /// layer's permute (compared row by (token, expert) when two runs route differently).
    public var layout: RowLayout = .tokens
    /// Rows the step works on; a step with 0 is skipped (a device with no tokens).
    public var rows: Int
}

/// Row order of a value.
public enum RowLayout: Sendable, Hashable {
    /// One row per token.
    case tokens
    /// One row per routed (token, expert) pair, grouped by expert (`moePermute`'s order).
    case expertRows
}

/// What a step does.
public enum LayerAction: Sendable {
    /// A catalog kernel on activations and weights.
    case kernel(KernelStep)
    /// `x[m, k] · Wᵀ` with a stored weight `W[n, k]`; the weight scheme decides its storage.
    case linear(LinearStep)
    /// The routed experts' grouped GEMM over expert segments (`rows · W[e]ᵀ`).
    case experts(ExpertStep)
    /// Exact data movement (no arithmetic), done on the host in the executable stack.
    case glue(GlueStep)
    /// A collective of a parallel plan; the identity on one device.
    case collective(CollectiveStep)
}

/// A catalog kernel call. Arguments name values: `@name` is a weight of the layer, anything
/// else an activation produced earlier in the layer (or `x`, the layer's input).
public struct KernelStep: Sendable {
    /// The kernel.
    public var op: Op
    /// Input descriptors, in the op's input order.
    public var inputs: [TensorDesc]
    /// Value names of the inputs.
    public var args: [String]
    /// Value names of the outputs, in the op's output order.
    public var results: [String]
    /// The call repeats once per sequence (priced `count` times; the executable stack runs one).
    public var count: Int = 1
    /// Minimum bytes as the real kernel moves them, where they differ from the catalog's count
    /// (a latent cache read once for both K and V).
    public var bytes: Double? = nil
}

/// A linear layer on a stored weight.
public struct LinearStep: Sendable {
    /// Rows, output features, input features.
    public var m: Int, n: Int, k: Int
    /// Which part of the model the weight belongs to.
    public var kind: WeightKind
    /// Input and output value names.
    public var input: String, output: String
    /// The weight's name in the layer (`attn.q_a_proj`).
    public var weight: String
}

/// The routed experts' GEMM: `rows[offsets[e]..<offsets[e+1]] · W[e]ᵀ` with `W[E, n, k]`.
public struct ExpertStep: Sendable {
    /// Output and input features.
    public var n: Int, k: Int
    /// Input rows (in expert order), group offsets and the output value names.
    public var input: String, offsets: String, output: String
    /// The weight stack's name (`moe.experts.gate_up`).
    public var weight: String
}

/// Exact data movement between kernels.
public enum GlueStep: Sendable {
    /// Splits `input` along `axis` into pieces of `sizes`.
    case split(input: String, axis: Int, sizes: [Int], outputs: [String])
    /// Concatenates `inputs` along `axis`.
    case concat(inputs: [String], axis: Int, output: String)
    /// Reinterprets `input` with another shape (same element count, row-major).
    case reshape(input: String, shape: [Int], output: String)
    /// Swaps the first two axes (`[A, B, …] → [B, A, …]`).
    case transpose01(input: String, output: String)
    /// Repeats `input` `times` along `axis` (each slice in place: `[a, a, b, b]`).
    case repeatAxis(input: String, axis: Int, times: Int, output: String)
    /// Widens a float value to f32 (exact).
    case widen(input: String, output: String)
    /// Token positions `0 ..< count` (i32), the prompt's positions in prefill.
    case positions(count: Int, output: String)
    /// Group offsets `[0, rows, 2·rows, …, groups·rows]` (i32) for a per-head grouped GEMM.
    case offsets(groups: Int, rows: Int, output: String)
}

/// A collective of a parallel plan.
public enum CollectiveStep: Sendable, Hashable {
    /// Sum of the tensor-parallel partial results of a block.
    case tensorParallelAllReduce
    /// Expert-parallel dispatch of routed rows.
    case expertDispatch
    /// Expert-parallel return of expert outputs.
    case expertCombine
}

/// Appends steps of one group.
struct LayerStepBuilder {
    let group: String
    var steps: [LayerStep] = []

    init(_ group: String) { self.group = group }

    mutating func kernel(_ name: String, _ op: Op, _ inputs: [TensorDesc], _ args: [String], rows: Int, results: [String]? = nil,
                         count: Int = 1, bytes: Double? = nil, layout: RowLayout = .tokens) {
        let res = results ?? (op.outputNames.count == 1 ? [name] : op.outputNames.map { "\(name).\($0)" })
        steps.append(LayerStep(name: name, group: group, action: .kernel(KernelStep(op: op, inputs: inputs, args: args, results: res,
                                                                                     count: count, bytes: bytes)), layout: layout, rows: rows))
    }

    mutating func linear(_ name: String, m: Int, n: Int, k: Int, kind: WeightKind, _ input: String) {
        steps.append(LayerStep(name: name, group: group, action: .linear(LinearStep(m: m, n: n, k: k, kind: kind, input: input,
                                                                                     output: name, weight: name)), rows: m))
    }

    mutating func experts(_ name: String, n: Int, k: Int, _ input: String, rows: Int) {
        steps.append(LayerStep(name: name, group: group, action: .experts(ExpertStep(n: n, k: k, input: input, offsets: "moe.permute.offsets",
                                                                                      output: name, weight: name)),
                               layout: .expertRows, rows: rows))
    }

    mutating func glue(_ step: GlueStep, rows: Int, layout: RowLayout = .tokens) {
        steps.append(LayerStep(name: "glue", group: group, action: .glue(step), layout: layout, rows: rows))
    }

    mutating func collective(_ name: String, _ c: CollectiveStep, rows: Int) {
        steps.append(LayerStep(name: name, group: group, action: .collective(c), rows: rows))
    }

    mutating func norm(_ name: String, _ input: String, rows m: Int, width: Int, _ act: DType) {
        kernel(name, .rmsNorm(eps: 1e-6), [TensorDesc([m, width], act), TensorDesc([width], act)], [input, "@\(name).weight"], rows: m)
    }
}

/// The steps of one decoder layer of a ``MoEModelConfig``.
public enum LayerGraph {
    /// The attention group's name.
    public static func attentionGroup(_ c: MoEModelConfig) -> String { "attention (MLA\(c.hasIndexer ? " + DSA" : ""))" }
    /// The MoE FFN group.
    public static let moeGroup = "MoE FFN"
    /// The dense FFN group.
    public static let denseGroup = "dense FFN"
    /// Query chunk of the DSA indexer in prefill (bounds the score matrix).
    public static let indexerChunk = 8192

    /// The attention block: input norm, MLA projections (low-rank queries, latent KV with
    /// decoupled RoPE), the DSA lightning indexer and top-k, attention (sparse over the selected
    /// keys, or dense), the output projection, the TP all-reduce and the residual add.
    /// Reads `x`, writes `h`.
    public static func attention(_ c: MoEModelConfig, _ d: LayerDims) -> [LayerStep] {
        let h = c.hiddenSize, hh = d.heads, m = d.tokens, b = d.sequences, l = d.keys, act = d.act
        guard m > 0 else { return [] }
        var s = LayerStepBuilder(attentionGroup(c))
        s.norm("attn.norm", "x", rows: m, width: h, act)
        let qIn: Int, qSource: String, q: String
        if c.qLoraRank > 0 {
            s.linear("attn.q_a_proj", m: m, n: c.qLoraRank, k: h, kind: .attention, "attn.norm")
            s.norm("attn.q_norm", "attn.q_a_proj", rows: m, width: c.qLoraRank, act)
            s.linear("attn.q_b_proj", m: m, n: hh * c.qkHeadDim, k: c.qLoraRank, kind: .attention, "attn.q_norm")
            qIn = c.qLoraRank; qSource = "attn.q_norm"; q = "attn.q_b_proj"
        } else {
            s.linear("attn.q_proj", m: m, n: hh * c.qkHeadDim, k: h, kind: .attention, "attn.norm")
            qIn = h; qSource = "attn.norm"; q = "attn.q_proj"
        }
        s.linear("attn.kv_a_proj", m: m, n: c.kvLoraRank + c.qkRopeHeadDim, k: h, kind: .attention, "attn.norm")
        s.glue(.split(input: "attn.kv_a_proj", axis: 1, sizes: [c.kvLoraRank, c.qkRopeHeadDim], outputs: ["attn.kv_latent", "attn.k_pe"]), rows: m)
        s.norm("attn.kv_norm", "attn.kv_latent", rows: m, width: c.kvLoraRank, act)
        // The decoupled RoPE: the queries' rope parts and the one shared rope key, rotated together.
        s.glue(.reshape(input: q, shape: [m, hh, c.qkHeadDim], output: "attn.q_heads"), rows: m)
        s.glue(.split(input: "attn.q_heads", axis: 2, sizes: [c.qkNopeHeadDim, c.qkRopeHeadDim], outputs: ["attn.q_nope", "attn.q_pe"]), rows: m)
        s.glue(.reshape(input: "attn.k_pe", shape: [m, 1, c.qkRopeHeadDim], output: "attn.k_pe_head"), rows: m)
        s.glue(.concat(inputs: ["attn.q_pe", "attn.k_pe_head"], axis: 1, output: "attn.rope_in"), rows: m)
        s.glue(.positions(count: m, output: "positions"), rows: m)
        if c.qkRopeHeadDim > 0 {
            s.kernel("attn.rope", .rope(RopeParams()), [TensorDesc([m, hh + 1, c.qkRopeHeadDim], act), TensorDesc([m], .i32)],
                     ["attn.rope_in", "positions"], rows: m)
            s.glue(.split(input: "attn.rope", axis: 1, sizes: [hh, 1], outputs: ["attn.q_rot", "attn.k_rot"]), rows: m)
        }
        let keys = l
        let topk = c.hasIndexer ? min(c.indexTopK, keys) : keys
        if c.hasIndexer {
            let ih = c.indexHeads, id = c.indexHeadDim
            let args = ["attn.indexer.q", "attn.indexer.k_norm", "attn.indexer.weights_proj"]
            s.linear("attn.indexer.q_proj", m: m, n: ih * id, k: qIn, kind: .attention, qSource)
            s.linear("attn.indexer.k_proj", m: m, n: id, k: h, kind: .attention, "attn.norm")
            s.linear("attn.indexer.weights_proj", m: m, n: ih, k: h, kind: .attention, "attn.norm")
            s.norm("attn.indexer.k_norm", "attn.indexer.k_proj", rows: m, width: id, act)
            s.glue(.reshape(input: "attn.indexer.q_proj", shape: [m, ih, id], output: "attn.indexer.q"), rows: m)
            if d.phase == .decode {
                s.kernel("attn.indexer.scores", .lightningIndexer, [TensorDesc([1, ih, id], act), TensorDesc([keys, id], act), TensorDesc([1, ih], act)],
                         args, rows: m, count: b)
                s.kernel("attn.indexer.top_k", .topK(k: topk), [TensorDesc([1, keys], .f32)], ["attn.indexer.scores"], rows: m, count: b)
            } else {
                // Queries in chunks so the score matrix stays bounded: chunk j sees keys 0..<end.
                let chunk = min(l, indexerChunk)
                var start = 0
                while start < l {
                    let end = min(l, start + chunk), rows = end - start
                    s.kernel("attn.indexer.scores", .lightningIndexer, [TensorDesc([rows, ih, id], act), TensorDesc([end, id], act), TensorDesc([rows, ih], act)],
                             args, rows: m, count: b)
                    s.kernel("attn.indexer.top_k", .topK(k: min(c.indexTopK, end)), [TensorDesc([rows, end], .f32)], ["attn.indexer.scores"], rows: m, count: b)
                    start = end
                }
            }
        }
        let lat = c.kvLoraRank + c.qkRopeHeadDim
        let scale = 1 / Double(max(1, c.qkHeadDim)).squareRoot()
        if d.phase == .decode {
            // Weight-absorbed MLA: attention runs on the latent (one shared KV head of width
            // kv_lora + rope) and the per-head up-projections fold into the query and output.
            s.kernel("attn.absorb_q", .groupedMatmul(transposeB: false),
                     [TensorDesc([hh * b, c.qkNopeHeadDim], act), TensorDesc([hh, c.qkNopeHeadDim, c.kvLoraRank], act), TensorDesc([hh + 1], .i32)],
                     [], rows: m)
            // The value is the latent's first kv_lora columns: the cache is read once, so the
            // catalog's separate value bytes are taken off.
            if c.hasIndexer {
                let descs = [TensorDesc([b, hh, lat], act), TensorDesc([b * keys, 1, lat], act), TensorDesc([b * keys, 1, c.kvLoraRank], act),
                             TensorDesc([b, topk], .i32)]
                let op = Op.sparseAttention(SparseAttentionParams(scale: scale))
                let bytes = op.cost(descs).bytes - Double(b * topk * c.kvLoraRank * 2)
                s.kernel("attn.sparse_attention", op, descs, [], rows: m, bytes: bytes)
            } else {
                let descs = [TensorDesc([b, hh, 1, lat], act), TensorDesc([b, 1, keys, lat], act), TensorDesc([b, 1, keys, c.kvLoraRank], act)]
                let op = Op.attention(AttentionParams(scale: scale))
                let bytes = op.cost(descs).bytes - Double(descs[2].byteCount)
                s.kernel("attn.attention", op, descs, [], rows: m, bytes: bytes)
            }
            s.kernel("attn.absorb_v", .groupedMatmul(transposeB: false),
                     [TensorDesc([hh * b, c.kvLoraRank], act), TensorDesc([hh, c.kvLoraRank, c.vHeadDim], act), TensorDesc([hh + 1], .i32)],
                     [], rows: m)
        } else if c.hasIndexer && l > c.indexTopK {
            // DSA prefill in the MQA (latent) form, as for decode: queries absorbed per head into
            // the latent space, one shared latent KV head, values up-projected per head. The
            // selected rows of the latent cache are assumed reused on chip by a 64-query tile, so
            // 1/64 of the catalog's per-token gather. (The glue is written for one sequence, the
            // executable stack's case; the simulator reads only the kernels.)
            s.glue(.transpose01(input: "attn.q_nope", output: "attn.q_nope_t"), rows: m)
            s.glue(.reshape(input: "attn.q_nope_t", shape: [hh * m, c.qkNopeHeadDim], output: "attn.q_nope_rows"), rows: m)
            s.glue(.offsets(groups: hh, rows: m, output: "attn.head_offsets"), rows: m)
            s.kernel("attn.absorb_q", .groupedMatmul(transposeB: false),
                     [TensorDesc([hh * m, c.qkNopeHeadDim], act), TensorDesc([hh, c.qkNopeHeadDim, c.kvLoraRank], act), TensorDesc([hh + 1], .i32)],
                     ["attn.q_nope_rows", "@attn.absorb_q.weight", "attn.head_offsets"], rows: m)
            s.glue(.reshape(input: "attn.absorb_q", shape: [hh, m, c.kvLoraRank], output: "attn.q_latent_t"), rows: m)
            s.glue(.transpose01(input: "attn.q_latent_t", output: "attn.q_latent"), rows: m)
            s.glue(.concat(inputs: ["attn.q_latent", "attn.q_rot"], axis: 2, output: "attn.q_mqa"), rows: m)
            s.glue(.reshape(input: "attn.kv_norm", shape: [m, 1, c.kvLoraRank], output: "attn.v_latent"), rows: m)
            s.glue(.concat(inputs: ["attn.v_latent", "attn.k_rot"], axis: 2, output: "attn.k_mqa"), rows: m)
            let descs = [TensorDesc([l, hh, lat], act), TensorDesc([l, 1, lat], act), TensorDesc([l, 1, c.kvLoraRank], act), TensorDesc([l, topk], .i32)]
            let op = Op.sparseAttention(SparseAttentionParams(scale: scale))
            let cost = op.cost(descs)
            let own = Double(descs[0].byteCount + descs[3].byteCount + l * hh * c.kvLoraRank * 2)
            let bytes = own + (cost.bytes - own) / 64 + Double(descs[1].byteCount + descs[2].byteCount)
            s.kernel("attn.sparse_attention", op, descs, ["attn.q_mqa", "attn.k_mqa", "attn.v_latent", "attn.indexer.top_k.indices"],
                     rows: m, count: b, bytes: bytes)
            s.glue(.transpose01(input: "attn.sparse_attention", output: "attn.o_latent_t"), rows: m)
            s.glue(.reshape(input: "attn.o_latent_t", shape: [hh * m, c.kvLoraRank], output: "attn.o_latent_rows"), rows: m)
            s.kernel("attn.absorb_v", .groupedMatmul(transposeB: false),
                     [TensorDesc([hh * m, c.kvLoraRank], act), TensorDesc([hh, c.kvLoraRank, c.vHeadDim], act), TensorDesc([hh + 1], .i32)],
                     ["attn.o_latent_rows", "@attn.absorb_v.weight", "attn.head_offsets"], rows: m)
            s.glue(.reshape(input: "attn.absorb_v", shape: [hh, m, c.vHeadDim], output: "attn.o_heads_t"), rows: m)
            s.glue(.transpose01(input: "attn.o_heads_t", output: "attn.o_heads"), rows: m)
            s.glue(.reshape(input: "attn.o_heads", shape: [m, hh * c.vHeadDim], output: "attn.out"), rows: m)
        } else {
            // Dense prefill in the MHA form: the latent expanded into per-head keys and values
            // (kv_b_proj), the rope key shared by every head, causal attention.
            s.linear("attn.kv_b_proj", m: m, n: hh * (c.qkNopeHeadDim + c.vHeadDim), k: c.kvLoraRank, kind: .attention, "attn.kv_norm")
            s.glue(.reshape(input: "attn.kv_b_proj", shape: [m, hh, c.qkNopeHeadDim + c.vHeadDim], output: "attn.kv_heads"), rows: m)
            s.glue(.split(input: "attn.kv_heads", axis: 2, sizes: [c.qkNopeHeadDim, c.vHeadDim], outputs: ["attn.k_nope", "attn.v"]), rows: m)
            s.glue(.repeatAxis(input: "attn.k_rot", axis: 1, times: hh, output: "attn.k_rot_heads"), rows: m)
            s.glue(.concat(inputs: ["attn.k_nope", "attn.k_rot_heads"], axis: 2, output: "attn.k"), rows: m)
            s.glue(.concat(inputs: ["attn.q_nope", "attn.q_rot"], axis: 2, output: "attn.q"), rows: m)
            for (v, w) in [("attn.q", c.qkHeadDim), ("attn.k", c.qkHeadDim), ("attn.v", c.vHeadDim)] {
                s.glue(.transpose01(input: v, output: v + "_t"), rows: m)
                s.glue(.reshape(input: v + "_t", shape: [1, hh, m, w], output: v + "_bhld"), rows: m)
            }
            s.kernel("attn.attention", .attention(AttentionParams(causal: true)),
                     [TensorDesc([b, hh, l, c.qkHeadDim], act), TensorDesc([b, hh, l, c.qkHeadDim], act), TensorDesc([b, hh, l, c.vHeadDim], act)],
                     ["attn.q_bhld", "attn.k_bhld", "attn.v_bhld"], rows: m)
            s.glue(.reshape(input: "attn.attention", shape: [hh, m, c.vHeadDim], output: "attn.o_heads_t"), rows: m)
            s.glue(.transpose01(input: "attn.o_heads_t", output: "attn.o_heads"), rows: m)
            s.glue(.reshape(input: "attn.o_heads", shape: [m, hh * c.vHeadDim], output: "attn.out"), rows: m)
        }
        s.linear("attn.o_proj", m: m, n: h, k: hh * c.vHeadDim, kind: .attention, "attn.out")
        s.collective("attn.all_reduce (TP)", .tensorParallelAllReduce, rows: m)
        s.kernel("residual add", .add, [TensorDesc([m, h], act), TensorDesc([m, h], act)], ["x", "attn.o_proj"], rows: m, results: ["h"])
        return s.steps
    }

    /// The dense FFN block: norm, fused gate/up projection, SwiGLU, down projection, TP
    /// all-reduce, residual add. Reads `h`, writes `y`.
    public static func denseFFN(_ c: MoEModelConfig, _ d: LayerDims) -> [LayerStep] {
        let h = c.hiddenSize, f = c.denseIntermediate / d.tp, m = d.tokens, act = d.act
        guard m > 0 else { return [] }
        var s = LayerStepBuilder(denseGroup)
        s.norm("ffn.norm", "h", rows: m, width: h, act)
        s.linear("ffn.gate_up_proj", m: m, n: 2 * f, k: h, kind: .dense, "ffn.norm")
        s.glue(.split(input: "ffn.gate_up_proj", axis: 1, sizes: [f, f], outputs: ["ffn.gate", "ffn.up"]), rows: m)
        s.kernel("ffn.swiglu", .swiglu, [TensorDesc([m, f], act), TensorDesc([m, f], act)], ["ffn.gate", "ffn.up"], rows: m)
        s.linear("ffn.down_proj", m: m, n: h, k: f, kind: .dense, "ffn.swiglu")
        s.collective("ffn.all_reduce (TP)", .tensorParallelAllReduce, rows: m)
        s.kernel("residual add", .add, [TensorDesc([m, h], act), TensorDesc([m, h], act)], ["h", "ffn.down_proj"], rows: m, results: ["y"])
        return s.steps
    }

    /// The MoE FFN block: norm, router GEMM and the sigmoid group-limited router (selection
    /// bias, routed scaling), permute, expert dispatch, the routed experts' grouped GEMMs and
    /// SwiGLU, expert combine, the weighted combine, the shared expert, the TP all-reduce and
    /// the residual add. Reads `h`, writes `y`.
    public static func moeFFN(_ c: MoEModelConfig, _ d: LayerDims) -> [LayerStep] {
        let h = c.hiddenSize, k = c.expertsPerToken, e = c.routedExperts, act = d.act
        let m = d.tokens, md = d.routed, f = d.expertWidth, etp = d.etp, recv = d.expertRows
        var s = LayerStepBuilder(moeGroup)
        s.norm("moe.norm", "h", rows: m, width: h, act)
        s.linear("moe.router_gemm", m: md, n: e, k: h, kind: .router, "moe.norm")
        // Routing runs in f32 (the router GEMM's output widened exactly).
        s.glue(.widen(input: "moe.router_gemm", output: "moe.logits"), rows: md)
        s.kernel("moe.router_topk", .moeRouter(RouterParams(scoring: c.scoring, topK: k, nGroup: c.nGroup, topkGroup: c.topkGroup,
                                                            renormalize: true, routedScale: c.routedScale, hasBias: true)),
                 [TensorDesc([md, e], .f32), TensorDesc([e], .f32)], ["moe.logits", "@moe.bias"], rows: md)
        s.kernel("moe.permute", .moePermute(numExperts: e), [TensorDesc([md, h], act), TensorDesc([md, k], .i32)],
                 ["moe.norm", "moe.router_topk.ids"], rows: md, layout: .expertRows)
        s.collective("moe.dispatch (EP all-to-all)", .expertDispatch, rows: md)
        s.experts("moe.experts.gate_up", n: 2 * f, k: h, "moe.permute.rows", rows: recv)
        s.glue(.split(input: "moe.experts.gate_up", axis: 1, sizes: [f, f], outputs: ["moe.experts.gate", "moe.experts.up"]), rows: recv, layout: .expertRows)
        s.kernel("moe.experts.swiglu", .swiglu, [TensorDesc([recv, f], act), TensorDesc([recv, f], act)], ["moe.experts.gate", "moe.experts.up"],
                 rows: recv, layout: .expertRows)
        s.experts("moe.experts.down", n: h, k: f, "moe.experts.swiglu", rows: recv)
        s.collective("moe.combine (EP all-to-all)", .expertCombine, rows: md)
        s.kernel("moe.weighted_combine", .moeCombine,
                 [TensorDesc([md * k * etp, h], act), TensorDesc([md * k * etp], .i32), TensorDesc([md, k * etp], .f32)],
                 ["moe.experts.down", "moe.permute.sourceMap", "moe.router_topk.weights"], rows: md)
        var out = "moe.weighted_combine"
        if c.sharedExperts > 0 {
            let fs = c.sharedExperts * c.moeIntermediate / d.tp
            s.linear("moe.shared.gate_up", m: m, n: 2 * fs, k: h, kind: .shared, "moe.norm")
            s.glue(.split(input: "moe.shared.gate_up", axis: 1, sizes: [fs, fs], outputs: ["moe.shared.gate", "moe.shared.up"]), rows: m)
            s.kernel("moe.shared.swiglu", .swiglu, [TensorDesc([m, fs], act), TensorDesc([m, fs], act)], ["moe.shared.gate", "moe.shared.up"], rows: m)
            s.linear("moe.shared.down", m: m, n: h, k: fs, kind: .shared, "moe.shared.swiglu")
            s.kernel("moe.shared_add", .add, [TensorDesc([m, h], act), TensorDesc([m, h], act)], ["moe.weighted_combine", "moe.shared.down"], rows: m)
            out = "moe.shared_add"
        }
        s.collective("moe.all_reduce (TP)", .tensorParallelAllReduce, rows: m)
        s.kernel("residual add", .add, [TensorDesc([m, h], act), TensorDesc([m, h], act)], ["h", out], rows: m, results: ["y"])
        return s.steps
    }
}
