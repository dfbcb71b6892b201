
/// When a failed kernel (or transfer, or collective) is run again, and where.
///
/// Only device faults (``PolychipError/deviceFault(device:kernel:kind:detail:)``) are ever
/// retried; every other error — shape, dtype, arity, parameter validation, unsupported kernel,
/// out of memory, invalid tensor — is the caller's to fix and is thrown at once. A fault is
/// classified by its `kind`:
///
/// - ``sameDeviceKinds`` (default: `kernelLaunchFailure`, `memoryError`, `timeout`): transient;
///   the operation runs again on the same device.
/// - ``failoverKinds`` (default: `deviceLost`): the device is gone; the work runs again only on
///   another device (a failover list), re-uploading its inputs from the caller's host copies.
/// - anything else (e.g. `linkDown`, which stays down): not retried.
///
/// ``maxAttempts`` bounds the attempts of one operation, the first included, across devices:
/// `RetryPolicy(maxAttempts: 1)` (``none``) never retries, `.retries(3)` allows three more.
public struct RetryPolicy: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Attempts of one operation, the first included (≥ 1; smaller values count as 1).
    public var maxAttempts: Int
    /// Fault kinds retried on the same device.
    public var sameDeviceKinds: Set<String>
    /// Fault kinds retried only on another device.
    public var failoverKinds: Set<String>

    /// The transient fault kinds retried in place by default.
    public static let transientKinds: Set<String> = ["kernelLaunchFailure", "memoryError", "timeout"]
    /// The fault kinds that need another device by default.
    public static let deviceLossKinds: Set<String> = ["deviceLost"]

    /// Creates a policy.
    public init(maxAttempts: Int, sameDeviceKinds: Set<String> = RetryPolicy.transientKinds,
                failoverKinds: Set<String> = RetryPolicy.deviceLossKinds) {
        self.maxAttempts = max(1, maxAttempts)
        self.sameDeviceKinds = sameDeviceKinds
        self.failoverKinds = failoverKinds
    }

    /// No retries: the first failure is thrown.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The most retries a policy makes (`--retries` accepts 0…this): a fault that persists
    /// through a thousand attempts is not transient.
    public static let maxRetries = 1000

    /// Up to `n` retries after the first attempt (`polychip --retries N`); `n ≤ 0` is ``none``,
    /// `n` above ``maxRetries`` counts as ``maxRetries``.
    public static func retries(_ n: Int) -> RetryPolicy { RetryPolicy(maxAttempts: 1 + min(max(0, n), maxRetries)) }

    /// Whether the policy retries at all.
    public var retries: Bool { maxAttempts > 1 }

    /// What to do after `error`.
    public func decision(for error: any Error) -> RetryDecision {
        guard case .deviceFault(_, _, let kind, _)? = error as? PolychipError else { return .never }
        if sameDeviceKinds.contains(kind) { return .sameDevice }
        if failoverKinds.contains(kind) { return .failover }
        return .never
    }

    /// `retries 3 (same device: kernelLaunchFailure, memoryError, timeout; failover: deviceLost)`.
    public var description: String {
        "retries \(maxAttempts - 1) (same device: \(sameDeviceKinds.sorted().joined(separator: ", ")); failover: \(failoverKinds.sorted().joined(separator: ", ")))"
    }

    /// Runs `body` (given the attempt number, 1-based) until it succeeds, fails with an error
    /// that is not retried on the same device, or ``maxAttempts`` attempts have failed; throws
    /// the last error unchanged. Every attempt that failed with a device fault is added to `log`
    /// with what was done next (other errors are thrown without a log entry: nothing was tried).
    ///
    /// `body` must leave its inputs intact when it fails (every Polychip kernel, transfer and
    /// collective does: a fault is raised before anything is stored) and must write all of its
    /// outputs when it succeeds, so a retried run gives the same result as a first-try one.
    public func run<T>(_ operation: String, device: String, log: RetryLog?, _ body: (Int) throws -> T) throws -> T {
        var attempt = 1
        while true {
            do { return try body(attempt) } catch {
                let decision = decision(for: error)
                let again = decision == .sameDevice && attempt < maxAttempts
                if case .deviceFault? = error as? PolychipError {
                    log?.record(RetryAttempt(operation: operation, device: device, attempt: attempt, error: error,
                                             action: again ? .retrySameDevice : (decision == .failover ? .failover : .gaveUp)))
                }
                guard again else { throw error }
                attempt += 1
            }
        }
    }
}

/// How a ``RetryPolicy`` treats an error.
public enum RetryDecision: String, Sendable, Hashable, Codable {
    /// Run it again on the same device (a transient fault).
    case sameDevice
    /// Run it again on another device only (the device is lost).
    case failover
    /// Never retried (validation errors, unsupported kernels, unclassified faults).
    case never
}

/// One failed attempt of a kernel, transfer or collective, and what followed it.
public struct RetryAttempt: Sendable, Equatable, CustomStringConvertible {
    /// What failed: a kernel name, `allocate`, `upload`, `download`, a collective, or a step.
    public var operation: String
    /// The device it ran on.
    public var device: String
    /// The attempt number (1-based) that failed.
    public var attempt: Int
    /// The error, as thrown.
    public var error: PolychipError
    /// The fault kind (`kernelLaunchFailure`, …), or nil for an error that is not a fault.
    public var faultKind: String? {
        if case .deviceFault(_, _, let kind, _) = error { return kind }
        return nil
    }
    /// The device the fault names (for a collective: the rank that failed), or nil.
    public var faultDevice: String? {
        if case .deviceFault(let device, _, _, _) = error { return device }
        return nil
    }
    /// What was done next.
    public var action: RetryAction

    /// Creates a record; an error that is not a `PolychipError` is kept as its description.
    public init(operation: String, device: String, attempt: Int, error: any Error, action: RetryAction) {
        self.operation = operation
        self.device = device
        self.attempt = attempt
        self.error = error as? PolychipError ?? .invalidArgument(kernel: operation, argument: "-", reason: "\(error)")
        self.action = action
    }

    /// `matmul on sim:ascend-910b:1, attempt 1: <error> → retried on the same device`.
    public var description: String { "\(operation) on \(device), attempt \(attempt): \(error) → \(action)" }
}

/// What followed a failed attempt.
public enum RetryAction: Sendable, Hashable, CustomStringConvertible {
    /// Retried on the same device.
    case retrySameDevice
    /// Retried on another device (the string names it), or — when nil — left to a caller
    /// that owns a failover list.
    case failover(to: String?)
    /// Not retried: the error was thrown to the caller.
    case gaveUp

    /// `.failover(to: nil)`.
    public static let failover = RetryAction.failover(to: nil)

    public var description: String {
        switch self {
        case .retrySameDevice: return "retried on the same device"
        case .failover(let d?): return "failed over to \(d)"
        case .failover(nil): return "needs another device"
        case .gaveUp: return "gave up"
        }
    }
}

/// A thread-safe log of failed attempts (what a retrying run did), for reports and tests.
public final class RetryLog: Sendable {
    private let state = Locked<[RetryAttempt]>([])

    /// Creates an empty log.
    public init() {}

    /// Adds a failed attempt.
    public func record(_ attempt: RetryAttempt) { state.withLock { $0.append(attempt) } }

    /// Marks the latest failed attempt whose fault names `device` and that was waiting for
    /// another device as failed over to `target`.
    public func failedOver(from device: String, to target: String) {
        state.withLock { log in
            if let i = log.lastIndex(where: { $0.faultDevice == device && $0.action == .failover(to: nil) }) {
                log[i].action = .failover(to: target)
            }
        }
    }

    /// Every failed attempt, in order.
    public var attempts: [RetryAttempt] { state.withLock { $0 } }

    /// Faults seen (failed attempts), retried on the same device, failed over, and given up.
    public var summary: RetrySummary {
        state.withLock { log in
            var s = RetrySummary()
            for a in log {
                s.failures += 1
                switch a.action {
                case .retrySameDevice: s.retriedSameDevice += 1
                case .failover(let d): if d != nil { s.failedOver += 1 } else { s.gaveUp += 1 }
                case .gaveUp: s.gaveUp += 1
                }
            }
            return s
        }
    }

    /// Empties the log.
    public func reset() { state.withLock { $0 = [] } }
}

/// Counts of a ``RetryLog``.
public struct RetrySummary: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Failed attempts.
    public var failures = 0
    /// Of those, retried on the same device.
    public var retriedSameDevice = 0
    /// Of those, moved to another device.
    public var failedOver = 0
    /// Of those, thrown to the caller (not retryable, out of attempts, or no device left).
    public var gaveUp = 0

    /// Creates zero counts.
    public init() {}

    /// `3 failed attempts: 2 retried on the same device, 1 failed over, 0 gave up`.
    public var description: String {
        "\(failures) failed attempts: \(retriedSameDevice) retried on the same device, \(failedOver) failed over, \(gaveUp) gave up"
    }
}
