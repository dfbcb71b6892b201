/// One process's rank in a group of processes that run collectives together, one device per
/// process — the process-per-rank counterpart of ``Mesh`` (an MPI job: `MPIProcessGroup` in the
/// `PolychipMPI` product, which the core does not depend on).
///
/// Every rank calls the same collectives in the same order, each with its own device tensors;
/// for ``Collective/allToAll(counts:)`` every rank passes the whole group's count matrix.
/// Results match ``Collective/evaluate(_:accumulation:)`` with the group's ``accumulation``.
/// A call that cannot complete (a peer died, a link dropped, the ranks disagree on shapes)
/// throws a `PolychipError` on every surviving rank within the group's timeout, stores nothing
/// into the output and leaves the input intact; the group refuses every later call.
public protocol ProcessGroup: AnyObject, Sendable {
    /// This process's rank, `0 ..< size`.
    var rank: Int { get }
    /// Number of ranks.
    var size: Int { get }
    /// How sums are accumulated (and so which reference the results match bit for bit).
    var accumulation: SumAccumulation { get }
    /// Runs `collective` with this rank's `input` and `output` on `device` (validated with
    /// ``Collective/validate(rank:of:input:)``); returns this rank's measured time.
    func run(_ collective: Collective, input: Tensor, output: Tensor, on device: any Device) throws -> KernelTiming
    /// Gathers a byte string of any length from every rank, in rank order (metadata: routing
    /// counts, results, reports).
    func allGather(bytes: [UInt8]) throws -> [[UInt8]]
}

extension ProcessGroup {
    /// Runs `collective` on a host value: uploads it to `device`, runs, downloads this rank's result.
    public func run(_ collective: Collective, _ value: HostTensor, on device: any Device) throws -> HostTensor {
        let outDesc = try collective.validate(rank: rank, of: size, input: value.desc)
        let input = try device.tensor(value)
        let output = try device.allocate(outDesc)
        _ = try run(collective, input: input, output: output, on: device)
        return try device.download(output)
    }

    /// Gathers an integer vector from every rank, in rank order.
    public func allGather(ints: [Int]) throws -> [[Int]] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ints.count * 8)
        for v in ints { withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 } }
        return try allGather(bytes: bytes).enumerated().map { r, b in
            guard b.count % 8 == 0 else {
                throw PolychipError.collectiveMismatch(collective: "all-gather", reason: "rank \(r) sent \(b.count) bytes, not a whole number of integers")
            }
            return stride(from: 0, to: b.count, by: 8).map { i in
                Int(Int64(littleEndian: b[i..<(i + 8)].enumerated().reduce(0) { $0 | Int64($1.element) << (8 * $1.offset) }))
            }
        }
    }
}

extension Collective {
    /// Validates rank `rank`'s input of a group of `size` ranks that all pass the same
    /// descriptor (all-to-all: the same row shape and dtype, `counts[rank]` rows in total) and
    /// returns that rank's output descriptor. Ranks that disagree are caught when the data
    /// moves (the receiving rank gets a message of the wrong size).
    public func validate(rank: Int, of size: Int, input: TensorDesc) throws -> TensorDesc {
        guard size >= 1, rank >= 0, rank < size else {
            throw PolychipError.collectiveMismatch(collective: description, reason: "rank \(rank) is outside a group of \(size)")
        }
        let descs = groupInputs(size: size, input: input)
        guard descs[rank] == input else {
            throw PolychipError.collectiveMismatch(collective: description, reason: "rank \(rank) sends \(descs[rank].shape.first ?? 0) rows but holds \(input)")
        }
        return try validate(descs)[rank]
    }

    /// Bytes rank `rank` of a group of `size` sends (see ``bytesSent(_:)``).
    public func bytesSent(rank: Int, of size: Int, input: TensorDesc) -> Double {
        guard size >= 1, rank >= 0, rank < size else { return 0 }
        return bytesSent(groupInputs(size: size, input: input))[rank]
    }

    /// Every rank's input descriptor as rank `rank` infers it from its own: the same for the
    /// sums and all-gather; for all-to-all, rows `counts[i]` summed with the same row shape.
    private func groupInputs(size: Int, input: TensorDesc) -> [TensorDesc] {
        guard case .allToAll(let counts) = self, counts.count == size, counts.allSatisfy({ $0.count == size }),
              !input.shape.isEmpty else { return Array(repeating: input, count: size) }
        return counts.map { row in
            var s = input.shape
            s[0] = row.reduce(0) { $0.addingReportingOverflow($1).partialValue }
            return TensorDesc(s, input.dtype)
        }
    }
}

/// The four collectives by name, without their arguments (benchmarks, calibration, reports).
public enum CollectiveKind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case allReduce = "all-reduce"
    case allGather = "all-gather"
    case reduceScatter = "reduce-scatter"
    case allToAll = "all-to-all"

    public var description: String { rawValue }

    /// nccl-tests' bus-bandwidth factor for `p` ranks: busbw = algbw × factor, the bandwidth
    /// each rank's link carries (all-reduce `2(p−1)/p`, the others `(p−1)/p`).
    public func busFactor(ranks p: Int) -> Double {
        guard p > 1 else { return 0 }
        let f = Double(p - 1) / Double(p)
        return self == .allReduce ? 2 * f : f
    }

    /// Whether it sums (and so needs a float dtype).
    public var reduces: Bool { self == .allReduce || self == .reduceScatter }
}
