import Foundation
import PolychipCore

/// The architecture of a DeepSeek-V3-style mixture-of-experts transformer: MLA attention
/// (optionally with a DeepSeek Sparse Attention indexer), a few dense layers first, then MoE
/// layers with routed and shared experts. Field names follow the Hugging Face config keys
/// (`hidden_size` → ``hiddenSize``); ``decode(_:path:)`` reads such a `config.json`.
public struct MoEModelConfig: Sendable, Hashable, Codable {
    /// Display name.
    public var name: String
    /// `hidden_size`.
    public var hiddenSize: Int
    /// `num_hidden_layers` (not counting multi-token-prediction layers).
    public var numLayers: Int
    /// `first_k_dense_replace`: the first layers use a dense FFN.
    public var firstKDense: Int
    /// `n_routed_experts`.
    public var routedExperts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `n_shared_experts`.
    public var sharedExperts: Int
    /// `moe_intermediate_size` (per expert; a shared expert is `n_shared_experts` times wider).
    public var moeIntermediate: Int
    /// `intermediate_size` of the dense FFN layers.
    public var denseIntermediate: Int
    /// `num_attention_heads`.
    public var heads: Int
    /// `q_lora_rank` (0: queries are projected directly from the hidden state).
    public var qLoraRank: Int
    /// `kv_lora_rank`: the MLA latent that the KV cache stores.
    public var kvLoraRank: Int
    /// `qk_nope_head_dim`.
    public var qkNopeHeadDim: Int
    /// `qk_rope_head_dim` (the decoupled RoPE key, cached beside the latent).
    public var qkRopeHeadDim: Int
    /// `v_head_dim`.
    public var vHeadDim: Int
    /// `vocab_size`.
    public var vocabSize: Int
    /// `index_n_heads` of the DSA lightning indexer (0: dense attention, no indexer).
    public var indexHeads: Int
    /// `index_head_dim` (the single shared indexer key head's width).
    public var indexHeadDim: Int
    /// `index_topk`: keys each query attends to under DSA.
    public var indexTopK: Int
    /// `n_group` of group-limited routing.
    public var nGroup: Int
    /// `topk_group`.
    public var topkGroup: Int
    /// `scoring_func`.
    public var scoring: RouterScoring
    /// `routed_scaling_factor`.
    public var routedScale: Double
    /// `num_nextn_predict_layers` (multi-token prediction; reported, not simulated).
    public var mtpLayers: Int
    /// `max_position_embeddings`.
    public var maxContext: Int
    /// `tie_word_embeddings`.
    public var tieEmbeddings: Bool

    /// Creates a config.
    public init(name: String, hiddenSize: Int, numLayers: Int, firstKDense: Int, routedExperts: Int, expertsPerToken: Int,
                sharedExperts: Int, moeIntermediate: Int, denseIntermediate: Int, heads: Int, qLoraRank: Int, kvLoraRank: Int,
                qkNopeHeadDim: Int, qkRopeHeadDim: Int, vHeadDim: Int, vocabSize: Int, indexHeads: Int = 0, indexHeadDim: Int = 0,
                indexTopK: Int = 0, nGroup: Int = 1, topkGroup: Int = 1, scoring: RouterScoring = .sigmoid, routedScale: Double = 1,
                mtpLayers: Int = 0, maxContext: Int = 4096, tieEmbeddings: Bool = false) {
        self.name = name; self.hiddenSize = hiddenSize; self.numLayers = numLayers; self.firstKDense = firstKDense
        self.routedExperts = routedExperts; self.expertsPerToken = expertsPerToken; self.sharedExperts = sharedExperts
        self.moeIntermediate = moeIntermediate; self.denseIntermediate = denseIntermediate; self.heads = heads
        self.qLoraRank = qLoraRank; self.kvLoraRank = kvLoraRank; self.qkNopeHeadDim = qkNopeHeadDim
        self.qkRopeHeadDim = qkRopeHeadDim; self.vHeadDim = vHeadDim; self.vocabSize = vocabSize
        self.indexHeads = indexHeads; self.indexHeadDim = indexHeadDim; self.indexTopK = indexTopK
        self.nGroup = nGroup; self.topkGroup = topkGroup; self.scoring = scoring; self.routedScale = routedScale
        self.mtpLayers = mtpLayers; self.maxContext = maxContext; self.tieEmbeddings = tieEmbeddings
    }

    /// GLM-5 (`GlmMoeDsaConfig`, arXiv 2602.15763): 744B total / 40B active, 78 layers
    /// (3 dense + 75 MoE), MLA with 64 heads, DSA indexer 32 × 128 with top-k 2048,
    /// 256 experts top-8 + 1 shared. Facts: shared/device-facts.md.
    public static let glm5 = MoEModelConfig(
        name: "GLM-5", hiddenSize: 6144, numLayers: 78, firstKDense: 3, routedExperts: 256, expertsPerToken: 8,
        sharedExperts: 1, moeIntermediate: 2048, denseIntermediate: 12288, heads: 64, qLoraRank: 2048, kvLoraRank: 512,
        qkNopeHeadDim: 192, qkRopeHeadDim: 64, vHeadDim: 256, vocabSize: 154880, indexHeads: 32, indexHeadDim: 128,
        indexTopK: 2048, nGroup: 1, topkGroup: 1, scoring: .sigmoid, routedScale: 2.5, mtpLayers: 1, maxContext: 202752)

    /// DeepSeek-V3 (671B): 61 layers (3 dense + 58 MoE), MLA 128 heads, 256 experts top-8 with
    /// group-limited routing (8 groups, 4 kept), no DSA indexer.
    public static let deepseekV3 = MoEModelConfig(
        name: "DeepSeek-V3", hiddenSize: 7168, numLayers: 61, firstKDense: 3, routedExperts: 256, expertsPerToken: 8,
        sharedExperts: 1, moeIntermediate: 2048, denseIntermediate: 18432, heads: 128, qLoraRank: 1536, kvLoraRank: 512,
        qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128, vocabSize: 129280, nGroup: 8, topkGroup: 4,
        scoring: .sigmoid, routedScale: 2.5, mtpLayers: 1, maxContext: 163840)

    /// DeepSeek-V3.2-Exp: DeepSeek-V3 plus the DSA indexer (64 heads × 128, top-k 2048).
    public static let deepseekV32: MoEModelConfig = {
        var c = deepseekV3
        c.name = "DeepSeek-V3.2-Exp"
        c.indexHeads = 64; c.indexHeadDim = 128; c.indexTopK = 2048
        return c
    }()

    /// Built-in models by the name `--model` accepts.
    public static let builtIn: [String: MoEModelConfig] = ["glm5": glm5, "glm-5": glm5, "deepseek-v3": deepseekV3, "deepseek-v3.2": deepseekV32]

    /// MoE layers.
    public var moeLayers: Int { numLayers - firstKDense }
    /// Whether attention runs through the DSA indexer.
    public var hasIndexer: Bool { indexHeads > 0 && indexHeadDim > 0 && indexTopK > 0 }
    /// Query/key head width (`qk_nope + qk_rope`).
    public var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }

    // MARK: Parameter counts

    /// Parameters of one attention block (MLA projections, norms, DSA indexer).
    public var attentionParams: Int {
        let h = hiddenSize
        var p = 0
        if qLoraRank > 0 { p += h * qLoraRank + qLoraRank + qLoraRank * heads * qkHeadDim } else { p += h * heads * qkHeadDim }
        p += h * (kvLoraRank + qkRopeHeadDim) + kvLoraRank
        p += kvLoraRank * heads * (qkNopeHeadDim + vHeadDim)
        p += heads * vHeadDim * h
        p += 2 * h  // input and post-attention norms
        if hasIndexer {
            p += (qLoraRank > 0 ? qLoraRank : h) * indexHeads * indexHeadDim + h * indexHeadDim + h * indexHeads + 2 * indexHeadDim
        }
        return p
    }
    /// Parameters of one dense FFN.
    public var denseFFNParams: Int { 3 * hiddenSize * denseIntermediate }
    /// Parameters of one routed expert.
    public var expertParams: Int { 3 * hiddenSize * moeIntermediate }
    /// Parameters of the shared expert(s) of one MoE layer.
    public var sharedExpertParams: Int { sharedExperts * expertParams }
    /// Router parameters of one MoE layer (weight and selection bias).
    public var routerParams: Int { routedExperts * hiddenSize + routedExperts }
    /// Embedding and LM head parameters (plus the final norm).
    public var embeddingParams: Int { vocabSize * hiddenSize * (tieEmbeddings ? 1 : 2) + hiddenSize }

    /// Total parameters (without multi-token-prediction layers).
    public var totalParams: Double {
        Double(numLayers) * Double(attentionParams) + Double(firstKDense) * Double(denseFFNParams)
            + Double(moeLayers) * (Double(routedExperts) * Double(expertParams) + Double(sharedExpertParams) + Double(routerParams))
            + Double(embeddingParams)
    }

    /// Parameters touched per token (top-k routed experts; one embedding row is negligible and
    /// not counted, the LM head is).
    public var activeParams: Double {
        Double(numLayers) * Double(attentionParams) + Double(firstKDense) * Double(denseFFNParams)
            + Double(moeLayers) * (Double(expertsPerToken) * Double(expertParams) + Double(sharedExpertParams) + Double(routerParams))
            + Double(vocabSize * hiddenSize)
    }

    // MARK: Reading config.json

    /// Reads a DeepSeek-V3-style Hugging Face `config.json`.
    public static func load(path: String) throws -> MoEModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw PolychipError.io(path: path, reason: "cannot read the file") }
        return try decode(data, path: path)
    }

    /// Parses config JSON. Required: `hidden_size`, `num_hidden_layers`, `n_routed_experts`,
    /// `num_experts_per_tok`, `moe_intermediate_size`, `intermediate_size`,
    /// `num_attention_heads`, `kv_lora_rank`, `qk_nope_head_dim`, `qk_rope_head_dim`,
    /// `v_head_dim`, `vocab_size`. Optional (default): `first_k_dense_replace` (0),
    /// `n_shared_experts` (0), `q_lora_rank` (null → 0), `index_n_heads`, `index_head_dim`,
    /// `index_topk` (0 → no DSA), `n_group`/`topk_group` (1), `scoring_func` ("sigmoid"),
    /// `routed_scaling_factor` (1), `num_nextn_predict_layers` (0),
    /// `max_position_embeddings` (4096), `tie_word_embeddings` (false), `name`/`model_type`.
    /// A nested `text_config` object is read instead of the top level when present.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> MoEModelConfig {
        let top: JSONValue
        do { top = try JSONValue.parse(data) } catch {
            throw PolychipError.malformedFile(path: path, field: "(root)", reason: "not JSON: \(error)")
        }
        guard var obj = top.members else { throw PolychipError.malformedFile(path: path, field: "(root)", reason: "expected a JSON object") }
        if let nested = obj["text_config"]?.members {
            let outerName = obj["name"]
            obj = nested
            if let outerName, obj["name"] == nil { obj["name"] = outerName }
        }
        func int(_ key: String, _ fallback: Int? = nil, min lo: Int = 0) throws -> Int {
            let raw = obj[key] ?? .null
            if case .null = raw {
                if let fallback { return fallback }
                throw PolychipError.malformedFile(path: path, field: key, reason: "required field is missing")
            }
            guard case .number(let d) = raw, d == d.rounded(), abs(d) < 1e15 else {
                throw PolychipError.malformedFile(path: path, field: key, reason: "expected a whole number, got \(raw)")
            }
            let v = Int(d)
            guard v >= lo else { throw PolychipError.malformedFile(path: path, field: key, reason: "must be ≥ \(lo), got \(v)") }
            return v
        }
        func double(_ key: String, _ fallback: Double) throws -> Double {
            let raw = obj[key] ?? .null
            if case .null = raw { return fallback }
            guard case .number(let d) = raw, d.isFinite else {
                throw PolychipError.malformedFile(path: path, field: key, reason: "expected a number, got \(raw)")
            }
            return d
        }
        func bool(_ key: String, _ fallback: Bool) throws -> Bool {
            let raw = obj[key] ?? .null
            if case .null = raw { return fallback }
            guard case .bool(let b) = raw else {
                throw PolychipError.malformedFile(path: path, field: key, reason: "expected true or false, got \(raw)")
            }
            return b
        }
        func string(_ key: String) throws -> String? {
            let raw = obj[key] ?? .null
            if case .null = raw { return nil }
            guard case .string(let s) = raw else {
                throw PolychipError.malformedFile(path: path, field: key, reason: "expected a string, got \(raw)")
            }
            return s
        }
        let scoringName = try string("scoring_func") ?? "sigmoid"
        guard let scoring = RouterScoring(rawValue: scoringName) else {
            throw PolychipError.malformedFile(path: path, field: "scoring_func", reason: "expected \"sigmoid\" or \"softmax\", got \"\(scoringName)\"")
        }
        let name = try string("name") ?? string("model_type") ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let c = MoEModelConfig(
            name: name, hiddenSize: try int("hidden_size", min: 1), numLayers: try int("num_hidden_layers", min: 1),
            firstKDense: try int("first_k_dense_replace", 0), routedExperts: try int("n_routed_experts", min: 1),
            expertsPerToken: try int("num_experts_per_tok", min: 1), sharedExperts: try int("n_shared_experts", 0),
            moeIntermediate: try int("moe_intermediate_size", min: 1), denseIntermediate: try int("intermediate_size", min: 1),
            heads: try int("num_attention_heads", min: 1), qLoraRank: try int("q_lora_rank", 0), kvLoraRank: try int("kv_lora_rank", min: 1),
            qkNopeHeadDim: try int("qk_nope_head_dim"), qkRopeHeadDim: try int("qk_rope_head_dim"), vHeadDim: try int("v_head_dim", min: 1),
            vocabSize: try int("vocab_size", min: 1), indexHeads: try int("index_n_heads", 0), indexHeadDim: try int("index_head_dim", 0),
            indexTopK: try int("index_topk", 0), nGroup: try int("n_group", 1, min: 1), topkGroup: try int("topk_group", 1, min: 1),
            scoring: scoring, routedScale: try double("routed_scaling_factor", 1), mtpLayers: try int("num_nextn_predict_layers", 0),
            maxContext: try int("max_position_embeddings", 4096, min: 1), tieEmbeddings: try bool("tie_word_embeddings", false))
        try c.validate(path: path)
        return c
    }

    /// Checks the relations between fields; throws `PolychipError.malformedFile` naming the field.
    public func validate(path: String = "<config>") throws {
        func bad(_ f: String, _ r: String) -> PolychipError { .malformedFile(path: path, field: f, reason: r) }
        // Bounds that keep every parameter count and simulator product inside Int (SimulationLimits).
        let dims: [(String, Int)] = [("hidden_size", hiddenSize), ("moe_intermediate_size", moeIntermediate),
                                     ("intermediate_size", denseIntermediate), ("q_lora_rank", qLoraRank), ("kv_lora_rank", kvLoraRank),
                                     ("vocab_size", vocabSize)]
        let counts: [(String, Int)] = [("num_hidden_layers", numLayers), ("first_k_dense_replace", firstKDense),
                                       ("n_routed_experts", routedExperts), ("num_experts_per_tok", expertsPerToken),
                                       ("n_shared_experts", sharedExperts), ("num_attention_heads", heads),
                                       ("qk_nope_head_dim", qkNopeHeadDim), ("qk_rope_head_dim", qkRopeHeadDim), ("v_head_dim", vHeadDim),
                                       ("index_n_heads", indexHeads), ("index_head_dim", indexHeadDim), ("n_group", nGroup),
                                       ("topk_group", topkGroup), ("num_nextn_predict_layers", mtpLayers)]
        for (f, v) in dims where v < 0 || v > SimulationLimits.maxModelDimension {
            throw bad(f, "must be in 0…\(SimulationLimits.maxModelDimension), got \(v)")
        }
        for (f, v) in counts where v < 0 || v > SimulationLimits.maxModelCount {
            throw bad(f, "must be in 0…\(SimulationLimits.maxModelCount), got \(v)")
        }
        for (f, v) in [("index_topk", indexTopK), ("max_position_embeddings", maxContext)] where v < 0 || v > SimulationLimits.maxContext {
            throw bad(f, "must be in 0…\(SimulationLimits.maxContext), got \(v)")
        }
        for (f, v) in [("hidden_size", hiddenSize), ("num_hidden_layers", numLayers), ("n_routed_experts", routedExperts),
                       ("num_experts_per_tok", expertsPerToken), ("num_attention_heads", heads), ("n_group", nGroup)] where v < 1 {
            throw bad(f, "must be ≥ 1, got \(v)")
        }
        guard routedScale.isFinite else { throw bad("routed_scaling_factor", "must be finite, got \(routedScale)") }
        guard firstKDense <= numLayers else { throw bad("first_k_dense_replace", "\(firstKDense) exceeds num_hidden_layers \(numLayers)") }
        guard expertsPerToken <= routedExperts else { throw bad("num_experts_per_tok", "\(expertsPerToken) exceeds n_routed_experts \(routedExperts)") }
        guard routedExperts % nGroup == 0 else { throw bad("n_group", "\(nGroup) does not divide n_routed_experts \(routedExperts)") }
        guard topkGroup <= nGroup else { throw bad("topk_group", "\(topkGroup) exceeds n_group \(nGroup)") }
        guard expertsPerToken <= topkGroup * (routedExperts / nGroup) else {
            throw bad("num_experts_per_tok", "\(expertsPerToken) experts cannot come from \(topkGroup) groups of \(routedExperts / nGroup)")
        }
        guard qkHeadDim >= 1 else { throw bad("qk_nope_head_dim", "qk_nope_head_dim + qk_rope_head_dim must be ≥ 1") }
        guard qkRopeHeadDim % 2 == 0 else { throw bad("qk_rope_head_dim", "must be even, got \(qkRopeHeadDim)") }
        if indexHeads > 0 || indexTopK > 0 {
            guard indexHeads > 0, indexHeadDim > 0, indexTopK > 0 else {
                throw bad("index_n_heads", "index_n_heads, index_head_dim and index_topk must all be > 0 for DSA")
            }
        }
    }
}

