import Foundation

/// One executed (or modeled) kernel: what ran where, on which shapes, and how long it took.
public struct KernelRecord: Sendable, Codable, Hashable {
    /// Kernel name (kebab-case catalog name, or a collective name).
    public var kernel: String
    /// Input shapes.
    public var inputShapes: [[Int]]
    /// Input dtypes.
    public var dtypes: [DType]
    /// Device id.
    public var device: String
    /// Start time in seconds on the queue's clock (wall clock for real devices, virtual for simulated).
    public var start: Double
    /// End time in seconds on the same clock.
    public var end: Double
    /// FLOPs the kernel performs (catalog cost model).
    public var flops: Double
    /// Minimum bytes the kernel must move.
    public var bytes: Double
    /// Whether the duration was measured or modeled.
    public var source: Source
    /// The model's breakdown for modeled records.
    public var breakdown: ModeledBreakdown?
    /// The attempt that produced this record when earlier attempts failed and were retried
    /// (2 = the first retry; see ``RetryPolicy``); nil for a first-try success.
    public var attempt: Int?

    /// Where a duration came from.
    public enum Source: String, Sendable, Codable, Hashable { case measured, modeled }

    /// Duration in seconds.
    public var seconds: Double { end - start }

    /// Creates a record.
    public init(kernel: String, inputShapes: [[Int]], dtypes: [DType], device: String, start: Double, end: Double,
                flops: Double, bytes: Double, source: Source, breakdown: ModeledBreakdown? = nil, attempt: Int? = nil) {
        self.kernel = kernel; self.inputShapes = inputShapes; self.dtypes = dtypes; self.device = device
        self.start = start; self.end = end; self.flops = flops; self.bytes = bytes
        self.source = source; self.breakdown = breakdown; self.attempt = attempt
    }
}

/// An ordered stream of kernel submissions on one device, recording every kernel.
///
/// Submission validates every operand (shapes, dtypes, device ownership, view bounds)
/// before the device sees it, so a bad call throws a typed error and touches nothing.
/// For simulated devices the queue keeps a virtual clock advanced by modeled times.
public final class Queue: Sendable {
    /// The device this queue submits to.
    public let device: any Device
    /// A label for traces (`"compute"`, `"comm"`, …).
    public let label: String
    private struct State { var records: [KernelRecord] = []; var clock: Double = 0 }
    private let state = Locked(State())
    private let order = Locked(())

    /// Creates a queue on `device`.
    public init(device: any Device, label: String = "compute") {
        self.device = device
        self.label = label
    }

    /// Every record so far, in submission order.
    public var records: [KernelRecord] { state.withLock { $0.records } }

    /// The virtual clock (seconds) for modeled work on this queue.
    public var virtualTime: Double { state.withLock { $0.clock } }

    /// Moves the virtual clock forward to at least `time` (waiting on another queue's event).
    public func wait(until time: Double) { state.withLock { $0.clock = max($0.clock, time) } }

    /// Removes all records and resets the virtual clock.
    public func reset() { state.withLock { $0 = State() } }

    /// Appends an externally produced record (collectives) and advances the virtual clock to its end.
    public func append(_ record: KernelRecord) {
        state.withLock { $0.records.append(record); if record.source == .modeled { $0.clock = max($0.clock, record.end) } }
    }

    /// Validates and runs `op`; returns its record. Meta tensors are accepted only by
    /// devices that can dry-run (simulated), which then model the kernel without data.
    @discardableResult
    public func enqueue(_ op: Op, inputs: [Tensor], outputs: [Tensor]) throws -> KernelRecord {
        try submit(op, inputs: inputs, outputs: outputs, attempt: nil)
    }

    /// Runs a call validated once by the caller (``Op/validated(_:)``): a loop that runs the
    /// same call many times (a benchmark's timed calls) validates it once, not per call.
    /// The tensors are checked against the call and the device is asked whether it runs it.
    @discardableResult
    public func enqueue(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelRecord {
        try submit(call, inputs: inputs, outputs: outputs, attempt: nil)
    }

    /// ``enqueue(_:inputs:outputs:)`` whose record carries `attempt` (retrying callers).
    func submit(_ op: Op, inputs: [Tensor], outputs: [Tensor], attempt: Int?) throws -> KernelRecord {
        try submit(try op.validated(inputs.map(\.desc)), inputs: inputs, outputs: outputs, attempt: attempt)
    }

    /// Runs a call validated once by its caller: checks the tensors against it, asks the
    /// device whether it can run this exact call, and hands it over (the device does not
    /// validate again).
    func submit(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor], attempt: Int?) throws -> KernelRecord {
        let op = call.op, name = op.kind.name
        try call.check(inputs: inputs.map(\.desc), outputs: outputs.map(\.desc))
        if case .unsupported(let why) = device.support(for: call) {
            throw PolychipError.unsupported(kernel: name, device: device.id, reason: why)
        }
        let cost = call.cost
        let all = inputs + outputs
        if all.contains(where: \.isMeta) {
            guard device.supportsDryRun, let modeled = try device.model(op, inputs: inputs.map(\.desc)) else {
                throw PolychipError.invalidTensor(reason: "\(device.id) cannot run \(name) on meta tensors (no dry-run support)")
            }
            return record(op, inputs, cost, .modeled(modeled), attempt)
        }
        for t in all { _ = try t.requireBuffer(on: device) }
        let timing: KernelTiming = try order.withLock { _ in
            try device.execute(call, inputs: inputs, outputs: outputs)
        }
        return record(op, inputs, cost, timing, attempt)
    }

    /// ``enqueue(_:inputs:outputs:)`` under a retry policy: a transient device fault (see
    /// ``RetryPolicy/decision(for:)``) runs the kernel again on this queue's device, up to
    /// `retry.maxAttempts` attempts; validation errors and faults that need another device
    /// (`deviceLost`) are thrown at once. Each failed attempt goes to `log`; the successful
    /// record carries its ``KernelRecord/attempt`` when it was not the first.
    ///
    /// A failed attempt leaves `inputs` intact; `outputs` hold a defined value only when the call
    /// returns (a retry rewrites every output element).
    @discardableResult
    public func enqueue(_ op: Op, inputs: [Tensor], outputs: [Tensor], retry: RetryPolicy, log: RetryLog? = nil) throws -> KernelRecord {
        try enqueue(try op.validated(inputs.map(\.desc)), inputs: inputs, outputs: outputs, retry: retry, log: log)
    }

    /// ``enqueue(_:inputs:outputs:retry:log:)`` of a call validated once by the caller (every
    /// attempt runs it without validating again).
    @discardableResult
    public func enqueue(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor], retry: RetryPolicy, log: RetryLog? = nil) throws -> KernelRecord {
        try retry.run(call.kind.name, device: device.id, log: log) { attempt in
            try submit(call, inputs: inputs, outputs: outputs, attempt: attempt > 1 ? attempt : nil)
        }
    }

    private func record(_ op: Op, _ inputs: [Tensor], _ cost: Cost, _ timing: KernelTiming, _ attempt: Int?) -> KernelRecord {
        state.withLock { s in
            let r: KernelRecord
            switch timing {
            case .measured(let sec):
                let end = Queue.wallClock()
                r = KernelRecord(kernel: op.kind.name, inputShapes: inputs.map(\.shape), dtypes: inputs.map(\.dtype),
                                 device: device.id, start: end - sec, end: end, flops: cost.flops, bytes: cost.bytes,
                                 source: .measured, attempt: attempt)
            case .modeled(let b):
                r = KernelRecord(kernel: op.kind.name, inputShapes: inputs.map(\.shape), dtypes: inputs.map(\.dtype),
                                 device: device.id, start: s.clock, end: s.clock + b.total, flops: cost.flops,
                                 bytes: cost.bytes, source: .modeled, breakdown: b, attempt: attempt)
                s.clock += b.total
            }
            s.records.append(r)
            return r
        }
    }

    /// Monotonic seconds used for measured records.
    public static func wallClock() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) * 1e-9
    }
}
