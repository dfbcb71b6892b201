import PolychipCore

/// Options of ``ExpertParallelMoE``.
public struct ExpertParallelOptions: Sendable, Hashable, Codable {
    /// Shard the shared expert's intermediate dimension over the mesh (tensor parallelism):
    /// every rank all-gathers the tokens, computes its slice of the shared expert, and an
    /// all-reduce sums the partial outputs. Off: every rank runs the whole shared expert on
    /// its own tokens.
    public var sharedTensorParallel: Bool

    /// Creates options.
    public init(sharedTensorParallel: Bool = false) { self.sharedTensorParallel = sharedTensorParallel }
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
public final class ExpertParallelMoE: Sendable {
    /// The mesh the layer runs on.
    public let mesh: Mesh
    /// The layer's parameters (routing, expert format, shared expert).
    public let params: MoELayerParams
    /// Options.
    public let options: ExpertParallelOptions
    /// Experts per rank.
    public let expertRanges: [Range<Int>]
    /// Shared-expert intermediate columns per rank (tensor parallel), or nil.
    public let sharedRanges: [Range<Int>]?

    private let hidden: Int
    private let experts: Int
    private let weightDescs: [TensorDesc]
    private let ranks: [RankWeights]

    struct RankWeights: @unchecked Sendable {
        // @unchecked: immutable after init; Tensor is Sendable, the struct only groups them.
        var router: Tensor          // f32 [E, H]
        var bias: Tensor?           // f32 [E]
        var gate: [Tensor]          // float [E_r, F, H] or q, scales[, zeros]
        var up: [Tensor]
        var down: [Tensor]
        var shared: [Tensor]        // gate [Fs_r, H], up [Fs_r, H], down [H, Fs_r]; empty when none
    }

    /// Distributes the layer's weights over the mesh.
    /// - Parameters:
    ///   - weights: the ``Op/moeLayer(_:)`` inputs after `x`, in ``Op/inputNames`` order
    ///     (`routerWeight, [bias], gate…, up…, down…, [sharedGate, sharedUp, sharedDown]`).
    /// - Throws: `PolychipError` when the weights do not fit the layer's contract.
    public init(mesh: Mesh, params: MoELayerParams, weights: [HostTensor], options: ExpertParallelOptions = .init()) throws {
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
        self.mesh = mesh
        self.params = params
        self.options = options
        self.hidden = h
        self.experts = e
        self.weightDescs = weights.map(\.desc)
        let p = mesh.size
        let ranges = (0..<p).map { r in (r * e / p)..<((r + 1) * e / p) }
        self.expertRanges = ranges
        var byName: [String: HostTensor] = [:]
        for (n, w) in zip(names, weights) { byName[n] = w }
        let routerF32 = try HostTensor(rw.desc.shape, .f32, floats: rw.floats)
        let perWeight: [String] = { switch params.experts {
            case .float: return [""]
            case .int4(let f): return f.symmetric ? [".q", ".scales"] : [".q", ".scales", ".zeros"]
        } }()
        var shared: [Range<Int>]? = nil
        if params.hasShared, options.sharedTensorParallel, let sg = byName["sharedGate"] {
            let fs = sg.desc.shape[0]
            shared = (0..<p).map { r in (r * fs / p)..<((r + 1) * fs / p) }
        }
        self.sharedRanges = shared
        var built: [RankWeights] = []
        for r in 0..<p {
            let dev = mesh.devices[r]
            func put(_ t: HostTensor) throws -> Tensor { try dev.tensor(t) }
            func slices(_ base: String) throws -> [Tensor] {
                try perWeight.map { suffix in
                    guard let w = byName[base + suffix] else {
                        throw PolychipError.arityMismatch(kernel: "moe-layer-ep", what: "weight '\(base + suffix)'", expected: 1, got: 0)
                    }
                    return try put(try Self.sliceLeading(w, ranges[r]))
                }
            }
            var sharedT: [Tensor] = []
            if params.hasShared, let sg = byName["sharedGate"], let su = byName["sharedUp"], let sd = byName["sharedDown"] {
                if let sr = shared?[r] {
                    sharedT = [try put(try Self.sliceLeading(sg, sr)), try put(try Self.sliceLeading(su, sr)),
                               try put(try Self.sliceColumns(sd, sr))]
                } else {
                    sharedT = [try put(sg), try put(su), try put(sd)]
                }
            }
            built.append(RankWeights(router: try put(routerF32), bias: try byName["bias"].map(put),
                                     gate: try slices("gate"), up: try slices("up"), down: try slices("down"), shared: sharedT))
        }
        self.ranks = built
    }

    /// Validates `inputs` (the full ``Op/moeLayer(_:)`` input list, `x` first) and runs the
    /// layer expert-parallel on `mesh`.
    public static func run(on mesh: Mesh, params: MoELayerParams, inputs: [HostTensor],
                           options: ExpertParallelOptions = .init()) throws -> ExpertParallelStep {
        guard let x = inputs.first else {
            throw PolychipError.arityMismatch(kernel: "moe-layer-ep", what: "inputs", expected: Op.moeLayer(params).inputNames.count, got: 0)
        }
        let layer = try ExpertParallelMoE(mesh: mesh, params: params, weights: Array(inputs.dropFirst()), options: options)
        return try layer.forward(x)
    }

    /// Runs the layer on `x[T, H]`; returns the output and what each rank did.
    public func forward(_ x: HostTensor) throws -> ExpertParallelStep {
        let wall0 = Queue.wallClock()
        _ = try Op.moeLayer(params).validate([x.desc] + weightDescs)
        let p = mesh.size, t = x.desc.shape[0], h = hidden, e = experts
        let dt = x.desc.dtype
        let k = params.router.topK
        let rowBytes = h * dt.bitWidth / 8
        let clock0 = (0..<p).reduce(0.0) { max($0, mesh.queues[$1].virtualTime, mesh.commQueues[$1].virtualTime) }
        for q in mesh.queues { q.wait(until: clock0) }
        let tokenRanges = (0..<p).map { r in (r * t / p)..<((r + 1) * t / p) }
        let xs = try tokenRanges.map { try Self.sliceLeading(x, $0) }

        func run(_ r: Int, _ op: Op, _ inputs: [Tensor]) throws -> [Tensor] {
            let outs = try op.validate(inputs.map(\.desc)).map { try mesh.devices[r].allocate($0) }
            try mesh.queues[r].enqueue(op, inputs: inputs, outputs: outs)
            return outs
        }
        func empty(_ r: Int, _ shape: [Int], _ d: DType) throws -> Tensor { try mesh.devices[r].allocate(TensorDesc(shape, d)) }

        // 1–2. Route each rank's tokens and group its rows by expert (= by destination rank).
        var xT: [Tensor] = [], weightsT: [Tensor?] = [], rowsT: [Tensor] = [], mapT: [Tensor?] = []
        var perExpert: [[Int]] = []   // perExpert[r][e]: rows of rank r's tokens for expert e
        for r in 0..<p {
            let dev = mesh.devices[r]
            let xr = try dev.tensor(xs[r])
            xT.append(xr)
            guard !tokenRanges[r].isEmpty else {
                weightsT.append(nil); mapT.append(nil); rowsT.append(try empty(r, [0, h], dt))
                perExpert.append([Int](repeating: 0, count: e))
                continue
            }
            let x32 = try dev.tensor(try HostTensor(xs[r].desc.shape, .f32, floats: xs[r].floats))
            let logits = try run(r, .matmul(transposeB: true), [x32, ranks[r].router])[0]
            let routed = try run(r, .moeRouter(params.router), [logits] + (ranks[r].bias.map { [$0] } ?? []))
            let perm = try run(r, .moePermute(numExperts: e), [xr, routed[1]])
            let offsets = try dev.download(perm[1]).ints
            perExpert.append((0..<e).map { offsets[$0 + 1] - offsets[$0] })
            weightsT.append(routed[0]); rowsT.append(perm[0]); mapT.append(perm[2])
        }
        let counts = (0..<p).map { i in expertRanges.map { rg in rg.reduce(0) { $0 + perExpert[i][$1] } } }

        // 3. Dispatch.
        let recvRows = (0..<p).map { j in (0..<p).reduce(0) { $0 + counts[$1][j] } }
        let recv = try (0..<p).map { try empty($0, [recvRows[$0], h], dt) }
        try mesh.run(.allToAll(counts: counts), inputs: rowsT, outputs: recv)
        mesh.waitForCommunication()  // the next kernels consume its result

        // 4. Grouped expert GEMMs on each rank's received rows, back in received order.
        var back: [Tensor] = []
        for j in 0..<p {
            let dev = mesh.devices[j]
            let rg = expertRanges[j]
            guard recvRows[j] > 0 else { back.append(try empty(j, [0, h], dt)); continue }
            var local: [Int32] = []
            local.reserveCapacity(recvRows[j])
            for i in 0..<p { for ex in rg { local += repeatElement(Int32(ex - rg.lowerBound), count: perExpert[i][ex]) } }
            let ids = try dev.tensor(try HostTensor([recvRows[j], 1], int32s: local))
            let grouped = try run(j, .moePermute(numExperts: rg.count), [recv[j], ids])
            let gemm: Op
            switch params.experts {
            case .float: gemm = .groupedMatmul(transposeB: true)
            case .int4(let f): gemm = .int4GroupedMatmul(f)
            }
            let w = ranks[j]
            let g = try run(j, gemm, [grouped[0]] + w.gate + [grouped[1]])[0]
            let u = try run(j, gemm, [grouped[0]] + w.up + [grouped[1]])[0]
            let act = try run(j, .swiglu, [g, u])[0]
            let d = try run(j, gemm, [act] + w.down + [grouped[1]])[0]
            let ones = try dev.tensor(try HostTensor([recvRows[j], 1], .f32, floats: [Float](repeating: 1, count: recvRows[j])))
            back.append(try run(j, .moeCombine, [d, grouped[2], ones])[0])
        }

        // 5. Return the rows (transposed counts) and apply the routing weights.
        let countsBack = (0..<p).map { j in (0..<p).map { i in counts[i][j] } }
        let ret = try (0..<p).map { try empty($0, [tokenRanges[$0].count * k, h], dt) }
        try mesh.run(.allToAll(counts: countsBack), inputs: back, outputs: ret)
        mesh.waitForCommunication()  // the next kernels consume its result
        var routedOut: [Tensor] = []
        for r in 0..<p {
            if let wts = weightsT[r], let map = mapT[r] {
                routedOut.append(try run(r, .moeCombine, [ret[r], map, wts])[0])
            } else {
                routedOut.append(try empty(r, [0, h], dt))
            }
        }

        // 6. Shared expert.
        var outT = routedOut
        if params.hasShared {
            if let sr = sharedRanges {
                let tmax = tokenRanges.map(\.count).max() ?? 0
                let padded = try (0..<p).map { r -> Tensor in
                    var bytes = xs[r].bytes
                    bytes += [UInt8](repeating: 0, count: (tmax - tokenRanges[r].count) * rowBytes)
                    return try mesh.devices[r].tensor(try HostTensor(TensorDesc([tmax, h], dt), bytes: bytes))
                }
                let all = try (0..<p).map { try empty($0, [p * tmax, h], dt) }
                try mesh.run(.allGather, inputs: padded, outputs: all)
                mesh.waitForCommunication()  // the next kernels consume its result
                var partial: [Tensor] = []
                for r in 0..<p {
                    let w = ranks[r].shared
                    if sr[r].isEmpty || tmax == 0 {
                        partial.append(try mesh.devices[r].tensor(try HostTensor(zeros: TensorDesc([p * tmax, h], dt))))
                        continue
                    }
                    let g = try run(r, .matmul(transposeB: true), [all[r], w[0]])[0]
                    let u = try run(r, .matmul(transposeB: true), [all[r], w[1]])[0]
                    let a = try run(r, .swiglu, [g, u])[0]
                    partial.append(try run(r, .matmul(transposeB: true), [a, w[2]])[0])
                }
                let summed = try (0..<p).map { try empty($0, [p * tmax, h], dt) }
                try mesh.run(.allReduce, inputs: partial, outputs: summed)
                mesh.waitForCommunication()  // the next kernels consume its result
                for r in 0..<p where !tokenRanges[r].isEmpty {
                    guard let buffer = summed[r].buffer else { continue }
                    let view = Tensor(desc: TensorDesc([tokenRanges[r].count, h], dt), buffer: buffer, byteOffset: r * tmax * rowBytes)
                    outT[r] = try run(r, .add, [routedOut[r], view])[0]
                }
            } else {
                for r in 0..<p where !tokenRanges[r].isEmpty {
                    let w = ranks[r].shared
                    let g = try run(r, .matmul(transposeB: true), [xT[r], w[0]])[0]
                    let u = try run(r, .matmul(transposeB: true), [xT[r], w[1]])[0]
                    let a = try run(r, .swiglu, [g, u])[0]
                    let d = try run(r, .matmul(transposeB: true), [a, w[2]])[0]
                    outT[r] = try run(r, .add, [routedOut[r], d])[0]
                }
            }
        }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(t * rowBytes)
        for r in 0..<p { bytes += try mesh.devices[r].download(outT[r]).bytes }
        let output = try HostTensor(x.desc, bytes: bytes)
        let modeled = mesh.queues.contains { $0.records.last?.source == .modeled }
        let ends = (0..<p).map { max(mesh.queues[$0].virtualTime, mesh.commQueues[$0].virtualTime) - clock0 }
        return ExpertParallelStep(output: output, tokensPerRank: tokenRanges.map(\.count), expertsPerRank: expertRanges,
                                  dispatchCounts: counts, expertRowsPerRank: recvRows,
                                  modeledSeconds: modeled ? ends.max() : nil, rankSeconds: modeled ? ends : nil,
                                  wallSeconds: Queue.wallClock() - wall0)
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
