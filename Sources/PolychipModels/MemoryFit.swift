import PolychipCore

/// Memory needed on the fullest device of a plan, and whether it fits.
public struct MemoryFit: Sendable, Codable, Hashable {
    /// The device's capacity, bytes.
    public var capacity: Double
    /// Weights on the device, by part (`experts`, `shared`, `attention`, `dense`, `router`, `embedding`), bytes.
    public var weightsByKind: [String: Double]
    /// Weights in all, bytes.
    public var weights: Double
    /// KV cache: MLA latent (`kv_lora + rope` per token and layer) and DSA indexer keys, bytes.
    public var kvCache: Double
    /// Of which the indexer keys, bytes.
    public var indexerKeys: Double
    /// Sequences whose KV cache this device holds.
    public var kvSequences: Int
    /// Tokens per sequence in the KV cache.
    public var kvTokens: Int
    /// Peak transient activations (residual stream, the largest kernel's operands, all-to-all buffers), bytes.
    public var activations: Double
    /// Runtime reserve requested, bytes.
    public var reserve: Double
    /// Pipeline stage of this device (the fullest one).
    public var stage: Int
    /// Weights of the whole model in this scheme, all devices together (no replication), bytes.
    public var modelWeights: Double
    /// Capacity of all devices together, bytes.
    public var clusterCapacity: Double

    /// Everything on the device.
    public var total: Double { weights + kvCache + activations + reserve }
    /// Whether it fits.
    public var fits: Bool { total <= capacity }
    /// Capacity left (negative when it does not fit).
    public var free: Double { capacity - total }
}

extension ModelSimulator {
    /// Per-device memory of the fullest pipeline stage.
    func memoryFit() -> MemoryFit {
        let c = req.model, plan = req.plan, w = req.weights, g = req.groupSize
        let t = Double(plan.tp)
        func b(_ k: WeightKind) -> Double { w.bytesPerParam(k, groupSize: g) }
        let h = Double(c.hiddenSize)
        // Attention: the down-projections (q_a, kv_a) and the indexer are replicated over TP;
        // q_b, kv_b and o_proj are split by heads.
        let qa = c.qLoraRank > 0 ? h * Double(c.qLoraRank) : 0
        let qb = c.qLoraRank > 0 ? Double(c.qLoraRank * c.heads * c.qkHeadDim) : h * Double(c.heads * c.qkHeadDim)
        let kva = h * Double(c.kvLoraRank + c.qkRopeHeadDim)
        let kvb = Double(c.kvLoraRank * c.heads * (c.qkNopeHeadDim + c.vHeadDim))
        let o = Double(c.heads * c.vHeadDim) * h
        let idx = c.hasIndexer ? Double((c.qLoraRank > 0 ? c.qLoraRank : c.hiddenSize) * c.indexHeads * c.indexHeadDim
                                        + c.hiddenSize * c.indexHeadDim + c.hiddenSize * c.indexHeads) : 0
        let norms = Double(2 * c.hiddenSize + c.qLoraRank + c.kvLoraRank + (c.hasIndexer ? 2 * c.indexHeadDim : 0))
        let attnPerLayer = (qa + kva + idx + (qb + kvb + o) / t) * b(.attention) + norms * 2
        let densePerLayer = Double(c.denseFFNParams) / t * b(.dense)
        let expertsPerLayer = Double(c.routedExperts / plan.ep) * Double(c.expertParams) / Double(plan.etp) * b(.experts)
        let sharedPerLayer = Double(c.sharedExpertParams) / t * b(.shared)
        let routerPerLayer = Double(c.routerParams) * 2
        let table = Double(c.vocabSize) * h / t * b(.embedding)
        let kvPerTokenLayer = Double(c.kvLoraRank + c.qkRopeHeadDim) * 2
        let idxPerTokenLayer = c.hasIndexer ? Double(c.indexHeadDim) * 2 : 0
        let shares = (0..<plan.dp).map(dpShare)
        let maxSeqs = shares.map(\.seqs).max() ?? 0
        let maxTokens = shares.map(\.tokens).max() ?? 0
        let inFlight = plan.pp > 1 ? plan.pp : 1
        let kvSeqs = maxSeqs * inFlight
        let kvTokens = req.context + (req.phase == .decode ? 1 : 0)

        // Activations: the residual stream and the largest transient buffers of one layer.
        let m = Double(maxTokens)
        let hh = Double(c.heads / plan.tp)
        var attnAct = m * (Double(c.qLoraRank) + hh * Double(c.qkHeadDim) + Double(c.kvLoraRank + c.qkRopeHeadDim) + hh * Double(c.vHeadDim)) * 2
        if req.phase == .prefill {
            attnAct += m * hh * Double(c.qkNopeHeadDim + c.vHeadDim) * 2
            if c.hasIndexer { attnAct += Double(min(req.context, 8192)) * Double(req.context) * 4 + m * Double(c.indexHeads * c.indexHeadDim) * 2 }
        }
        let recvMax = Double(expertRows.max() ?? 0)
        let f = Double(c.moeIntermediate / plan.etp)
        let moeAct = recvMax * (2 * h + 3 * f) * 2 + m * Double(c.expertsPerToken) * h * 2
        let denseAct = c.firstKDense > 0 ? m * (3 * Double(c.denseIntermediate) / t) * 2 : 0
        let activations = m * h * 2 * 3 + max(attnAct, moeAct, denseAct)

        var best: MemoryFit? = nil
        for st in 0..<plan.pp {
            let layers = (st * c.numLayers / plan.pp)..<((st + 1) * c.numLayers / plan.pp)
            let dense = layers.filter { $0 < c.firstKDense }.count
            let moe = layers.count - dense
            var kinds: [String: Double] = [
                "attention": Double(layers.count) * attnPerLayer,
                "dense": Double(dense) * densePerLayer,
                "experts": Double(moe) * expertsPerLayer,
                "shared": Double(moe) * sharedPerLayer,
                "router": Double(moe) * routerPerLayer,
                "embedding": 0,
            ]
            if st == 0 { kinds["embedding", default: 0] += table }
            if st == plan.pp - 1 && !(c.tieEmbeddings && plan.pp == 1) { kinds["embedding", default: 0] += table + h * 2 }
            let weights = kinds.values.reduce(0, +)
            let idxKeys = Double(kvSeqs) * Double(kvTokens) * Double(layers.count) * idxPerTokenLayer
            let kv = Double(kvSeqs) * Double(kvTokens) * Double(layers.count) * kvPerTokenLayer + idxKeys
            let fit = MemoryFit(capacity: Double(req.profile.memory.capacity.value), weightsByKind: kinds, weights: weights,
                                kvCache: kv, indexerKeys: idxKeys, kvSequences: kvSeqs, kvTokens: kvTokens, activations: activations,
                                reserve: req.reserveBytes, stage: st, modelWeights: modelWeightBytes(),
                                clusterCapacity: Double(req.profile.memory.capacity.value) * Double(plan.world))
            if best == nil || fit.total > best!.total { best = fit }
        }
        return best!
    }

    /// Bytes of the whole model's weights in the request's scheme.
    func modelWeightBytes() -> Double {
        let c = req.model, w = req.weights, g = req.groupSize
        func b(_ k: WeightKind) -> Double { w.bytesPerParam(k, groupSize: g) }
        return Double(c.numLayers) * Double(c.attentionParams) * b(.attention)
            + Double(c.firstKDense) * Double(c.denseFFNParams) * b(.dense)
            + Double(c.moeLayers) * (Double(c.routedExperts) * Double(c.expertParams) * b(.experts)
                                     + Double(c.sharedExpertParams) * b(.shared) + Double(c.routerParams) * 2)
            + Double(c.embeddingParams) * 2
    }
}
