import CMPI
import Foundation
import PolychipCore

/// The collectives of ``MPIProcessGroup`` on host buffers, built from MPI point-to-point
/// messages so that the reduction order is ours (``SumAccumulation/f32``), every wait is
/// bounded, and a failure is a typed error rather than an abort of the job.
///
/// Algorithms (every rank posts all its receives first, then its sends; messages are cut into
/// segments of at most ``segmentBytes`` so progress is visible and reduction overlaps transfer):
///
/// - reduce-scatter: direct — rank `b` receives block `b` from every peer and sums the `p`
///   contributions in rank order, one segment at a time as the segments arrive;
/// - all-reduce: the reduce-scatter above over `p` near-equal blocks, then each owner sends each
///   reduced segment of its block to every peer as soon as it is summed (direct all-gather),
///   so every rank ends with bit-identical results; each rank sends `2(p−1)/p·n` bytes;
/// - all-gather and all-to-all(v): direct — every rank sends its block(s) to every peer.
///
/// These are the `direct` algorithms of the time model (`CollectiveAlgorithm.direct`).
/// Not thread-safe by itself: ``MPIProcessGroup`` calls it under its lock.
final class MPIEngine: @unchecked Sendable {
    // @unchecked: every use goes through MPIProcessGroup.locked, one thread at a time.
    let comm: MPI_Comm
    let rank: Int
    let size: Int
    /// Seconds a collective may go without any message completing before it fails.
    var timeout: Double
    /// Largest message, bytes.
    var segmentBytes: Int
    /// All-reduces that send at most this many bytes per rank as a whole-buffer exchange
    /// (`(p−1)·n`) take one exchange instead of the reduce-scatter and all-gather pair.
    var smallAllReduceBytes = 32 << 10
    /// Process ids and whether each other rank shares this rank's host (kernel and PID namespace).
    private(set) var pids: [Int32] = []
    private(set) var sameHost: [Bool] = []
    /// Host name of every rank.
    private(set) var hostNames: [String] = []
    /// The first failure; every later call throws it again.
    private(set) var failure: PolychipError?

    private var sequence = 0
    private let tagModulus: Int
    private var scratch = ScratchBuffer()
    private var accumulators = ScratchBuffer()
    private var stageIn = ScratchBuffer()
    private var stageOut = ScratchBuffer()
    /// Buffers that requests abandoned by a failed collective may still write: kept until exit.
    private var abandoned: [ScratchBuffer] = []

    init(comm: MPI_Comm, timeout: Double, segmentBytes: Int = 4 << 20) throws {
        self.comm = comm
        self.timeout = timeout
        self.segmentBytes = segmentBytes
        var r: Int32 = 0, s: Int32 = 0
        var rc = MPI_Comm_rank(comm, &r)
        guard rc == MPI_SUCCESS else { throw MPIRuntime.failure("MPI_Comm_rank", rc) }
        rc = MPI_Comm_size(comm, &s)
        guard rc == MPI_SUCCESS else { throw MPIRuntime.failure("MPI_Comm_size", rc) }
        rank = Int(r)
        size = Int(s)
        var flag: Int32 = 0
        var ub: UnsafeMutablePointer<Int32>? = nil
        rc = MPI_Comm_get_attr(comm, Int32(MPI_TAG_UB), &ub, &flag)
        let tagUB = (rc == MPI_SUCCESS && flag != 0) ? Int(ub?.pointee ?? 32767) : 32767
        tagModulus = max(8, tagUB / 4)
        // Who runs where: host names, identities (for liveness checks) and process ids. Every
        // rank is starting up, so this first exchange waits longer than a collective does.
        let me = "\(getpid())\n\(ProcessInfo.processInfo.hostName)\n\(MPIRuntime.hostIdentity)"
        let gathered = try allGather(bytes: Array(me.utf8), timeout: max(timeout, 60))
        let fields = gathered.map { String(decoding: $0, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
        let identity = MPIRuntime.hostIdentity
        pids = fields.map { Int32($0.first ?? "") ?? 0 }
        hostNames = fields.map { $0.count > 1 ? $0[1] : "?" }
        sameHost = fields.enumerated().map { $0.offset != rank && $0.element.count > 2 && $0.element[2] == identity }
    }

    // MARK: Collectives on host buffers

    /// Runs `body` with host staging buffers of `inBytes` and `outBytes` (kept alive for good if
    /// the collective inside fails, since MPI may still write them).
    func staged(inBytes: Int, outBytes: Int, _ body: (UnsafeMutableRawPointer, UnsafeMutableRawPointer) throws -> Void) throws {
        try stageIn.reserve(max(1, inBytes))
        try stageOut.reserve(max(1, outBytes))
        do { try body(stageIn.pointer, stageOut.pointer) } catch {
            if failure != nil {
                abandoned += [stageIn, stageOut]
                stageIn = ScratchBuffer()
                stageOut = ScratchBuffer()
            }
            throw error
        }
    }

    /// Sum of `count` elements of `dtype` over the ranks, result on every rank.
    func allReduce(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws {
        let p = size
        if (p - 1) * count * (dtype.bitWidth / 8) <= smallAllReduceBytes {
            return try smallAllReduce(input, output, count: count, dtype: dtype)
        }
        try reduce(input, count: count, dtype: dtype, what: "all-reduce", blockStart: { b in b * count / p },
                   ownBlock: output + (rank * count / p) * (dtype.bitWidth / 8), gatherInto: output)
    }

    /// All-reduce of a small buffer in one exchange instead of two: every rank sends its whole
    /// buffer to every peer and sums all `p` in rank order itself (the same additions in the same
    /// order on every rank, so the results are bit-identical everywhere).
    private func smallAllReduce(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws {
        guard dtype.isFloat else {
            throw PolychipError.collectiveMismatch(collective: "all-reduce", reason: "sum needs a float dtype, got \(dtype)")
        }
        let bytes = count * (dtype.bitWidth / 8)
        try scratch.reserve(max(1, size * bytes))
        try accumulators.reserve(max(1, 4 * count))
        let all = scratch.pointer, acc = accumulators.pointer.assumingMemoryBound(to: Float.self)
        try allToAll(input, sendBytes: Array(repeating: bytes, count: size), sendOffsets: Array(repeating: 0, count: size),
                     all, recvBytes: Array(repeating: bytes, count: size), what: "all-reduce")
        for q in 0..<size { RankOrderSum.accumulate(all + q * bytes, dtype: dtype, count: count, into: acc, first: q == 0) }
        RankOrderSum.store(acc, count: count, dtype: dtype, to: output)
    }

    /// Sum of `p·count` elements over the ranks; this rank keeps block `rank` (`count` elements).
    func reduceScatter(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws {
        try reduce(input, count: count * size, dtype: dtype, what: "reduce-scatter", blockStart: { b in b * count },
                   ownBlock: output, gatherInto: nil)
    }

    /// Every rank's `bytes` bytes, concatenated in rank order into `output` (`p·bytes`).
    func allGather(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, bytes: Int) throws {
        let counts = Array(repeating: bytes, count: size)
        try allToAll(input, sendBytes: counts, sendOffsets: Array(repeating: 0, count: size), output, recvBytes: counts,
                     what: "all-gather")
    }

    /// `sendBytes[j]` bytes to rank `j` (consecutive in `input`), `recvBytes[j]` from rank `j`
    /// (consecutive in `output`, in rank order).
    func allToAll(_ input: UnsafeRawPointer, sendBytes: [Int], _ output: UnsafeMutableRawPointer, recvBytes: [Int]) throws {
        try allToAll(input, sendBytes: sendBytes, sendOffsets: Self.offsets(sendBytes), output, recvBytes: recvBytes,
                     what: "all-to-all")
    }

    private func allToAll(_ input: UnsafeRawPointer, sendBytes: [Int], sendOffsets: [Int], _ output: UnsafeMutableRawPointer,
                          recvBytes: [Int], what: String) throws {
        try guarded(what) { tag in
            var x = Exchange()
            let recvOffsets = Self.offsets(recvBytes)
            for k in 1..<max(1, size) {
                let j = (rank - k + size) % size
                for (o, n) in segments(recvBytes[j], elementSize: 1) {
                    try x.receive(output + recvOffsets[j] + o, n, from: j, tag: tag, comm: comm)
                }
            }
            for k in 1..<max(1, size) {
                let j = (rank + k) % size
                for (o, n) in segments(sendBytes[j], elementSize: 1) {
                    try x.send(input + sendOffsets[j] + o, n, to: j, tag: tag, comm: comm)
                }
            }
            if recvBytes[rank] > 0 { (output + recvOffsets[rank]).copyMemory(from: input + sendOffsets[rank], byteCount: recvBytes[rank]) }
            try wait(&x, what) { _, _ in }
        }
    }

    /// The direct reduce-scatter, and for all-reduce (`gatherInto` non-nil) the all-gather of the
    /// reduced segments. Block `b` is elements `blockStart(b) ..< blockStart(b + 1)`.
    private func reduce(_ input: UnsafeRawPointer, count n: Int, dtype: DType, what: String, blockStart: (Int) -> Int,
                        ownBlock: UnsafeMutableRawPointer, gatherInto: UnsafeMutableRawPointer?) throws {
        guard dtype.isFloat else {
            throw PolychipError.collectiveMismatch(collective: what, reason: "sum needs a float dtype, got \(dtype)")
        }
        let p = size, r = rank, es = dtype.bitWidth / 8
        let start = (0...p).map { min(n, blockStart($0)) }
        let mine = start[r + 1] - start[r]
        let segs = segments(mine * es, elementSize: es).map { (o: $0.0 / es, n: $0.1 / es) }
        try scratch.reserve(max(1, (p - 1) * mine * es))
        if dtype != .f32 { try accumulators.reserve(max(1, segmentBytes / es * 4)) }
        let scratchBase = scratch.pointer, accBase = accumulators.pointer
        try guarded(what) { tag in
            var x = Exchange()
            let reduceTag = tag, gatherTag = tag + 1
            // Receives: block r from every peer (into scratch), and for all-reduce every peer's
            // reduced block (into the output).
            for k in 1..<max(1, p) {
                let j = (r - k + p) % p
                let slot = j < r ? j : j - 1
                for s in segs { try x.receive(scratchBase + (slot * mine + s.o) * es, s.n * es, from: j, tag: reduceTag, comm: comm, group: 0) }
                if let out = gatherInto {
                    for (o, len) in segments((start[j + 1] - start[j]) * es, elementSize: es) {
                        try x.receive(out + start[j] * es + o, len, from: j, tag: gatherTag, comm: comm, group: 1)
                    }
                }
            }
            // Sends: block j to its owner, segment-major so every owner can start reducing early.
            let peerSegs = (0..<p).map { j in segments((start[j + 1] - start[j]) * es, elementSize: es) }
            let rounds = peerSegs.map(\.count).max() ?? 0
            for s in 0..<rounds {
                for k in 1..<max(1, p) {
                    let j = (r + k) % p
                    guard s < peerSegs[j].count else { continue }
                    let (o, len) = peerSegs[j][s]
                    try x.send(input + start[j] * es + o, len, to: j, tag: reduceTag, comm: comm)
                }
            }
            // Reduce segment after segment, in order, as all p − 1 contributions arrive.
            var arrived = [Int](repeating: 0, count: segs.count)
            var next = 0
            func reduceReady(_ x: inout Exchange) throws {
                while next < segs.count && arrived[next] == p - 1 {
                    let s = segs[next]
                    let own = input + (start[r] + s.o) * es
                    let acc = dtype == .f32 ? (ownBlock + s.o * es).assumingMemoryBound(to: Float.self)
                                            : accBase.assumingMemoryBound(to: Float.self)
                    for q in 0..<p {
                        let src = q == r ? own : UnsafeRawPointer(scratchBase + ((q < r ? q : q - 1) * mine + s.o) * es)
                        RankOrderSum.accumulate(src, dtype: dtype, count: s.n, into: acc, first: q == 0)
                    }
                    if dtype != .f32 { RankOrderSum.store(acc, count: s.n, dtype: dtype, to: ownBlock + s.o * es) }
                    if gatherInto != nil {
                        for k in 1..<p { try x.send(ownBlock + s.o * es, s.n * es, to: (r + k) % p, tag: gatherTag, comm: comm) }
                    }
                    next += 1
                }
            }
            try reduceReady(&x)
            try wait(&x, what) { i, x in
                guard x.groups[i] == 0 else { return }
                arrived[x.segmentIndex[i]] += 1
                try reduceReady(&x)
            }
            guard next == segs.count else {
                throw PolychipError.collectiveMismatch(collective: what, reason: "rank \(r) reduced \(next) of \(segs.count) segments")
            }
        }
    }

    // MARK: Metadata and synchronisation (non-blocking MPI collectives under the same timeout)

    /// Every rank's byte string, in rank order, waiting at most `timeout` seconds (default: the engine's).
    func allGather(bytes: [UInt8], timeout limit: Double? = nil) throws -> [[UInt8]] {
        let what = "all-gather (metadata)"
        return try guarded(what) { _ in
            guard bytes.count <= Int(Int32.max) else {
                throw PolychipError.invalidArgument(kernel: what, argument: "bytes", reason: "\(bytes.count) bytes; at most \(Int32.max)")
            }
            // Non-blocking collectives may read their arguments until they complete: every
            // buffer and count array lives in a ScratchBuffer, not in a Swift temporary.
            let counts = ScratchBuffer(), out = ScratchBuffer(), send = ScratchBuffer()
            try counts.reserve(4 * (1 + 2 * size))
            let mine = counts.pointer.assumingMemoryBound(to: Int32.self)
            let lens = mine + 1, displs = mine + 1 + size
            mine.pointee = Int32(bytes.count)
            try waitNonBlocking(what, buffers: [counts], timeout: limit) { req in
                MPI_Iallgather(mine, 1, pc_mpi_int(), lens, 1, pc_mpi_int(), comm, req)
            }
            var total = 0
            for i in 0..<size {
                guard lens[i] >= 0 else { throw PolychipError.collectiveMismatch(collective: what, reason: "rank \(i) announced \(lens[i]) bytes") }
                displs[i] = Int32(clamping: total)
                total += Int(lens[i])
            }
            guard total <= Int(Int32.max) else {
                throw PolychipError.invalidArgument(kernel: what, argument: "bytes", reason: "\(total) bytes from all ranks; at most \(Int32.max)")
            }
            try out.reserve(max(1, total))
            try send.reserve(max(1, bytes.count))
            bytes.withUnsafeBytes { if let b = $0.baseAddress { send.pointer.copyMemory(from: b, byteCount: bytes.count) } }
            try waitNonBlocking(what, buffers: [counts, out, send], timeout: limit) { req in
                MPI_Iallgatherv(send.pointer, mine.pointee, pc_mpi_byte(), out.pointer, lens, displs, pc_mpi_byte(), comm, req)
            }
            return (0..<size).map { Array(UnsafeRawBufferPointer(start: out.pointer + Int(displs[$0]), count: Int(lens[$0]))) }
        }
    }

    /// Waits until every rank arrives, for at most `timeout` seconds (default: the engine's);
    /// `idle`: sleep between polls instead of yielding (see `wait`).
    func barrier(timeout limit: Double? = nil, idle: Bool = false) throws {
        try guarded("barrier") { _ in
            try waitNonBlocking("barrier", buffers: [], timeout: limit, idle: idle) { req in MPI_Ibarrier(comm, req) }
        }
    }

    /// Starts a non-blocking MPI collective with `start` and waits for it under the timeout.
    private func waitNonBlocking(_ what: String, buffers: [ScratchBuffer], timeout limit: Double? = nil, idle: Bool = false,
                                 _ start: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        var x = Exchange()
        var req: MPI_Request? = nil
        let rc = start(&req)
        guard rc == MPI_SUCCESS else { throw MPIRuntime.failure(what, rc) }
        x.append(req, peer: -1, expected: -1, group: 0, segment: 0)
        do { try wait(&x, what, timeout: limit, idle: idle) { _, _ in } } catch {
            abandoned += buffers  // a non-blocking collective cannot be cancelled: its buffers stay alive
            throw error
        }
    }

    // MARK: Progress, timeouts, failures

    /// Runs one collective with a fresh tag pair; on failure cancels what it posted, keeps its
    /// buffers alive and poisons the engine.
    private func guarded<T>(_ what: String, _ body: (Int32) throws -> T) throws -> T {
        if let failure { throw PolychipError.collectiveMismatch(collective: what, reason: "the MPI group failed earlier and cannot be used: \(failure)") }
        let tag = Int32((sequence % tagModulus) * 4)
        sequence += 1
        do { return try body(tag) } catch let e as PolychipError {
            failure = e
            abandoned.append(scratch)
            abandoned.append(accumulators)
            scratch = ScratchBuffer()
            accumulators = ScratchBuffer()
            throw e
        }
    }

    /// Waits for every request of `x`, calling `completed(i)` as request `i` completes. Throws a
    /// typed error when a peer process has exited, when no request completes for `timeout`
    /// seconds, when a message has the wrong size, or when MPI reports an error.
    /// `idle`: between polls, sleep 1 ms instead of yielding the CPU — for a rank that only waits
    /// while others work (they keep the cores; the wait ends up to 1 ms late).
    private func wait(_ x: inout Exchange, _ what: String, timeout limit: Double? = nil, idle: Bool = false,
                      _ completed: (Int, inout Exchange) throws -> Void) throws {
        let limit = limit ?? timeout
        let started = Queue.wallClock()
        var lastProgress = started, lastLiveness = started
        var indices: [Int32] = [], statuses: [MPI_Status] = []
        do {
            while x.active > 0 {
                let n = x.requests.count
                if indices.count < n {
                    indices = [Int32](repeating: 0, count: n)
                    statuses = [MPI_Status](repeating: MPI_Status(), count: n)
                }
                var done: Int32 = 0
                let rc = MPI_Testsome(Int32(n), &x.requests, &done, &indices, &statuses)
                if rc != MPI_SUCCESS {
                    let bad = (0..<Int(max(0, done))).first { statuses[$0].MPI_ERROR != MPI_SUCCESS }
                    let code = bad.map { statuses[$0].MPI_ERROR } ?? rc
                    let peer = bad.map { x.peers[Int(indices[$0])] } ?? -1
                    if code == MPI_ERR_TRUNCATE {
                        throw PolychipError.collectiveMismatch(collective: what, reason: "rank \(peer) sent rank \(rank) a larger message than expected: the ranks disagree on the shape, dtype or counts")
                    }
                    throw PolychipError.deviceFault(device: peer >= 0 ? label(peer) : "mpi", kernel: what, kind: "linkDown",
                                                    detail: "MPI reports \(MPIRuntime.message(code)) on the link from rank \(rank)")
                }
                if done == MPI_UNDEFINED { break }
                if done > 0 {
                    lastProgress = Queue.wallClock()
                    for k in 0..<Int(done) {
                        let i = Int(indices[k])
                        x.active -= 1
                        if x.expected[i] >= 0 {
                            var got: Int32 = 0
                            var st = statuses[k]
                            MPI_Get_count(&st, pc_mpi_byte(), &got)
                            guard Int(got) == x.expected[i] else {
                                throw PolychipError.collectiveMismatch(collective: what, reason: "rank \(x.peers[i]) sent rank \(rank) \(got) bytes where \(x.expected[i]) were expected: the ranks disagree on the shape, dtype or counts")
                            }
                        }
                        try completed(i, &x)
                    }
                    continue
                }
                let now = Queue.wallClock()
                if now - lastLiveness > 0.05 {
                    lastLiveness = now
                    for j in Set(x.pendingPeers) where j >= 0 && j < sameHost.count && sameHost[j] && MPIRuntime.processHasExited(pids[j]) {
                        throw PolychipError.deviceFault(device: label(j), kernel: what, kind: "deviceLost",
                                                        detail: String(format: "rank %d (process %d on %@) has exited; rank %d stopped waiting for it after %.2f s", j, pids[j], hostNames[j], rank, now - started))
                    }
                    for j in Set(x.pendingPeers) where j < 0 {
                        // A non-blocking collective involves every rank.
                        if let dead = sameHost.indices.first(where: { sameHost[$0] && MPIRuntime.processHasExited(pids[$0]) }) {
                            throw PolychipError.deviceFault(device: label(dead), kernel: what, kind: "deviceLost",
                                                            detail: String(format: "rank %d (process %d on %@) has exited; rank %d stopped waiting for it after %.2f s", dead, pids[dead], hostNames[dead], rank, now - started))
                        }
                    }
                }
                if now - lastProgress > limit {
                    let waiting = Set(x.pendingPeers).filter { $0 >= 0 }.sorted()
                    let whom = waiting.isEmpty ? "the group" : "rank\(waiting.count == 1 ? "" : "s") \(waiting.map(String.init).joined(separator: ", "))"
                    throw PolychipError.deviceFault(device: waiting.first.map(label) ?? "mpi", kernel: what, kind: "linkDown",
                                                    detail: String(format: "no data from %@ to or from rank %d for %.1f s (timeout): a peer has died or hangs, or a link is down", whom, rank, limit))
                }
                if idle { usleep(1000) } else { sched_yield() }
            }
        } catch {
            x.cancelAll()
            throw error
        }
    }

    /// `mpi rank R (host)`.
    func label(_ r: Int) -> String { r < hostNames.count ? "mpi:\(r)@\(hostNames[r])" : "mpi:\(r)" }

    // MARK: Segmentation

    /// `(offset, length)` pieces of at most ``segmentBytes`` (a whole number of elements) covering `bytes`.
    func segments(_ bytes: Int, elementSize: Int) -> [(Int, Int)] {
        guard bytes > 0 else { return [] }
        let seg = max(elementSize, segmentBytes / elementSize * elementSize)
        return stride(from: 0, to: bytes, by: seg).map { ($0, min(seg, bytes - $0)) }
    }

    static func offsets(_ counts: [Int]) -> [Int] {
        var o = [Int](repeating: 0, count: counts.count)
        for i in counts.indices.dropFirst() { o[i] = o[i - 1] + counts[i - 1] }
        return o
    }
}

/// The requests of one collective and what each one is.
struct Exchange {
    var requests: [MPI_Request?] = []
    var peers: [Int] = []
    /// Expected bytes of a receive (−1 for a send or a non-blocking collective).
    var expected: [Int] = []
    var groups: [Int] = []
    /// The segment index of a receive within its peer's block (reduce-scatter bookkeeping).
    var segmentIndex: [Int] = []
    var active = 0
    private var receivesPerPeer: [Int: Int] = [:]

    mutating func append(_ req: MPI_Request?, peer: Int, expected bytes: Int, group: Int, segment: Int) {
        requests.append(req); peers.append(peer); expected.append(bytes); groups.append(group); segmentIndex.append(segment)
        active += 1
    }

    mutating func receive(_ buf: UnsafeMutableRawPointer, _ bytes: Int, from peer: Int, tag: Int32, comm: MPI_Comm, group: Int = 0) throws {
        var req: MPI_Request? = nil
        let rc = MPI_Irecv(buf, Int32(bytes), pc_mpi_byte(), Int32(peer), tag, comm, &req)
        guard rc == MPI_SUCCESS else { throw MPIRuntime.failure("MPI_Irecv", rc) }
        let key = peer * 2 + group
        let seg = receivesPerPeer[key, default: 0]
        receivesPerPeer[key] = seg + 1
        append(req, peer: peer, expected: bytes, group: group, segment: seg)
    }

    mutating func send(_ buf: UnsafeRawPointer, _ bytes: Int, to peer: Int, tag: Int32, comm: MPI_Comm) throws {
        var req: MPI_Request? = nil
        let rc = MPI_Isend(buf, Int32(bytes), pc_mpi_byte(), Int32(peer), tag, comm, &req)
        guard rc == MPI_SUCCESS else { throw MPIRuntime.failure("MPI_Isend", rc) }
        append(req, peer: peer, expected: -1, group: 2, segment: 0)
    }

    /// Peers of the requests still pending.
    var pendingPeers: [Int] {
        requests.indices.filter { requests[$0] != nil }.map { peers[$0] }
    }

    /// Cancels every pending receive (so it never writes its buffer) and forgets the rest.
    mutating func cancelAll() {
        for i in requests.indices where requests[i] != nil {
            if expected[i] >= 0 {
                MPI_Cancel(&requests[i])
                var flag: Int32 = 0
                MPI_Test(&requests[i], &flag, pc_mpi_status_ignore())
            }
            if requests[i] != nil { MPI_Request_free(&requests[i]) }
        }
        active = 0
    }
}

/// A growable raw buffer (page-aligned, never moved while a request may use it).
final class ScratchBuffer {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init() {
        pointer = .allocate(byteCount: 1, alignment: 64)
        capacity = 1
    }

    /// Makes room for `bytes` bytes (contents not kept).
    func reserve(_ bytes: Int) throws {
        guard bytes > capacity else { return }
        guard bytes < Int.max / 2 else { throw PolychipError.outOfMemory(device: "host (MPI staging)", requested: bytes, available: 0) }
        pointer.deallocate()
        pointer = .allocate(byteCount: bytes, alignment: 4096)
        capacity = bytes
    }

    deinit { pointer.deallocate() }
}
