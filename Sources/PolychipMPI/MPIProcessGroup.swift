import CMPI
import Foundation
import PolychipCore

/// A ``ProcessGroup`` over Open MPI: one rank per process (`mpirun -np N …`), collectives on
/// device tensors of any backend staged through host memory, sums accumulated in f32 in rank
/// order (``SumAccumulation/f32``).
///
/// - **Staging**: a collective reads the input from the device into a host buffer, runs on host
///   buffers (``MPIEngine`` documents the algorithms) and writes the output to the device only
///   when it completes, so a failed collective leaves both the input and the output untouched.
/// - **Failures**: every wait is bounded. A peer on the same host that exits is noticed within
///   about 50 ms (the kernel is asked whether its process still exists); any other silence — a
///   dead rank on another host, a hung rank, a dropped link — fails the collective after
///   ``timeout`` seconds without progress. Either way the rank gets a typed
///   `PolychipError.deviceFault` (kind `deviceLost` or `linkDown`) naming the peer, and the
///   group refuses every later call. Launch with `mpirun --enable-recovery` so that the
///   launcher lets the surviving ranks report instead of killing them.
/// - **Threads**: MPI is initialised with `MPI_THREAD_SERIALIZED`; every call goes through one lock.
public final class MPIProcessGroup: ProcessGroup, @unchecked Sendable {
    // @unchecked: the engine's mutable state is only touched inside `locked`, under `lock`; the
    // other stored properties are immutable or Locked.
    private let engine: MPIEngine
    private let lock = NSLock()
    private let faults: Locked<(plan: MPIFaultPlan?, collectives: Int)>

    /// This process's rank.
    public let rank: Int
    /// Number of ranks.
    public let size: Int
    /// Sums are accumulated in f32 in rank order.
    public var accumulation: SumAccumulation { .f32 }
    /// Host name of every rank.
    public let hostNames: [String]
    /// Index of every rank's host among the distinct hosts, in order of first appearance.
    public let hostIndex: [Int]
    /// This rank's position among the ranks on its host, and how many share the host.
    public let localRank: Int, localSize: Int

    /// Seconds without progress after which the default timeout fails a collective.
    public static let defaultTimeout = 6.0
    private static let world = Locked<MPIProcessGroup?>(nil)

    /// The group of every process of the job (`MPI_COMM_WORLD`), initialising MPI on the first
    /// call. A process started without `mpirun` is a group of one.
    public static func world(timeout: Double = defaultTimeout) throws -> MPIProcessGroup {
        guard timeout > 0, timeout.isFinite, timeout <= 86_400 else {
            throw PolychipError.invalidArgument(kernel: "mpi", argument: "timeout", reason: "\(timeout) s; expected 0 < timeout ≤ 86400")
        }
        try MPIRuntime.initialize()
        return try world.withLock { w in
            if let g = w { g.timeout = timeout; return g }
            let g = try MPIProcessGroup(comm: pc_mpi_comm_world(), timeout: timeout)
            w = g
            return g
        }
    }

    private init(comm: MPI_Comm, timeout: Double) throws {
        let engine = try MPIEngine(comm: comm, timeout: timeout)
        // A tuning knob for measurements, like POLYCHIP_OPENCL_TUNING: the message segment size.
        if let s = ProcessInfo.processInfo.environment["POLYCHIP_MPI_SEGMENT"], let b = Int(s), b >= 4096, b <= 1 << 30 {
            engine.segmentBytes = b
        }
        rank = engine.rank
        size = engine.size
        hostNames = engine.hostNames
        var ids: [String] = []
        hostIndex = engine.hostNames.map { h in
            if let i = ids.firstIndex(of: h) { return i }
            ids.append(h)
            return ids.count - 1
        }
        let mine = hostIndex.isEmpty ? 0 : hostIndex[engine.rank]
        localRank = hostIndex.prefix(engine.rank).filter { $0 == mine }.count
        localSize = hostIndex.filter { $0 == mine }.count
        self.engine = engine
        faults = Locked((nil, 0))
    }

    /// Whether this process was started by mpirun (a rank of a job, not a singleton).
    public static var launchedByMPIRun: Bool { MPIRuntime.launchedByMPIRun }

    /// Number of distinct hosts.
    public var hostCount: Int { (hostIndex.max() ?? 0) + 1 }

    /// Seconds a collective may go without progress before it fails (default ``defaultTimeout``).
    public var timeout: Double {
        get { locked { $0.timeout } }
        set { locked { $0.timeout = newValue } }
    }

    /// Largest single message, bytes (default 4 MiB; at least 4096).
    public var segmentBytes: Int {
        get { locked { $0.segmentBytes } }
        set { locked { $0.segmentBytes = max(4096, newValue) } }
    }

    /// A fault to inject (tests and demonstrations of the failure handling).
    public var faultPlan: MPIFaultPlan? {
        get { faults.withLock { $0.plan } }
        set { faults.withLock { $0 = (newValue, 0) } }
    }

    /// The first failure, after which the group refuses every call.
    public var failure: PolychipError? { locked { $0.failure } }

    /// `mpi:R@HOST`.
    public func label(_ r: Int) -> String { locked { $0.label(r) } }

    /// Runs `body` on the engine under the group's lock (every MPI call is made this way).
    private func locked<T>(_ body: (MPIEngine) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(engine)
    }

    // MARK: ProcessGroup

    public func run(_ collective: Collective, input: Tensor, output: Tensor, on device: any Device) throws -> KernelTiming {
        let expected = try collective.validate(rank: rank, of: size, input: input.desc)
        guard output.desc == expected else {
            throw PolychipError.collectiveMismatch(collective: collective.description, reason: "output on rank \(rank) must be \(expected), got \(output.desc)")
        }
        let inBuffer = try input.requireBuffer(on: device), outBuffer = try output.requireBuffer(on: device)
        let inBytes = try input.desc.checkedByteCount(), outBytes = try expected.checkedByteCount()
        try injectPlannedFault(collective.description)
        let t0 = Queue.wallClock()
        let rowBytes: Int = {
            guard let first = input.desc.shape.first, first > 0 else { return 0 }
            return inBytes / first
        }()
        try locked { e in
            try e.staged(inBytes: inBytes, outBytes: outBytes) { stageIn, stageOut in
                try device.read(from: inBuffer, at: input.byteOffset, into: UnsafeMutableRawBufferPointer(start: stageIn, count: inBytes))
                switch collective {
                case .allReduce:
                    try e.allReduce(stageIn, stageOut, count: input.desc.elementCount, dtype: input.desc.dtype)
                case .reduceScatter:
                    try e.reduceScatter(stageIn, stageOut, count: expected.elementCount, dtype: input.desc.dtype)
                case .allGather:
                    try e.allGather(stageIn, stageOut, bytes: inBytes)
                case .allToAll(let counts):
                    try e.allToAll(stageIn, sendBytes: counts[rank].map { $0 * rowBytes }, stageOut,
                                   recvBytes: counts.map { $0[rank] * Self.rowBytes(expected) })
                }
                // Stored only once the collective completed: a failure leaves the output untouched.
                try device.write(UnsafeRawBufferPointer(start: stageOut, count: outBytes), to: outBuffer, at: output.byteOffset)
            }
        }
        return .measured(seconds: Queue.wallClock() - t0)
    }

    private static func rowBytes(_ d: TensorDesc) -> Int {
        d.shape.dropFirst().reduce(1, *) * d.dtype.bitWidth / 8
    }

    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        try locked { try $0.allGather(bytes: bytes) }
    }

    /// Waits until every rank arrives (at most `timeout` seconds; default ``timeout``). With
    /// `idle`, the rank sleeps between polls (1 ms) instead of yielding the CPU: for ranks that
    /// wait while others measure or compute on the same host.
    public func barrier(timeout: Double? = nil, idle: Bool = false) throws {
        try locked { try $0.barrier(timeout: timeout, idle: idle) }
    }

    // MARK: Host buffers (benchmarks)

    // The host-buffer collectives below take separate (non-overlapping) input and output
    // buffers. If a call fails, MPI may still write `output` until the process exits: keep it alive.

    /// Our all-reduce of `count` elements of `dtype` on host buffers.
    public func allReduce(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws {
        try Self.checkBuffers("all-reduce", input, count, output, count, dtype)
        try locked { try $0.allReduce(input, output, count: count, dtype: dtype) }
    }

    /// Our reduce-scatter: `count` elements per rank out of `size·count` in.
    public func reduceScatter(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws {
        let (total, o) = count.multipliedReportingOverflow(by: size)
        guard !o else { throw PolychipError.invalidArgument(kernel: "reduce-scatter", argument: "count", reason: "\(count) × \(size) ranks overflows") }
        try Self.checkBuffers("reduce-scatter", input, total, output, count, dtype)
        try locked { try $0.reduceScatter(input, output, count: count, dtype: dtype) }
    }

    /// Our all-gather of `bytes` bytes per rank.
    public func allGather(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, bytes: Int) throws {
        let (total, o) = bytes.multipliedReportingOverflow(by: size)
        guard !o else { throw PolychipError.invalidArgument(kernel: "all-gather", argument: "bytes", reason: "\(bytes) × \(size) ranks overflows") }
        try Self.checkBuffers("all-gather", input, bytes, output, total, .i8)
        try locked { try $0.allGather(input, output, bytes: bytes) }
    }

    /// Our all-to-all(v): `sendBytes[j]` to rank `j`, `recvBytes[j]` from rank `j`.
    public func allToAll(_ input: UnsafeRawPointer, sendBytes: [Int], _ output: UnsafeMutableRawPointer, recvBytes: [Int]) throws {
        guard sendBytes.count == size, recvBytes.count == size, (sendBytes + recvBytes).allSatisfy({ $0 >= 0 && $0 <= Int(Int32.max) * 64 }) else {
            throw PolychipError.collectiveMismatch(collective: "all-to-all", reason: "need \(size) non-negative send and receive byte counts")
        }
        try Self.checkBuffers("all-to-all", input, sendBytes.reduce(0, +), output, recvBytes.reduce(0, +), .i8)
        try locked { try $0.allToAll(input, sendBytes: sendBytes, output, recvBytes: recvBytes) }
    }

    /// Checks element counts and that the input and output byte ranges do not overlap.
    @discardableResult
    private static func checkBuffers(_ what: String, _ input: UnsafeRawPointer, _ inCount: Int, _ output: UnsafeMutableRawPointer,
                                     _ outCount: Int, _ dtype: DType) throws -> Int {
        let es = max(1, dtype.bitWidth / 8)
        guard inCount >= 0, outCount >= 0, inCount <= Int.max / es, outCount <= Int.max / es else {
            throw PolychipError.invalidArgument(kernel: what, argument: "count", reason: "\(inCount) in, \(outCount) out: counts must be ≥ 0 and fit in memory")
        }
        let a = UInt(bitPattern: input), b = UInt(bitPattern: UnsafeRawPointer(output))
        if inCount > 0 && outCount > 0 && a < b + UInt(outCount * es) && b < a + UInt(inCount * es) {
            throw PolychipError.invalidArgument(kernel: what, argument: "output", reason: "overlaps the input; in-place collectives are not supported")
        }
        return inCount * es
    }

    /// Open MPI's own collective on the same host buffers, with nccl-tests' `sizeBytes` (the
    /// per-rank buffer for all-reduce, the gathered output for all-gather, the per-rank input for
    /// reduce-scatter and all-to-all): `MPI_Allreduce`, `MPI_Reduce_scatter_block` (f32 sums),
    /// `MPI_Allgather`, `MPI_Alltoall` (bytes). The peer our collectives are measured against.
    /// Blocking, without our timeout.
    public func mpiCollective(_ kind: CollectiveKind, _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, sizeBytes: Int) throws {
        let p = size
        guard sizeBytes >= 0, sizeBytes / (kind == .allReduce ? 4 : p) <= Int(Int32.max) else {
            throw PolychipError.invalidArgument(kernel: "MPI \(kind)", argument: "size", reason: "\(sizeBytes) bytes does not fit MPI's int counts")
        }
        try locked { e in
            if let f = e.failure { throw f }
            let comm = e.comm
            let rc: Int32
            let send = UnsafeMutableRawPointer(mutating: input)
            switch kind {
            case .allReduce:
                rc = MPI_Allreduce(send, output, Int32(sizeBytes / 4), pc_mpi_float(), pc_mpi_sum(), comm)
            case .reduceScatter:
                rc = MPI_Reduce_scatter_block(send, output, Int32(sizeBytes / 4 / p), pc_mpi_float(), pc_mpi_sum(), comm)
            case .allGather:
                rc = MPI_Allgather(send, Int32(sizeBytes / p), pc_mpi_byte(), output, Int32(sizeBytes / p), pc_mpi_byte(), comm)
            case .allToAll:
                rc = MPI_Alltoall(send, Int32(sizeBytes / p), pc_mpi_byte(), output, Int32(sizeBytes / p), pc_mpi_byte(), comm)
            }
            guard rc == MPI_SUCCESS else { throw MPIRuntime.failure("MPI \(kind)", rc) }
        }
    }

    /// The MPI library's version line (`Open MPI v4.1.4`).
    public static var libraryVersion: String {
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        var len: Int32 = 0
        guard MPI_Get_library_version(&buf, &len) == MPI_SUCCESS else { return "MPI" }
        let text = String(decoding: buf.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: ",").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? text
    }

    /// The largest of every rank's `value` (timings: a collective lasts until its slowest rank ends).
    public func maximum(_ value: Double) throws -> Double {
        let all = try allGather(bytes: withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) })
        return all.map { b in Double(bitPattern: b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }) }.max() ?? value
    }

    /// A subgroup of the ranks passing the same `color`, ordered by `key` (`MPI_Comm_split`;
    /// every rank must call it).
    public func split(color: Int, key: Int) throws -> MPIProcessGroup {
        let comm: MPI_Comm = try locked { e -> MPI_Comm in
            if let f = e.failure { throw f }
            var out: MPI_Comm? = pc_mpi_comm_null()
            let rc = MPI_Comm_split(e.comm, Int32(clamping: color), Int32(clamping: key), &out)
            guard rc == MPI_SUCCESS, let c = out else { throw MPIRuntime.failure("MPI_Comm_split", rc) }
            MPI_Comm_set_errhandler(c, pc_mpi_errors_return())
            return c
        }
        return try MPIProcessGroup(comm: comm, timeout: timeout)
    }

    /// Ends MPI for this process when the group is healthy; after a failure it does nothing
    /// (finalizing would wait for the lost rank), and the process should exit.
    public func finalize() {
        let healthy = locked { $0.failure == nil }
        guard healthy else { return }
        MPIRuntime.state.withLock { s in
            guard s == .running else { return }
            MPI_Finalize()
            s = .finalized
        }
    }

    // MARK: Fault injection

    private func injectPlannedFault(_ what: String) throws {
        let (plan, n) = faults.withLock { f -> (MPIFaultPlan?, Int) in
            f.collectives += 1
            return (f.plan, f.collectives)
        }
        guard let plan, plan.rank == rank, plan.atCollective == n else { return }
        let line = "polychip: rank \(rank): injected fault \(plan) at collective \(n) (\(what))\n"
        FileHandle.standardError.write(Data(line.utf8))
        switch plan.kind {
        case .kill:
            kill(getpid(), SIGKILL)
        case .stall(let seconds):
            // Alive but silent: the peers see no progress and time out.
            Thread.sleep(forTimeInterval: seconds)
            FileHandle.standardError.write(Data("polychip: rank \(rank): injected stall over, exiting\n".utf8))
            exit(75)
        }
    }
}

/// A fault injected into one rank of an MPI group: it dies (SIGKILL) or stalls when it enters
/// its `atCollective`-th collective. Written `kill:RANK@N` or `stall:RANK@N[:SECONDS]`.
public struct MPIFaultPlan: Sendable, Hashable, CustomStringConvertible {
    /// What happens.
    public enum Kind: Sendable, Hashable {
        /// The process kills itself with SIGKILL.
        case kill
        /// The process stops communicating for this many seconds, then exits.
        case stall(seconds: Double)
    }
    public var kind: Kind
    public var rank: Int
    public var atCollective: Int

    /// Creates a plan.
    public init(kind: Kind, rank: Int, atCollective: Int) {
        self.kind = kind; self.rank = rank; self.atCollective = atCollective
    }

    /// Parses `kill:RANK@N` or `stall:RANK@N[:SECONDS]`.
    public init(parsing s: String) throws {
        func bad(_ why: String) -> PolychipError {
            .invalidArgument(kernel: "mpi", argument: "fault", reason: "'\(s)': \(why); expected kill:RANK@N or stall:RANK@N[:SECONDS]")
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts.count <= 3 else { throw bad("wrong number of fields") }
        let at = parts[1].split(separator: "@").map(String.init)
        guard at.count == 2, let r = Int(at[0]), r >= 0, r < 1 << 20, let n = Int(at[1]), n >= 1, n < 1 << 30 else {
            throw bad("RANK must be 0…1048575 and N 1…2³⁰")
        }
        switch parts[0] {
        case "kill":
            guard parts.count == 2 else { throw bad("kill takes no seconds") }
            kind = .kill
        case "stall":
            let secs = parts.count == 3 ? Double(parts[2]) : 30
            guard let secs, secs > 0, secs <= 3600 else { throw bad("SECONDS must be in (0, 3600]") }
            kind = .stall(seconds: secs)
        default:
            throw bad("unknown fault '\(parts[0])'")
        }
        rank = r
        atCollective = n
    }

    public var description: String {
        switch kind {
        case .kill: return "kill:\(rank)@\(atCollective)"
        case .stall(let s): return "stall:\(rank)@\(atCollective):\(s)"
        }
    }
}
