// FaultInjection.swift — seeded, deterministic fault injection for simulated devices and meshes.
//
// A device counts its events (1-based, per device) and asks the active fault plan
// (`DeviceProfile.Faults`, from the profile's `faults` block, `--set faults.…`, or
// `SimulatedDevice.injectFaults`) whether a fault fires on each one:
//
//   kernelLaunchFailure  event = kernel launches (execute calls)               filter name = kernel
//   memoryError          event = allocations, writes, reads and kernels, together
//                                                                               filter name = "allocate" | "write" | "read" | kernel
//   deviceLost           event = every operation (the above and collectives)   filter name = as above, or the collective
//   linkDown             event = collectives on a mesh (counted by the mesh's communicator)
//
// A fired fault throws `PolychipError.deviceFault(device:kernel:kind:detail:)` before anything
// is stored: allocations reserve nothing, writes copy nothing, reads fill nothing, kernels
// compute into host temporaries and store only when no fault fired. A lost device stays lost:
// every later call on it fails. A downed link stays down; collectives reroute around it or
// fail as the topology allows (TimeModel's fault routing).

import Foundation
import PolychipCore

/// One fault that fired, as recorded by the device or mesh it hit.
public struct FiredFault: Sendable, Hashable, CustomStringConvertible {
    /// The fault kind.
    public var kind: FaultKind
    /// Device id (for a link fault: the first device of the link).
    public var device: String
    /// The operation it hit: a kernel name, `allocate`, `write`, `read`, or a collective.
    public var operation: String
    /// The event number (1-based) the trigger fired on.
    public var event: Int
    /// Why it fired (`atEvent 3`, `probability 0.01 with seed 7`, `injected`).
    public var detail: String

    /// A one-line account.
    public var description: String { "\(kind) on \(device) during \(operation) (event \(event)): \(detail)" }
}

/// The event counters and fault plan of one device (thread-safe).
final class DeviceFaultState: Sendable {
    struct State {
        var plan: DeviceProfile.Faults?
        var launches = 0
        var memoryEvents = 0
        var operations = 0
        var lost: FiredFault?
        var fired: [FiredFault] = []
        /// One-shot faults from `injectFault`: kind and optional operation filter.
        var pending: [(FaultKind, String?)] = []

        /// Removes and reports a pending one-shot fault of `kind` that applies to `operation`.
        mutating func takePending(_ kind: FaultKind, _ operation: String) -> Bool {
            guard let i = pending.firstIndex(where: { $0.0 == kind && ($0.1 == nil || $0.1 == operation) }) else { return false }
            pending.remove(at: i)
            return true
        }
    }

    let state: Locked<State>

    init(plan: DeviceProfile.Faults?) { state = Locked(State(plan: plan)) }

    /// The reason given for a one-shot fault from `injectFault`.
    static let injected = "injected by injectFault"

    /// Why a plan's trigger fired, for the error message.
    static func reason(_ kind: FaultKind, _ plan: DeviceProfile.Faults, event: Int) -> String {
        guard let t = plan.trigger(for: kind) else { return "faults.\(kind)" }
        if let at = t.atEvent, at == event { return "faults.\(kind).atEvent = \(at)" }
        if let p = t.probability { return "faults.\(kind).probability = \(p), seed \(plan.seed ?? 0)" }
        return "faults.\(kind)"
    }
}

/// What a device operation is, for the event counters.
enum DeviceOperation {
    case allocate
    case write
    case read
    case kernel(String)
    case collective(String)

    var name: String {
        switch self {
        case .allocate: return "allocate"
        case .write: return "write"
        case .read: return "read"
        case .kernel(let k), .collective(let k): return k
        }
    }
}

extension SimulatedDevice {
    // MARK: Fault API

    /// The fault plan in force (the profile's `faults` block until ``injectFaults(_:)`` replaces it).
    public var faultPlan: DeviceProfile.Faults? { faultState.state.withLock { $0.plan } }

    /// Replaces the fault plan and restarts the event counters at 0 (`nil` turns faults off).
    /// A lost device stays lost (see ``restore()``).
    public func injectFaults(_ faults: DeviceProfile.Faults?) {
        faultState.state.withLock { s in
            s.plan = faults
            s.launches = 0
            s.memoryEvents = 0
            s.operations = 0
        }
    }

    /// Makes `kind` fire once, on the device's next event it applies to — optionally only an
    /// event of operation `kernel` (a kernel name, `allocate`, `write`, `read`, or a collective
    /// for `deviceLost`) — on top of the plan. `linkDown` is a mesh fault: use
    /// `SimulatedCommunicator.takeDown(_:)` (this call ignores it).
    public func injectFault(_ kind: FaultKind, kernel: String? = nil) {
        guard kind != .linkDown else { return }
        faultState.state.withLock { $0.pending.append((kind, kernel)) }
    }

    /// Whether a `deviceLost` fault has fired: every later call on the device fails.
    public var isLost: Bool { faultState.state.withLock { $0.lost != nil } }

    /// Every fault that fired on this device, in order.
    public var firedFaults: [FiredFault] { faultState.state.withLock { $0.fired } }

    /// Brings a lost device back (a driver reset) and clears the fault log; the plan is kept
    /// and the counters restart at 0.
    public func restore() {
        faultState.state.withLock { s in
            s.lost = nil
            s.fired = []
            s.pending = []
            s.launches = 0
            s.memoryEvents = 0
            s.operations = 0
        }
    }

    // MARK: Event checks

    /// Counts `op` and throws the fault it triggers, if any: device lost (sticky), then a
    /// kernel launch failure (kernels), then a memory error (allocations, transfers; kernels
    /// check theirs with ``checkMemoryError(_:)`` after computing, before storing).
    func checkFaults(_ op: DeviceOperation) throws {
        let (fault, earlier): (FiredFault?, Bool) = faultState.state.withLock { s in
            if let lost = s.lost { return (lost, true) }
            s.operations += 1
            let plan = s.plan ?? DeviceProfile.Faults()
            let injectedLoss = s.takePending(.deviceLost, op.name)
            if injectedLoss || plan.fires(.deviceLost, event: s.operations, device: index, kernel: op.name) {
                let f = FiredFault(kind: .deviceLost, device: id, operation: op.name, event: s.operations,
                                   detail: injectedLoss ? DeviceFaultState.injected : DeviceFaultState.reason(.deviceLost, plan, event: s.operations))
                s.lost = f
                s.fired.append(f)
                return (f, false)
            }
            switch op {
            case .kernel(let name):
                s.launches += 1
                let injected = s.takePending(.kernelLaunchFailure, name)
                if injected || plan.fires(.kernelLaunchFailure, event: s.launches, device: index, kernel: name) {
                    let f = FiredFault(kind: .kernelLaunchFailure, device: id, operation: name, event: s.launches,
                                       detail: injected ? DeviceFaultState.injected : DeviceFaultState.reason(.kernelLaunchFailure, plan, event: s.launches))
                    s.fired.append(f)
                    return (f, false)
                }
            case .allocate, .write, .read:
                return (memoryFault(&s, op.name), false)
            case .collective:
                break
            }
            return (nil, false)
        }
        if let fault { throw Self.error(fault, lostEarlier: earlier ? op.name : nil) }
    }

    /// Counts a kernel's memory event and throws a memory error if one fires.
    func checkMemoryError(_ kernel: String) throws {
        let fault: FiredFault? = faultState.state.withLock { s in memoryFault(&s, kernel) }
        if let fault { throw Self.error(fault, lostEarlier: nil) }
    }

    private func memoryFault(_ s: inout DeviceFaultState.State, _ name: String) -> FiredFault? {
        s.memoryEvents += 1
        let plan = s.plan ?? DeviceProfile.Faults()
        let injected = s.takePending(.memoryError, name)
        guard injected || plan.fires(.memoryError, event: s.memoryEvents, device: index, kernel: name) else { return nil }
        let f = FiredFault(kind: .memoryError, device: id, operation: name, event: s.memoryEvents,
                           detail: injected ? DeviceFaultState.injected : DeviceFaultState.reason(.memoryError, plan, event: s.memoryEvents))
        s.fired.append(f)
        return f
    }

    /// Throws `deviceLost` if the device is lost (dry runs and other uncounted calls).
    func checkLost(_ operation: String) throws {
        if let lost = faultState.state.withLock({ $0.lost }) { throw Self.error(lost, lostEarlier: operation) }
    }

    static func error(_ f: FiredFault, lostEarlier operation: String?) -> PolychipError {
        let what: String
        switch f.kind {
        case .kernelLaunchFailure: what = "kernel launch failed; nothing ran and no buffer was touched"
        case .memoryError: what = "uncorrectable memory error; nothing was stored"
        case .deviceLost: what = "device lost; every later call on it fails"
        case .linkDown: what = "interconnect link down"
        }
        if let operation {
            return .deviceFault(device: f.device, kernel: operation, kind: f.kind.rawValue,
                                detail: "\(what) (lost during \(f.operation), event \(f.event): \(f.detail))")
        }
        return .deviceFault(device: f.device, kernel: f.operation, kind: f.kind.rawValue,
                            detail: "\(what) (event \(f.event): \(f.detail))")
    }
}
