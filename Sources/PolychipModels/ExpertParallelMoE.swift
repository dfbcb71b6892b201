import PolychipCore

/// Options of ``ExpertParallelMoE``.
public struct ExpertParallelOptions: Sendable, Hashable, Codable {
    /// Shard the shared expert's intermediate dimension over the mesh (tensor parallelism):
    /// every rank all-gathers the tokens, computes its slice of the shared expert, and an
    /// all-reduce sums the partial outputs. Off: every rank runs the whole shared expert on
    /// its own tokens.
    public var sharedTensorParallel: Bool
    /// How device faults are retried: every kernel, upload, download and collective of a step
    /// is run again in place on a transient fault; a lost device is replaced by the next spare
    /// (``ExpertParallelMoE/spares``) and the step re-run from the caller's host values.
    /// Default ``RetryPolicy/none``: the first fault is thrown.
    public var retry: RetryPolicy

    /// Creates options.
    public init(sharedTensorParallel: Bool = false, retry: RetryPolicy = .none) {
        self.sharedTensorParallel = sharedTensorParallel
        self.retry = retry
    }

    /// Decodes options; a missing `retry` is ``RetryPolicy/none``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sharedTensorParallel = try c.decode(Bool.self, forKey: .sharedTensorParallel)
        retry = try c.decodeIfPresent(RetryPolicy.self, forKey: .retry) ?? .none
    }
}

/// What one expert-parallel forward pass did.
public struct ExpertParallelStep: Sendable {
    /// The layer's output `[T, H]`, in the input's dtype.
    public var output: HostTensor
    /// Tokens each rank routed (its contiguous slice of the batch).
    public var tokensPerRank: [Int]
    /// The experts each rank holds.
    public var expertsPerRank: [Range<Int>]
    /// `dispatchCounts[i][j]`: (token, slot) rows rank `i` sent to rank `j` (the diagonal stays local).
    public var dispatchCounts: [[Int]]
    /// Rows each rank ran through its experts (the routing's load per device).
    public var expertRowsPerRank: [Int]
    /// Simulated meshes: the step's modeled duration on the virtual clocks, from the first rank's
    /// start to the slowest rank's end (`nil` when the mesh measures instead of modeling).
    public var modeledSeconds: Double?
    /// Simulated meshes: each rank's end on the virtual clock relative to the step's start.
    public var rankSeconds: [Double]?
    /// Wall-clock seconds of the whole forward pass on this host.
    public var wallSeconds: Double
    /// The device of each rank the step finished on (differs from the layer's first mesh after
    /// a failover).
    public var devices: [String]
    /// Every failed attempt during the step (faults retried in place, failovers), in order.
    public var failedAttempts: [RetryAttempt]

    /// The largest per-rank expert load divided by the mean (1 = perfectly balanced).
    public var imbalance: Double {
        let mean = Double(expertRowsPerRank.reduce(0, +)) / Double(max(1, expertRowsPerRank.count))
        return mean > 0 ? Double(expertRowsPerRank.max() ?? 0) / mean : 1
    }
}

/// The ``Op/moeLayer(_:)`` run expert-parallel on a ``Mesh``.
///
/// Expert `e` of `E` lives on rank `⌊e·P/E⌋`-style contiguous ranges (rank `r` holds experts
/// `⌊r·E/P⌋ ..< ⌊(r+1)·E/P⌋`), tokens are split into contiguous slices, one per rank, and each
/// rank:
///
/// 1. computes its tokens' router logits in f32 (`matmul` against an f32 copy of the router
///    weight, as the layer's contract says) and routes them (`moeRouter`);
/// 2. groups its (token, slot) rows by expert (`moePermute`) — which also groups them by
///    destination rank, since experts are contiguous per rank — and sends them with a
///    variable-count `allToAll` whose counts come from the routing;
/// 3. regroups the received rows by local expert (`moePermute` with local ids) and runs the
///    grouped expert GEMMs (`groupedMatmul` or `int4GroupedMatmul`), SwiGLU and the down GEMM;
/// 4. restores the received order (`moeCombine` with unit weights, an exact gather), returns the
///    rows with the transposed `allToAll`, and applies the routing weights (`moeCombine`);
/// 5. adds the shared expert, either locally or tensor-parallel (`allGather` of the tokens,
///    a slice of the intermediate dimension per rank, `allReduce` of the partial outputs).
///
/// On a simulated mesh every kernel advances its rank's virtual clock by the profile's modeled
/// time and every collective is a barrier, so the rank with the most routed rows sets the step
/// time. The result equals the single-device layer within the `moeLayer` conformance tolerance.
///
/// Faults: under ``ExpertParallelOptions/retry`` every kernel, upload, download and collective
/// is retried in place on a transient device fault (a failed attempt stores nothing, so inputs
/// stay intact and a retry rewrites its outputs). When a device is lost, every rank on it moves
/// to the next unused device of ``spares``: that rank's weights are uploaded again from the
/// host copies the layer keeps, and the step runs again from the caller's `x`. A fault the
/// policy does not retry, or one left when attempts or spares run out, is thrown as the
/// `PolychipError` it is; the caller's host values are never written. ``log`` keeps every
/// failed attempt.
///
/// Across processes (``init(processGroup:device:params:weights:options:log:)``, e.g. an MPI
/// job): each process is one rank with its own device and runs only that rank's part of every
/// step; the routing counts are exchanged with ``ProcessGroup/allGather(bytes:)`` and the
/// collectives run through the group. Every rank calls ``forward(_:)`` with the same `x` and
/// gets the whole output back (each rank's rows gathered from the group). A failed
/// collective throws on every surviving rank (the group's timeout bounds the wait); lost
/// devices are not replaced across processes.
public final class ExpertParallelMoE: Sendable {
    /// The mesh the layer runs on now (after a failover: with the lost device replaced). Across
    /// processes: a mesh of this process's one device.
    public var mesh: Mesh { placement.withLock { $0.mesh } }
    /// The process group when the ranks are processes (nil: every rank is in ``mesh``).
    public let processGroup: (any ProcessGroup)?
    /// Number of ranks (the mesh's size, or the process group's).
    public let rankCount: Int
    /// The global rank of the mesh's first device (0, or this process's rank in the group).
    public let firstRank: Int
    /// The layer's parameters (routing, expert format, shared expert).
    public let params: MoELayerParams
    /// Options.
    public let options: ExpertParallelOptions
    /// Devices that replace a lost device, in order (each used at most once).
    public let spares: [any Device]
    /// Every failed attempt of every step (and of placing the weights).
    public let log: RetryLog
    /// Experts per rank.
    public let expertRanges: [Range<Int>]
    /// Shared-expert intermediate columns per rank (tensor parallel), or nil.
    public let sharedRanges: [Range<Int>]?

    private let hidden: Int
    private let experts: Int
    private let weightDescs: [TensorDesc]
    private let perWeight: [String]
    private let hostWeights: [String: HostTensor]
    private let placement: Locked<Placement>

    struct RankWeights: @unchecked Sendable {
        // @unchecked: immutable after init; Tensor is Sendable, the struct only groups them.
        var router: Tensor          // f32 [E, H]
        var bias: Tensor?           // f32 [E]
        var gate: [Tensor]          // float [E_r, F, H] or q, scales[, zeros]
        var up: [Tensor]
        var down: [Tensor]
        var shared: [Tensor]        // gate [Fs_r, H], up [Fs_r, H], down [H, Fs_r]; empty when none
    }

    /// Where the layer lives: the mesh, each rank's weights, and how many spares are used.
    struct Placement: Sendable {
        var mesh: Mesh
        var ranks: [RankWeights?]   // nil: not placed yet (or its device was lost)
        var sparesUsed: Int
    }

    /// Distributes the layer's weights over the mesh.
    /// - Parameters:
    ///   - weights: the ``Op/moeLayer(_:)`` inputs after `x`, in ``Op/inputNames`` order
    ///     (`routerWeight, [bias], gate…, up…, down…, [sharedGate, sharedUp, sharedDown]`).
    ///     The layer keeps these host values to re-upload a rank's weights after a failover.
    ///   - spares: devices that replace a lost mesh device (see ``ExpertParallelOptions/retry``).
    ///   - log: where failed attempts are recorded (a new log by default).
    /// - Throws: `PolychipError` when the weights do not fit the layer's contract, or a device
    ///   fault placing them that the retry policy does not absorb.
    public convenience init(mesh: Mesh, params: MoELayerParams, weights: [HostTensor], options: ExpertParallelOptions = .init(),
                            spares: [any Device] = [], log: RetryLog = RetryLog()) throws {
        try self.init(mesh: mesh, group: nil, params: params, weights: weights, options: options, spares: spares, log: log)
    }

    /// Distributes the layer's weights over a group of processes: this process is rank
    /// `processGroup.rank` and holds that rank's experts (and shared-expert slice) on `device`.
    /// Every rank must create the layer with the same parameters and weights.
    public convenience init(processGroup: any ProcessGroup, device: any Device, params: MoELayerParams, weights: [HostTensor],
                            options: ExpertParallelOptions = .init(), log: RetryLog = RetryLog()) throws {
        try self.init(mesh: try Mesh(devices: [device]), group: processGroup, params: params, weights: weights, options: options,
                      spares: [], log: log)
    }

    private init(mesh: Mesh, group: (any ProcessGroup)?, params: MoELayerParams, weights: [HostTensor], options: ExpertParallelOptions,
                 spares: [any Device], log: RetryLog) throws {
        let op = Op.moeLayer(params)
        let names = Array(op.inputNames.dropFirst())
        guard weights.count == names.count else {
            throw PolychipError.arityMismatch(kernel: "moe-layer-ep", what: "weights (\(names.joined(separator: ", ")))",
                                              expected: names.count, got: weights.count)
        }
        guard let rw = weights.first, rw.desc.rank == 2 else {
            throw PolychipError.shapeMismatch(kernel: "moe-layer-ep", argument: "routerWeight", expected: "[E, H]",
                                              got: weights.first.map { "\($0.desc.shape)" } ?? "nothing")
        }
        let (e, h) = (rw.desc.shape[0], rw.desc.shape[1])
        // The full contract, checked once with a one-token batch.
        _ = try op.validate([TensorDesc([1, h], rw.desc.dtype)] + weights.map(\.desc))
        self.params = params
        self.options = options
        self.spares = spares
        self.log = log
        self.hidden = h
        self.experts = e
        self.weightDescs = weights.map(\.desc)
        self.processGroup = group
        let p = group?.size ?? mesh.size
        self.rankCount = p
        self.firstRank = group?.rank ?? 0
        self.expertRanges = (0..<p).map { r in (r * e / p)..<((r + 1) * e / p) }
        var byName: [String: HostTensor] = [:]
        for (n, w) in zip(names, weights) { byName[n] = w }
        byName["routerWeight"] = try HostTensor(rw.desc.shape, .f32, floats: rw.floats)
        self.hostWeights = byName
        self.perWeight = { switch params.experts {
            case .float: return [""]
            case .int4(let f): return f.symmetric ? [".q", ".scales"] : [".q", ".scales", ".zeros"]
        } }()
        var shared: [Range<Int>]? = nil
        if params.hasShared, options.sharedTensorParallel, let sg = byName["sharedGate"] {
            let fs = sg.desc.shape[0]
            shared = (0..<p).map { r in (r * fs / p)..<((r + 1) * fs / p) }
        }
        self.sharedRanges = shared
        self.placement = Locked(Placement(mesh: mesh, ranks: Array(repeating: nil, count: p), sparesUsed: 0))
        // Placing the weights is itself retried: a lost device is replaced by a spare.
        try withFailover { _ in }
    }

    /// Rank `r`'s weights, uploaded to its device of `mesh` (each upload retried in place on a
    /// transient fault).
    private func rankWeights(_ r: Int, on mesh: Mesh) throws -> RankWeights {
        let dev = mesh.devices[r - firstRank]
        let ranges = expertRanges
        func put(_ t: HostTensor) throws -> Tensor {
            try options.retry.run("upload", device: dev.id, log: log) { _ in try dev.tensor(t) }
        }
        func weight(_ name: String) throws -> HostTensor {
            guard let w = hostWeights[name] else {
                throw PolychipError.arityMismatch(kernel: "moe-layer-ep", what: "weight '\(name)'", expected: 1, got: 0)
            }
            return w
        }
        func slices(_ base: String) throws -> [Tensor] {
            try perWeight.map { suffix in try put(try Self.sliceLeading(try weight(base + suffix), ranges[r])) }
        }
        var sharedT: [Tensor] = []
        if params.hasShared {
            let (sg, su, sd) = (try weight("sharedGate"), try weight("sharedUp"), try weight("sharedDown"))
            if let sr = sharedRanges?[r] {
                sharedT = [try put(try Self.sliceLeading(sg, sr)), try put(try Self.sliceLeading(su, sr)),
                           try put(try Self.sliceColumns(sd, sr))]
            } else {
                sharedT = [try put(sg), try put(su), try put(sd)]
            }
        }
        return RankWeights(router: try put(try weight("routerWeight")), bias: try hostWeights["bias"].map(put),
                           gate: try slices("gate"), up: try slices("up"), down: try slices("down"), shared: sharedT)
    }

    /// Places any rank whose weights are missing, then runs `body` on the placement. When either
    /// fails because a mesh device is lost and the policy fails over, replaces that device by the
    /// next unused spare, drops the weights of its ranks (placed again on the spare by the next
    /// round, from the layer's host copies) and starts over.
    private func withFailover<T>(_ body: (Placement) throws -> T) throws -> T {
        var failovers = 0
        var current = placement.withLock { $0 }
        while true {
            do {
                for l in 0..<current.mesh.size where current.ranks[l] == nil {
                    current.ranks[l] = try rankWeights(firstRank + l, on: current.mesh)
                }
                let placed = current
                placement.withLock { $0 = placed }
                return try body(placed)
            } catch {
                guard options.retry.decision(for: error) == .failover, failovers + 1 < options.retry.maxAttempts,
                      case .deviceFault(let lost, _, _, _)? = error as? PolychipError,
                      current.mesh.devices.contains(where: { $0.id == lost }),
                      current.sparesUsed < spares.count else { throw error }
                let spare = spares[current.sparesUsed]
                let old = current.mesh
                let mesh = try Mesh(devices: old.devices.map { $0.id == lost ? spare : $0 }, topology: old.topology,
                                    communicator: old.communicator)
                let clock = (0..<old.size).reduce(0.0) { max($0, old.queues[$1].virtualTime, old.commQueues[$1].virtualTime) }
                for q in mesh.queues + mesh.commQueues { q.wait(until: clock) }
                // Ranks on surviving devices keep their weights.
                let ranks = (0..<old.size).map { old.devices[$0].id == lost ? nil : current.ranks[$0] }
                log.failedOver(from: lost, to: spare.id)
                current = Placement(mesh: mesh, ranks: ranks, sparesUsed: current.sparesUsed + 1)
                let replaced = current
                placement.withLock { $0 = replaced }
                failovers += 1
            }
        }
    }

    /// Validates `inputs` (the full ``Op/moeLayer(_:)`` input list, `x` first) and runs the
    /// layer expert-parallel on `mesh`, with `spares` replacing lost devices.
    public static func run(on mesh: Mesh, params: MoELayerParams, inputs: [HostTensor],
                           options: ExpertParallelOptions = .init(), spares: [any Device] = [],
                           log: RetryLog = RetryLog()) throws -> ExpertParallelStep {
        guard let x = inputs.first else {
            throw PolychipError.arityMismatch(kernel: "moe-layer-ep", what: "inputs", expected: Op.moeLayer(params).inputNames.count, got: 0)
        }
        let layer = try ExpertParallelMoE(mesh: mesh, params: params, weights: Array(inputs.dropFirst()), options: options,
                                          spares: spares, log: log)
        return try layer.forward(x)
    }

    /// Runs the layer on `x[T, H]`; returns the output and what each rank did. `x` is only
    /// read; after a failover the step runs again from it.
    public func forward(_ x: HostTensor) throws -> ExpertParallelStep {
        let wall0 = Queue.wallClock()
        _ = try Op.moeLayer(params).validate([x.desc] + weightDescs)
        let logged = log.attempts.count
        var step = try withFailover { try forward(x, on: $0) }
        step.failedAttempts = Array(log.attempts.dropFirst(logged))
        step.wallSeconds = Queue.wallClock() - wall0
        return step
    }

    private func forward(_ x: HostTensor, on pl: Placement) throws -> ExpertParallelStep {
        let mesh = pl.mesh, ranks = pl.ranks.compactMap { $0 }
        guard ranks.count == mesh.size else {
            throw PolychipError.invalidTensor(reason: "moe-layer-ep: weights are placed on \(ranks.count) of \(mesh.size) ranks")
        }
        let retry = options.retry, log = self.log, group = processGroup
        let p = rankCount, t = x.desc.shape[0], h = hidden, e = experts
        // The ranks this process runs (all of them on a mesh; its own across processes). Arrays
        // of device tensors below are indexed by `r − base`, host-side bookkeeping by `r`.
        let base = firstRank, local = base..<(base + mesh.size)
        let dt = x.desc.dtype
        let k = params.router.topK
        let rowBytes = h * dt.bitWidth / 8
        let clock0 = (0..<mesh.size).reduce(0.0) { max($0, mesh.queues[$1].virtualTime, mesh.commQueues[$1].virtualTime) }
        for q in mesh.queues { q.wait(until: clock0) }
        let tokenRanges = (0..<p).map { r in (r * t / p)..<((r + 1) * t / p) }
        let xs = try tokenRanges.map { try Self.sliceLeading(x, $0) }

        // Every device operation under the retry policy (in place; failover is withFailover's).
        func device(_ r: Int) -> any Device { mesh.devices[r - base] }
        func retried<T>(_ r: Int, _ what: String, _ body: () throws -> T) throws -> T {
            try retry.run(what, device: device(r).id, log: log) { _ in try body() }
        }
        func run(_ r: Int, _ op: Op, _ inputs: [Tensor]) throws -> [Tensor] {
            let call = try op.validated(inputs.map(\.desc))
            let outs = try retried(r, "allocate") { try call.outputs.map { try device(r).allocate($0) } }
            try mesh.queues[r - base].enqueue(call, inputs: inputs, outputs: outs, retry: retry, log: log)
            return outs
        }
        func empty(_ r: Int, _ shape: [Int], _ d: DType) throws -> Tensor {
            try retried(r, "allocate") { try device(r).allocate(TensorDesc(shape, d)) }
        }
        func upload(_ r: Int, _ v: HostTensor) throws -> Tensor { try retried(r, "upload") { try device(r).tensor(v) } }
        func download(_ r: Int, _ t: Tensor) throws -> HostTensor { try retried(r, "download") { try device(r).download(t) } }
        func collective(_ c: Collective, _ inputs: [Tensor], _ outputs: [Tensor]) throws {
            try retry.run(c.description, device: mesh.devices.map(\.id).joined(separator: ","), log: log) { _ in
                if let group {
                    try Self.run(c, in: group, input: inputs[0], output: outputs[0], on: mesh)
                } else {
                    try mesh.run(c, inputs: inputs, outputs: outputs)
                }
            }
            mesh.waitForCommunication()  // the next kernels consume its result
        }

        // 1–2. Route each rank's tokens and group its rows by expert (= by destination rank).
        var xT: [Tensor] = [], weightsT: [Tensor?] = [], rowsT: [Tensor] = [], mapT: [Tensor?] = []
        var perExpert: [[Int]] = []   // perExpert[r][e]: rows of rank r's tokens for expert e
        for r in local {
            let xr = try upload(r, xs[r])
            xT.append(xr)
            guard !tokenRanges[r].isEmpty else {
                weightsT.append(nil); mapT.append(nil); rowsT.append(try empty(r, [0, h], dt))
                perExpert.append([Int](repeating: 0, count: e))
                continue
            }
            let x32 = try upload(r, try HostTensor(xs[r].desc.shape, .f32, floats: xs[r].floats))
            let logits = try run(r, .matmul(transposeB: true), [x32, ranks[r - base].router])[0]
            let routed = try run(r, .moeRouter(params.router), [logits] + (ranks[r - base].bias.map { [$0] } ?? []))
            let perm = try run(r, .moePermute(numExperts: e), [xr, routed[1]])
            let offsets = try download(r, perm[1]).ints
            perExpert.append((0..<e).map { offsets[$0 + 1] - offsets[$0] })
            weightsT.append(routed[0]); rowsT.append(perm[0]); mapT.append(perm[2])
        }
        if let group {
            // Every rank needs every rank's routing counts (the all-to-all's count matrix).
            perExpert = try group.allGather(ints: perExpert[0])
            guard perExpert.count == p, perExpert.allSatisfy({ $0.count == e }) else {
                throw PolychipError.collectiveMismatch(collective: "moe-layer-ep", reason: "the ranks' routing counts do not form a \(p)×\(e) matrix: the ranks disagree on the layer")
            }
        }
        let counts = (0..<p).map { i in expertRanges.map { rg in rg.reduce(0) { $0 + perExpert[i][$1] } } }

        // 3. Dispatch.
        let recvRows = (0..<p).map { j in (0..<p).reduce(0) { $0 + counts[$1][j] } }
        let recv = try local.map { try empty($0, [recvRows[$0], h], dt) }
        try collective(.allToAll(counts: counts), rowsT, recv)

        // 4. Grouped expert GEMMs on each rank's received rows, back in received order.
        var back: [Tensor] = []
        for j in local {
            let rg = expertRanges[j]
            guard recvRows[j] > 0 else { back.append(try empty(j, [0, h], dt)); continue }
            var local: [Int32] = []
            local.reserveCapacity(recvRows[j])
            for i in 0..<p { for ex in rg { local += repeatElement(Int32(ex - rg.lowerBound), count: perExpert[i][ex]) } }
            let ids = try upload(j, try HostTensor([recvRows[j], 1], int32s: local))
            let grouped = try run(j, .moePermute(numExperts: rg.count), [recv[j - base], ids])
            let gemm: Op
            switch params.experts {
            case .float: gemm = .groupedMatmul(transposeB: true)
            case .int4(let f): gemm = .int4GroupedMatmul(f)
            }
            let w = ranks[j - base]
            let g = try run(j, gemm, [grouped[0]] + w.gate + [grouped[1]])[0]
            let u = try run(j, gemm, [grouped[0]] + w.up + [grouped[1]])[0]
            let act = try run(j, .swiglu, [g, u])[0]
            let d = try run(j, gemm, [act] + w.down + [grouped[1]])[0]
            let ones = try upload(j, try HostTensor([recvRows[j], 1], .f32, floats: [Float](repeating: 1, count: recvRows[j])))
            back.append(try run(j, .moeCombine, [d, grouped[2], ones])[0])
        }

        // 5. Return the rows (transposed counts) and apply the routing weights.
        let countsBack = (0..<p).map { j in (0..<p).map { i in counts[i][j] } }
        let ret = try local.map { try empty($0, [tokenRanges[$0].count * k, h], dt) }
        try collective(.allToAll(counts: countsBack), back, ret)
        var routedOut: [Tensor] = []
        for r in local {
            if let wts = weightsT[r - base], let map = mapT[r - base] {
                routedOut.append(try run(r, .moeCombine, [ret[r - base], map, wts])[0])
            } else {
                routedOut.append(try empty(r, [0, h], dt))
            }
        }

        // 6. Shared expert.
        var outT = routedOut
        if params.hasShared {
            if let sr = sharedRanges {
                let tmax = tokenRanges.map(\.count).max() ?? 0
                let padded = try local.map { r -> Tensor in
                    var bytes = xs[r].bytes
                    bytes += [UInt8](repeating: 0, count: (tmax - tokenRanges[r].count) * rowBytes)
                    return try upload(r, try HostTensor(TensorDesc([tmax, h], dt), bytes: bytes))
                }
                let all = try local.map { try empty($0, [p * tmax, h], dt) }
                try collective(.allGather, padded, all)
                var partial: [Tensor] = []
                for r in local {
                    let w = ranks[r - base].shared
                    if sr[r].isEmpty || tmax == 0 {
                        partial.append(try upload(r, try HostTensor(zeros: TensorDesc([p * tmax, h], dt))))
                        continue
                    }
                    let g = try run(r, .matmul(transposeB: true), [all[r - base], w[0]])[0]
                    let u = try run(r, .matmul(transposeB: true), [all[r - base], w[1]])[0]
                    let a = try run(r, .swiglu, [g, u])[0]
                    partial.append(try run(r, .matmul(transposeB: true), [a, w[2]])[0])
                }
                let summed = try local.map { try empty($0, [p * tmax, h], dt) }
                try collective(.allReduce, partial, summed)
                for r in local where !tokenRanges[r].isEmpty {
                    guard let buffer = summed[r - base].buffer else { continue }
                    let view = Tensor(desc: TensorDesc([tokenRanges[r].count, h], dt), buffer: buffer, byteOffset: r * tmax * rowBytes)
                    outT[r - base] = try run(r, .add, [routedOut[r - base], view])[0]
                }
            } else {
                for r in local where !tokenRanges[r].isEmpty {
                    let w = ranks[r - base].shared
                    let g = try run(r, .matmul(transposeB: true), [xT[r - base], w[0]])[0]
                    let u = try run(r, .matmul(transposeB: true), [xT[r - base], w[1]])[0]
                    let a = try run(r, .swiglu, [g, u])[0]
                    let d = try run(r, .matmul(transposeB: true), [a, w[2]])[0]
                    outT[r - base] = try run(r, .add, [routedOut[r - base], d])[0]
                }
            }
        }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(t * rowBytes)
        for r in local { bytes += try download(r, outT[r - base]).bytes }
        if let group {
            // Every rank returns the whole output: the ranks' rows in rank order.
            let parts = try group.allGather(bytes: bytes)
            for (r, part) in parts.enumerated() where part.count != tokenRanges[r].count * rowBytes {
                throw PolychipError.collectiveMismatch(collective: "moe-layer-ep", reason: "rank \(r) returned \(part.count) output bytes, expected \(tokenRanges[r].count * rowBytes)")
            }
            bytes = parts.flatMap { $0 }
        }
        let output = try HostTensor(x.desc, bytes: bytes)
        let modeled = mesh.queues.contains { $0.records.last?.source == .modeled }
        let ends = (0..<mesh.size).map { max(mesh.queues[$0].virtualTime, mesh.commQueues[$0].virtualTime) - clock0 }
        return ExpertParallelStep(output: output, tokensPerRank: tokenRanges.map(\.count), expertsPerRank: expertRanges,
                                  dispatchCounts: counts, expertRowsPerRank: recvRows,
                                  modeledSeconds: modeled ? ends.max() : nil, rankSeconds: modeled ? ends : nil,
                                  wallSeconds: 0, devices: mesh.devices.map(\.id), failedAttempts: [])
    }

    /// Runs one collective of a process group on the one-device `mesh` and records it on the
    /// mesh's communication queue, as ``Mesh/run(_:inputs:outputs:)`` does for a mesh.
    static func run(_ c: Collective, in group: any ProcessGroup, input: Tensor, output: Tensor, on mesh: Mesh) throws {
        let timing = try group.run(c, input: input, output: output, on: mesh.devices[0])
        let bytes = c.bytesSent(rank: group.rank, of: group.size, input: input.desc)
        let rec: KernelRecord
        switch timing {
        case .measured(let s):
            let end = Queue.wallClock()
            rec = KernelRecord(kernel: c.description, inputShapes: [input.shape], dtypes: [input.dtype], device: mesh.devices[0].id,
                               start: end - s, end: end, flops: 0, bytes: bytes, source: .measured)
        case .modeled(let b):
            let start = max(mesh.queues[0].virtualTime, mesh.commQueues[0].virtualTime)
            rec = KernelRecord(kernel: c.description, inputShapes: [input.shape], dtypes: [input.dtype], device: mesh.devices[0].id,
                               start: start, end: start + b.total, flops: 0, bytes: bytes, source: .modeled, breakdown: b)
        }
        mesh.commQueues[0].append(rec)
    }

    /// Rows `range` of the leading dimension of `t` (works for packed int4 when the trailing
    /// dimensions hold a whole number of bytes, as every INT4 weight does).
    static func sliceLeading(_ t: HostTensor, _ range: Range<Int>) throws -> HostTensor {
        let lead = t.desc.shape.first ?? 0
        guard range.lowerBound >= 0, range.upperBound <= lead else {
            throw PolychipError.invalidTensor(reason: "rows \(range) of \(t.desc)")
        }
        let per = lead > 0 ? t.bytes.count / lead : 0
        var shape = t.desc.shape
        shape[0] = range.count
        return try HostTensor(TensorDesc(shape, t.desc.dtype), bytes: Array(t.bytes[(range.lowerBound * per)..<(range.upperBound * per)]))
    }

    /// Columns `range` of a float matrix `[R, C]`.
    static func sliceColumns(_ t: HostTensor, _ range: Range<Int>) throws -> HostTensor {
        let (rows, cols) = (t.desc.shape[0], t.desc.shape[1])
        let es = t.desc.dtype.bitWidth / 8
        var out: [UInt8] = []
        out.reserveCapacity(rows * range.count * es)
        for r in 0..<rows { out += t.bytes[((r * cols + range.lowerBound) * es)..<((r * cols + range.upperBound) * es)] }
        return try HostTensor(TensorDesc([rows, range.count], t.desc.dtype), bytes: out)
    }
}
