
/// Runs kernels on host values under a ``RetryPolicy``, with a failover list of devices.
///
/// Every attempt uploads the inputs afresh from the caller's host copies into new device
/// tensors, runs the kernel into new (scratch) outputs on that device's queue and downloads
/// them: a failed attempt never touches the caller's values, and its outputs are dropped.
/// Transient faults run the attempt again on the same device; a lost device (or any fault the
/// policy sends to failover) moves the kernel to the next device of ``devices`` that is not
/// known to be lost. Every attempt that failed with a device fault is in ``log``; the successful one's
/// ``KernelRecord/attempt`` counts every attempt before it, on any device.
public final class RetryingExecutor: Sendable {
    /// The primary device first, then the failover devices in order.
    public let devices: [any Device]
    /// The policy.
    public let policy: RetryPolicy
    /// Every failed attempt so far.
    public let log: RetryLog
    /// One queue per device of ``devices`` (their records are the successful attempts).
    public let queues: [Queue]
    private let lost = Locked<Set<Int>>([])

    /// What a successful run returned.
    public struct Outcome: Sendable {
        /// The outputs, in ``Op/outputNames`` order.
        public var outputs: [HostTensor]
        /// The successful attempt's record.
        public var record: KernelRecord
        /// The device that produced the outputs.
        public var device: String
        /// How many attempts the run took, the successful one included.
        public var attempts: Int
    }

    /// Creates an executor over `primary` and its failover list `fallbacks`.
    public init(primary: any Device, fallbacks: [any Device] = [], policy: RetryPolicy, log: RetryLog = RetryLog()) {
        self.devices = [primary] + fallbacks
        self.policy = policy
        self.log = log
        self.queues = devices.map { Queue(device: $0) }
    }

    /// Validates and runs `op` on `inputs`; see the type's description.
    /// - Throws: a validation error at once (nothing runs); the last device fault when the policy
    ///   does not retry it, attempts run out, or no device is left.
    public func run(_ op: Op, _ inputs: [HostTensor]) throws -> Outcome {
        let call = try op.validated(inputs.map(\.desc))  // once, for every attempt and device
        let outDescs = call.outputs
        let name = op.kind.name
        // The outputs come back to the host (and on host-memory devices live there twice
        // meanwhile, with a device copy of the inputs): refused up front when they cannot fit.
        let outBytes = outDescs.reduce(0.0) { $0 + Double($1.byteCount) }, inBytes = inputs.reduce(0.0) { $0 + Double($1.desc.byteCount) }
        let hostDevice = devices[0].usesHostMemory
        try HostMemory.reserve(outBytes + (hostDevice ? outBytes + inBytes : 0), for: "\(name) outputs", device: devices[0].id)
        var attempt = 1
        var index = firstLive(from: 0)
        while true {
            guard let i = index else {
                throw PolychipError.deviceFault(device: devices.map(\.id).joined(separator: ","), kernel: name, kind: "deviceLost",
                                                detail: "every device of the failover list is lost")
            }
            let dev = devices[i]
            do {
                let ins = try inputs.map { try dev.tensor($0) }
                let outs = try outDescs.map { try dev.allocate($0) }
                let rec = try queues[i].submit(call, inputs: ins, outputs: outs, attempt: attempt > 1 ? attempt : nil)
                let values = try outs.map { try dev.download($0) }
                return Outcome(outputs: values, record: rec, device: dev.id, attempts: attempt)
            } catch {
                let decision = policy.decision(for: error)
                let canRetry = attempt < policy.maxAttempts
                var next: Int? = nil
                var action = RetryAction.gaveUp
                if canRetry, decision == .sameDevice {
                    next = i
                    action = .retrySameDevice
                } else if canRetry, decision == .failover {
                    lost.withLock { _ = $0.insert(i) }
                    next = firstLive(from: i + 1)
                    if let n = next { action = .failover(to: devices[n].id) }
                }
                if case .deviceFault? = error as? PolychipError {
                    log.record(RetryAttempt(operation: name, device: dev.id, attempt: attempt, error: error, action: action))
                }
                guard next != nil else { throw error }
                index = next
                attempt += 1
            }
        }
    }

    /// The first device at or after `start` not known to be lost.
    private func firstLive(from start: Int) -> Int? {
        let l = lost.withLock { $0 }
        return (start..<devices.count).first { !l.contains($0) }
    }
}
