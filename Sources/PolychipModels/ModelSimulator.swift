import Foundation
import PolychipCore
import PolychipSimulated

/// Predicts one step of a MoE model on a mesh of simulated devices.
///
/// Every layer of the model is built from meta tensors (shapes and dtypes, no data) as kernels of
/// the catalog (`matmul`, `int4Matmul`, `rmsNorm`, `rope`, `lightningIndexer`, `topK`,
/// `sparseAttention`, `moeRouter`, `moePermute`, `moeCombine`, …); each kernel is validated by the
/// catalog and timed by the profile's time model through ``SimulatedDevice/model(_:inputs:)``
/// (kernels repeated per sequence, and W8A8/W4A8 GEMMs whose int8 activations the catalog has no
/// dtype for, go straight to ``TimeModel/kernelTime(_:)`` with the catalog's cost). Collectives are
/// priced by the time model's contention model on the real device indices of each group
/// (``TimeModel/allToAll(bytes:group:algorithm:faults:)`` for expert dispatch and combine with the
/// sampled per-device counts, ``TimeModel/collective(_:bytes:group:algorithm:faults:)`` for the
/// tensor-parallel all-reduce). Each device has its own virtual clock; a collective starts when the
/// last member arrives, so the device with the most routed rows sets the step time.
public struct ModelSimulator {
    let req: SimulationRequest
    let device: SimulatedDevice
    let model: TimeModel
    let act: DType = .bf16
    var cache: [OpKey: OpTime] = [:]
    var collCache: [String: [Double]] = [:]
    var tl: Timeline
    var names: [String] = []
    var nameIndex: [String: Int] = [:]
    var nameGroup: [String] = []
    var expertRows: [Int] = []

    struct OpKey: Hashable { var op: Op; var inputs: [TensorDesc]; var count: Int; var quant: Quant; var bytesOverride: Double? }

    /// The integer-activation GEMMs the catalog has no dtype for.
    enum Quant: Hashable { case none, w8a8, w4a8 }

    /// A modeled time split the way the report shows it.
    struct OpTime { var total: Double; var launch: Double; var busy: Double; var computeBound: Bool }

    struct Timeline {
        var clock: [Double]
        var acc: [[Double]]       // rank → name index · 5 + category (compute, memory, launch, comm, wait)
        var slices: [TraceSlice]?
        var offset: Double = 0
        var ranksBase: Int = 0
    }

    static let categories = ["compute", "memory", "launch", "communication", "wait"]

    /// Runs the simulation.
    public static func run(_ req: SimulationRequest) throws -> SimulationReport {
        var sim = try ModelSimulator(req)
        return try sim.simulate()
    }

    init(_ req: SimulationRequest) throws {
        func bad(_ a: String, _ r: String) -> PolychipError { .invalidArgument(kernel: "simulate", argument: a, reason: r) }
        let perNode = req.profile.interconnect.devicesPerNode.value
        _ = try SimulationLimits.world(devicesPerNode: max(1, req.devicesPerNode), nodes: req.nodes)
        guard req.devicesPerNode >= 1, req.devicesPerNode <= perNode else {
            throw bad("--devices", "\(req.devicesPerNode) devices per node; the \(req.profile.name) profile's node holds 1…\(perNode)")
        }
        guard req.nodes >= 1 else { throw bad("--nodes", "must be ≥ 1, got \(req.nodes)") }
        guard req.nodes == 1 || req.profile.interconnect.topology.value == .twoLevel else {
            throw bad("--nodes", "the \(req.profile.name) profile describes a single node (topology \(req.profile.interconnect.topology.value.rawValue))")
        }
        let pl = req.plan
        for (n, v) in [("--tp", pl.tp), ("--dp", pl.dp), ("--ep", pl.ep), ("--pp", pl.pp)] {
            try SimulationLimits.check(v, n, max: SimulationLimits.maxWorld)
        }
        let stage = pl.tp.multipliedReportingOverflow(by: pl.dp), all = stage.partialValue.multipliedReportingOverflow(by: pl.pp)
        guard !stage.overflow, !all.overflow, all.partialValue <= SimulationLimits.maxWorld, pl.stageSize % pl.ep == 0 else {
            throw bad("--tp", "the plan TP \(pl.tp) · DP \(pl.dp) · EP \(pl.ep) · PP \(pl.pp) is not a plan for at most \(SimulationLimits.maxWorld) devices")
        }
        guard req.plan.world == req.devicesPerNode * req.nodes else {
            throw bad("--tp", "the plan (\(req.plan)) uses \(req.plan.world) devices, not \(req.devicesPerNode * req.nodes)")
        }
        try SimulationLimits.check(req.batch, "--batch", max: SimulationLimits.maxBatch)
        try SimulationLimits.check(req.context, "--context", max: SimulationLimits.maxContext)
        guard req.batch * req.context <= SimulationLimits.maxStepTokens else {
            throw bad("--batch", "\(req.batch) sequences × \(req.context) tokens exceeds the \(SimulationLimits.maxStepTokens) tokens of one step the simulator handles")
        }
        guard req.plan.stageSize <= SimulationLimits.maxStageDevices else {
            throw bad("--pp", "a pipeline stage of \(req.plan.stageSize) devices exceeds \(SimulationLimits.maxStageDevices) (its all-to-all tables grow as the square); use more --pp stages")
        }
        guard req.groupSize >= 2, req.groupSize <= SimulationLimits.maxGroupSize, req.groupSize % 2 == 0 else {
            throw bad("--group-size", "must be even and in 2…\(SimulationLimits.maxGroupSize), got \(req.groupSize)")
        }
        guard req.reserveBytes >= 0, req.reserveBytes.isFinite else { throw bad("--reserve-gb", "must be ≥ 0") }
        try req.model.validate()
        self.req = req
        self.device = try SimulatedDevice(profile: req.profile, index: 0)
        self.model = device.model
        let s = req.plan.stageSize
        tl = Timeline(clock: [Double](repeating: 0, count: s), acc: [[Double]](repeating: [], count: s),
                      slices: req.recordTrace ? [] : nil)
    }

    // MARK: Pricing

    mutating func price(_ op: Op, _ inputs: [TensorDesc], count: Int = 1, quant: Quant = .none, bytes: Double? = nil) throws -> OpTime {
        let key = OpKey(op: op, inputs: inputs, count: count, quant: quant, bytesOverride: bytes)
        if let hit = cache[key] { return hit }
        // One pricing path with SimulatedDevice (KernelCostQuery(call)); quantized GEMMs and
        // repeated kernels override the dtype, the bytes or the count.
        let call = try op.validated(inputs)
        var traffic = bytes, dtype: ProfileDType? = nil
        switch quant {
        case .none: break
        case .w8a8:  // int8 weights and activations: both read at half the bf16 bytes
            traffic = traffic ?? call.cost.bytes - (Double(inputs[0].byteCount) + Double(inputs[1].byteCount)) / 2
            dtype = .int8
        case .w4a8:  // int8 activations against INT4 weights
            traffic = traffic ?? call.cost.bytes - Double(inputs[0].byteCount) / 2
            dtype = .int8
        }
        let t = try timeQuery(KernelCostQuery(call, count: count, dtype: dtype, bytes: traffic))
        cache[key] = t
        return t
    }

    func timeQuery(_ q: KernelCostQuery) throws -> OpTime {
        do {
            let m = try model.kernelTime(q)
            return OpTime(total: m.total, launch: m.launch, busy: m.total - m.launch, computeBound: m.compute >= m.memory)
        } catch {
            throw PolychipError.unsupported(kernel: q.name, device: device.id, reason: "\(error)")
        }
    }

    // MARK: Layers

    /// Tokens (rows) and sequences of DP group `d`.
    func dpShare(_ d: Int) -> (seqs: Int, tokens: Int) {
        let b = req.batch, dp = req.plan.dp
        let seqs = (d + 1) * b / dp - d * b / dp
        return (seqs, req.phase == .decode ? seqs : seqs * req.context)
    }

    /// A linear layer `x[m, k] · Wᵀ`, W `[n, k]`, stored as `kind` says.
    mutating func linear(_ name: String, _ group: String, m: Int, n: Int, k: Int, kind: WeightKind) throws -> (Int, OpTime) {
        let id = nameID(name, group)
        guard m > 0, n > 0, k > 0 else { return (id, OpTime(total: 0, launch: 0, busy: 0, computeBound: true)) }
        let x = TensorDesc([m, k], act)
        let t: OpTime
        switch req.weights.storage(kind) {
        case .float:
            t = try price(.matmul(transposeB: true), [x, TensorDesc([n, k], act)])
        case .int8:
            t = try price(.matmul(transposeB: true), [x, TensorDesc([n, k], act)], quant: .w8a8)
        case .int4:
            let g = WeightScheme.int4Group(k: k, preferred: req.groupSize)
            let f = Int4Format(groupSize: g, symmetric: true)
            let descs = [x, TensorDesc([n, k], .int4), TensorDesc([n, k / g], .f32)]
            t = try price(.int4Matmul(f), descs, quant: req.weights == .w4a8 ? .w4a8 : .none)
        }
        return (id, t)
    }

    mutating func vec(_ name: String, _ group: String, _ op: Op, _ inputs: [TensorDesc], count: Int = 1) throws -> (Int, OpTime) {
        let id = nameID(name, group)
        guard inputs.allSatisfy({ $0.elementCount > 0 }) else { return (id, OpTime(total: 0, launch: 0, busy: 0, computeBound: true)) }
        return (id, try price(op, inputs, count: count))
    }

    /// Prices one kernel or linear step of the layer description (`nil` for glue, experts
    /// and collectives, which the block walker prices with the plan's data).
    mutating func price(_ step: LayerStep) throws -> (Int, OpTime)? {
        switch step.action {
        case .kernel(let k):
            if let bytes = k.bytes { return (nameID(step.name, step.group), try price(k.op, k.inputs, count: k.count, bytes: bytes)) }
            return try vec(step.name, step.group, k.op, k.inputs, count: k.count)
        case .linear(let l):
            return try linear(step.name, step.group, m: l.m, n: l.n, k: l.k, kind: l.kind)
        case .experts, .glue, .collective:
            return nil
        }
    }

    /// Walks one block of the layer description on every stage rank: each rank's steps up to a
    /// collective, then the collective across ranks (`collective` prices it), and so on.
    /// `steps[r]` is rank `r`'s block (empty for a rank without tokens); `experts` prices a
    /// routed-expert step on a rank.
    mutating func runBlock(_ steps: [[LayerStep]], layer: Int,
                           experts: (inout ModelSimulator, Int, ExpertStep) throws -> OpTime? = { _, _, _ in nil },
                           collective: (inout ModelSimulator, LayerStep) throws -> Void) throws {
        let segments = steps.map { rank -> [[LayerStep]] in
            var out: [[LayerStep]] = [[]]
            for st in rank { if case .collective = st.action { out.append([]) } else { out[out.count - 1].append(st) } }
            return out
        }
        let template = steps.max { $0.count < $1.count } ?? []
        let collectives = template.filter { if case .collective = $0.action { return true } else { return false } }
        for i in 0...collectives.count {
            for (r, rank) in segments.enumerated() where i < rank.count {
                for st in rank[i] where st.rows > 0 {
                    if case .experts(let e) = st.action {
                        if let t = try experts(&self, r, e) { compute(r, nameID(st.name, st.group), t, layer: layer) }
                    } else if let (id, t) = try price(st) {
                        compute(r, id, t, layer: layer)
                    }
                }
            }
            if i < collectives.count { try collective(&self, collectives[i]) }
        }
    }

    /// The tensor-parallel all-reduce of a block's output (hidden rows of each DP group).
    mutating func tensorParallelAllReduce(_ step: LayerStep, layer: Int, shares: [(seqs: Int, tokens: Int)], group: [Int],
                                          tpGroups: [[Int]]) throws {
        guard req.plan.tp > 1 else { return }
        let id = nameID(step.name, step.group)
        let times = try tpGroups.enumerated().map { d, members in
            try collectiveTimes(.allReduce, bytes: Double(shares[d].tokens * req.model.hiddenSize * 2), group: members.map { group[$0] })
        }
        collective(tpGroups, times, id, layer: layer)
    }

    /// The description's dimensions for DP group `d`'s attention or dense FFN on a rank.
    func dims(_ share: (seqs: Int, tokens: Int)) -> LayerDims {
        LayerDims(tokens: share.tokens, sequences: share.seqs, keys: req.context, heads: req.model.heads / req.plan.tp,
                  phase: req.phase, act: act, expertWidth: req.model.moeIntermediate / req.plan.etp, etp: req.plan.etp, tp: req.plan.tp)
    }

    // MARK: Simulation

    mutating func simulate() throws -> SimulationReport {
        let c = req.model, plan = req.plan
        let s = plan.stageSize
        let layersPerStage = (0..<plan.pp).map { st in (st * c.numLayers / plan.pp)..<((st + 1) * c.numLayers / plan.pp) }
        var stageSeconds: [Double] = []
        var accTotal: [Double] = []
        var traces: [TraceSlice] = []
        var rng = SplitMix64(seed: req.seed)
        var stageStart = 0.0
        var sendSeconds: [Double] = []
        for (st, layers) in layersPerStage.enumerated() {
            tl.clock = [Double](repeating: 0, count: s)
            for r in 0..<s { tl.acc[r] = [Double](repeating: 0, count: names.count * 5) }
            tl.offset = stageStart
            tl.ranksBase = st * s
            if tl.slices != nil { tl.slices = [] }
            let group = (0..<s).map { globalIndex(stage: st, rank: $0) }
            let tpGroups = (0..<plan.dp).map { d in Array((d * plan.tp)..<((d + 1) * plan.tp)) }
            let shares = (0..<plan.dp).map(dpShare)
            // Embedding on the first stage.
            if st == 0 {
                let id = nameID("embedding lookup", "embedding + LM head")
                for r in 0..<s {
                    let m = shares[r / plan.tp].tokens
                    let bytes = Double(m * c.hiddenSize * 2 * 2)
                    let t = m == 0 ? OpTime(total: 0, launch: 0, busy: 0, computeBound: false)
                        : try timeQuery(KernelCostQuery(name: "embedding", unit: .vector, dtype: .bf16, flops: 0, bytes: bytes,
                                                        shape: .rows(count: m, length: c.hiddenSize)))
                    compute(r, id, t, layer: -1)
                }
            }
            for layer in layers {
                // Attention.
                let attention = (0..<s).map { r in LayerGraph.attention(c, dims(shares[r / plan.tp])) }
                try runBlock(attention, layer: layer) { sim, step in
                    try sim.tensorParallelAllReduce(step, layer: layer, shares: shares, group: group, tpGroups: tpGroups)
                }
                // FFN.
                if layer < c.firstKDense {
                    let dense = (0..<s).map { r in LayerGraph.denseFFN(c, dims(shares[r / plan.tp])) }
                    try runBlock(dense, layer: layer) { sim, step in
                        try sim.tensorParallelAllReduce(step, layer: layer, shares: shares, group: group, tpGroups: tpGroups)
                    }
                } else {
                    try moeLayer(layer: layer, shares: shares, group: group, tpGroups: tpGroups, rng: &rng)
                }
            }
            // LM head on the last stage (only the last token of each sequence).
            if st == plan.pp - 1 {
                for r in 0..<s {
                    let b = shares[r / plan.tp].seqs
                    let normID = nameID("final norm", "embedding + LM head")
                    if b > 0 {
                        compute(r, normID, try price(.rmsNorm(eps: 1e-6), [TensorDesc([b, c.hiddenSize], act), TensorDesc([c.hiddenSize], act)]), layer: c.numLayers)
                    }
                    let (id, t) = try linear("lm_head", "embedding + LM head", m: b, n: c.vocabSize / plan.tp, k: c.hiddenSize, kind: .embedding)
                    compute(r, id, t, layer: c.numLayers)
                }
                if plan.tp > 1 {
                    let id = nameID("lm_head.all_gather (TP)", "embedding + LM head")
                    let times = try tpGroups.enumerated().map { d, members in
                        try collectiveTimes(.allGather, bytes: Double(shares[d].seqs * c.vocabSize * 2), group: members.map { group[$0] })
                    }
                    collective(tpGroups, times, id, layer: c.numLayers)
                }
            }
            let stageTime = tl.clock.max() ?? 0
            // Pipeline send to the next stage: every rank sends its activations to its peer.
            var send = 0.0
            if st < plan.pp - 1 {
                let next = (0..<s).map { globalIndex(stage: st + 1, rank: $0) }
                var m = [[Double]](repeating: [Double](repeating: 0, count: 2 * s), count: 2 * s)
                for r in 0..<s { m[r][s + r] = Double(shares[r / plan.tp].tokens * c.hiddenSize * 2) / Double(plan.tp) }
                send = (try allToAllTimes(m, group: group + next)).max() ?? 0
            }
            sendSeconds.append(send)
            stageSeconds.append(stageTime)
            // The slowest rank's account for this stage.
            let critical = (0..<s).max { tl.clock[$0] < tl.clock[$1] } ?? 0
            let row = tl.acc[critical]
            if accTotal.count < row.count { accTotal += [Double](repeating: 0, count: row.count - accTotal.count) }
            for (i, v) in row.enumerated() { accTotal[i] += v }
            if send > 0 {
                let id = nameID("pipeline send (PP)", "pipeline")
                if accTotal.count < names.count * 5 { accTotal += [Double](repeating: 0, count: names.count * 5 - accTotal.count) }
                accTotal[id * 5 + 3] += send
            }
            if let sl = tl.slices { traces += sl }
            stageStart += stageTime + send
        }
        if accTotal.count < names.count * 5 { accTotal += [Double](repeating: 0, count: names.count * 5 - accTotal.count) }
        let latency = zip(stageSeconds, sendSeconds).reduce(0) { $0 + $1.0 + $1.1 }
        let memory = memoryFit()
        return SimulationReport.make(req: req, names: names, groups: nameGroup, acc: accTotal, latency: latency,
                                     stageSeconds: zip(stageSeconds, sendSeconds).map { $0 + $1 }, memory: memory,
                                     expertRows: expertRows, trace: req.recordTrace ? traces : nil)
    }

    /// One MoE FFN from the layer description: per rank its tokens' norm, router and permute,
    /// the dispatch on the sampled routing, the expert GEMMs on each rank's real per-expert row
    /// counts, the combine, the weighted sum, the shared expert, the TP all-reduce and the residual.
    mutating func moeLayer(layer: Int, shares: [(seqs: Int, tokens: Int)], group: [Int], tpGroups: [[Int]], rng: inout SplitMix64) throws {
        let c = req.model, plan = req.plan, h = c.hiddenSize, k = c.expertsPerToken, e = c.routedExperts
        let s = plan.stageSize
        // Tokens each rank dispatches: its share of its DP group's tokens, split over the TP ranks.
        let dispatch = (0..<s).map { r -> Int in
            let m = shares[r / plan.tp].tokens, i = r % plan.tp
            return (i + 1) * m / plan.tp - i * m / plan.tp
        }
        // Routing sample: counts[r][e] rows of rank r's tokens for expert e.
        let counts = Routing.sample(tokens: dispatch, experts: e, k: k, model: req.routing, rng: &rng)
        let perCol = e / plan.ep, etp = plan.etp
        // rows[i][j]: rows rank i sends to rank j (a copy to each ETP member of the expert's column).
        var rows = [[Int]](repeating: [Int](repeating: 0, count: s), count: s)
        var perExpertOnRank = [[Int]](repeating: [], count: s)
        for j in 0..<s {
            let col = j / etp
            let experts = (col * perCol)..<((col + 1) * perCol)
            perExpertOnRank[j] = experts.map { ex in (0..<s).reduce(0) { $0 + counts[$1][ex] } }
            for i in 0..<s { rows[i][j] = experts.reduce(0) { $0 + counts[i][$1] } }
        }
        let recv = (0..<s).map { j in (0..<s).reduce(0) { $0 + rows[$1][j] } }
        expertRows += recv
        let dispatchRow = Double(h) * (req.weights == .w4a8 ? 1 : 2) + (req.weights == .w4a8 ? 4 : 0)
        let steps = (0..<s).map { r -> [LayerStep] in
            var d = dims(shares[r / plan.tp])
            d.routed = dispatch[r]; d.expertRows = recv[r]
            return LayerGraph.moeFFN(c, d)  // a rank without tokens still runs the experts it holds
        }
        try runBlock(steps, layer: layer, experts: { sim, r, step in
            try sim.groupedExpertTime(perExpertOnRank[r], n: step.n, k: step.k)
        }, collective: { sim, step in
            switch step.action {
            case .collective(.expertDispatch):
                let bytes = rows.map { $0.map { Double($0) * dispatchRow } }
                sim.collective([Array(0..<s)], [try sim.allToAllTimes(bytes, group: group, messageBytes: dispatchRow, phase: .dispatch)],
                               sim.nameID(step.name, step.group), layer: layer)
            case .collective(.expertCombine):
                let bytes = (0..<s).map { i in (0..<s).map { j in Double(rows[j][i]) * Double(h * 2) } }
                sim.collective([Array(0..<s)], [try sim.allToAllTimes(bytes, group: group, messageBytes: Double(h * 2), phase: .combine)],
                               sim.nameID(step.name, step.group), layer: layer)
            default:
                // Routed shares and shared-expert partials are summed by one all-reduce.
                try sim.tensorParallelAllReduce(step, layer: layer, shares: shares, group: group, tpGroups: tpGroups)
            }
        })
    }

    /// A grouped expert GEMM over the experts with rows: each expert's segment padded to the
    /// tile separately, weights read only for experts that received rows.
    func groupedExpertTime(_ perExpert: [Int], n: Int, k: Int) throws -> OpTime {
        let active = perExpert.filter { $0 > 0 }
        let rows = active.reduce(0, +)
        let wBytes = Double(n * k) * req.weights.bytesPerParam(.experts, groupSize: req.groupSize)
        let aBytes: Double = req.weights == .w4a8 ? 1 : 2
        let bytes = Double(rows * k) * aBytes + Double(active.count) * wBytes + Double(rows * n) * 2
        let dtype: ProfileDType = req.weights == .w4a8 ? .int8 : .bf16
        return try timeQuery(KernelCostQuery(name: "int4-grouped-matmul", unit: .matrix, dtype: dtype,
                                             flops: 2 * Double(rows) * Double(n) * Double(k), bytes: bytes,
                                             shape: .groupedGemm(active.map { PolychipSimulated.GemmShape(m: $0, n: n, k: k) })))
    }
}

/// Samples which experts tokens pick.
enum Routing {
    /// Tokens sampled per MoE layer at most; larger batches scale the sampled counts.
    static let maxSampledTokens = 32768

    /// Rejections in a row before a zipf draw switches to sampling the unchosen experts directly.
    static let maxRejections = 64

    /// One expert drawn from those not in `chosen`, with probability ∝ exp(logWeight),
    /// normalized to the largest remaining weight so it never underflows to an all-zero mass.
    static func drawExcluding(_ chosen: ArraySlice<Int>, logWeight: [Double], rng: inout SplitMix64) -> Int {
        let remaining = logWeight.indices.filter { !chosen.contains($0) }
        let top = remaining.map { logWeight[$0] }.max() ?? 0
        let w = remaining.map { exp(logWeight[$0] - top) }
        var u = rng.uniform() * w.reduce(0, +)
        for (i, ex) in remaining.enumerated() {
            u -= w[i]
            if u < 0 { return ex }
        }
        return remaining.last ?? 0
    }

    /// `counts[r][e]`: rows of rank `r`'s `tokens[r]` tokens that go to expert `e` (k per token).
    static func sample(tokens: [Int], experts e: Int, k: Int, model: RoutingModel, rng: inout SplitMix64) -> [[Int]] {
        let total = tokens.reduce(0, +)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: e), count: tokens.count)
        switch model {
        case .balanced:
            // Round-robin over experts, continuing from rank to rank: closed form, not a loop
            // over the n·k rows (a prefill step can route billions).
            var next = 0
            for (r, n) in tokens.enumerated() {
                let rows = n * k, base = rows / e, extra = rows % e
                for j in 0..<e { counts[r][j] = base }
                for j in 0..<extra { counts[r][(next + j) % e] += 1 }
                next = (next + extra) % e
            }
            return counts
        case .uniform, .zipf:
            var cdf: [Double] = []
            var logWeight: [Double] = []  // zipf: −s·log(rank), per expert
            if case .zipf(let sExp) = model {
                var perm = Array(0..<e)
                for i in stride(from: e - 1, to: 0, by: -1) { perm.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                logWeight = [Double](repeating: 0, count: e)
                for (rank, ex) in perm.enumerated() { logWeight[ex] = -sExp * log(Double(rank + 1)) }
                let w = logWeight.map { exp($0) }
                let sum = w.reduce(0, +)
                var acc = 0.0
                cdf = w.map { acc += $0 / sum; return acc }
            }
            let scale = total > maxSampledTokens ? Double(total) / Double(maxSampledTokens) : 1
            var chosen = [Int](repeating: -1, count: k)
            for (r, n) in tokens.enumerated() {
                let sampled = scale > 1 ? Int((Double(n) / scale).rounded(.up)) : n
                guard sampled > 0 else { continue }
                var local = [Int](repeating: 0, count: e)
                for _ in 0..<sampled {
                    var picked = 0, rejected = 0
                    while picked < k {
                        let ex: Int
                        if cdf.isEmpty { ex = Int(rng.next() % UInt64(e)) } else if rejected < maxRejections {
                            let u = rng.uniform()
                            var lo = 0, hi = e - 1
                            while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < u { lo = mid + 1 } else { hi = mid } }
                            ex = lo
                        } else {
                            // Heavy skew: the experts not chosen yet may hold too little of the mass
                            // for the CDF to reach them. Draw from them directly (the same
                            // conditional distribution rejection sampling targets).
                            ex = drawExcluding(chosen[0..<picked], logWeight: logWeight, rng: &rng)
                        }
                        if !chosen[0..<picked].contains(ex) { chosen[picked] = ex; picked += 1; rejected = 0 } else { rejected += 1 }
                    }
                    for ex in chosen { local[ex] += 1 }
                }
                if sampled == n { counts[r] = local } else {
                    // Scale to n tokens, keeping exactly n·k rows (largest remainders first).
                    let f = Double(n) / Double(sampled)
                    var scaled = local.map { Int((Double($0) * f).rounded(.down)) }
                    var missing = n * k - scaled.reduce(0, +)
                    let order = local.indices.sorted { (Double(local[$0]) * f).truncatingRemainder(dividingBy: 1) > (Double(local[$1]) * f).truncatingRemainder(dividingBy: 1) }
                    var i = 0
                    while missing > 0 && !order.isEmpty { scaled[order[i % order.count]] += 1; missing -= 1; i += 1 }
                    counts[r] = scaled
                }
            }
            return counts
        }
    }
}
