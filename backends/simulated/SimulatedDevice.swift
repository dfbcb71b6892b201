import Foundation
import PolychipCore
import PolychipCPU
import PolychipReference

extension DeviceKind {
    /// A simulated device driven by a profile.
    public static let simulated = DeviceKind(rawValue: "simulated")
}

/// A device shaped by a ``DeviceProfile``: it executes every kernel for real on host memory
/// (through the fast CPU engine, in the profile's numerics: see SimulatedArithmetic.swift),
/// enforces the memory capacity, injects the profile's faults (FaultInjection.swift) and
/// reports each kernel's time from the ``TimeModel``.
public final class SimulatedDevice: Device, MeshBuildingDevice {
    public let id: String
    public let info: DeviceInfo
    /// The profile this device follows.
    public let profile: DeviceProfile
    /// The profile's time model.
    public let model: TimeModel
    /// The device's index in its profile's mesh (`sim:PROFILE:INDEX`); fault filters use it.
    public let index: Int
    private let budget = MemoryBudget()
    let faultState: DeviceFaultState

    /// Creates device `index` of `profile`; its fault plan is the profile's `faults` block.
    public init(profile: DeviceProfile, index: Int) throws {
        guard index >= 0 else { throw PolychipError.unknownDevice(selector: "sim:\(profile.name):\(index)", reason: "index must be ≥ 0") }
        self.profile = profile
        self.model = TimeModel(profile: profile)
        self.index = index
        self.id = "sim:\(profile.name):\(index)"
        self.faultState = DeviceFaultState(plan: profile.faults)
        // Peak per storage dtype as the matrix unit runs it (after any emulation policy), so
        // roofline percentages match the rates the time model uses.
        var peaks: [String: Double] = [:]
        for d in DType.floats {
            guard let pd = ProfileDType(d) else { continue }
            let q = KernelCostQuery(unit: .matrix, dtype: pd, flops: 1e12, bytes: 0)
            if let rate = try? TimeModel(profile: profile).kernelTime(q).rate, rate > 0 { peaks[d.rawValue] = rate }
        }
        let dtypes = DType.allCases.filter { d in
            guard let p = ProfileDType(d) else { return true }
            return profile.numerics.storageDtypes.value.contains(p)
        }
        info = DeviceInfo(name: profile.description, vendor: profile.vendor, kind: .simulated,
                          memoryBytes: profile.memory.capacity.value,
                          computeUnits: profile.compute.matrix.cores?.value ?? 1, dtypes: dtypes, peakFlops: peaks,
                          memoryBandwidth: profile.memory.bandwidth.value,
                          details: profile.listingDetails)
    }

    public var supportsDryRun: Bool { true }
    public var usesHostMemory: Bool { true }

    /// Bytes currently allocated.
    public var allocatedBytes: Int { budget.used.withLock { $0 } }

    public func supports(_ kernel: OpKind, dtype: DType) -> Support {
        var notes: [String] = []
        if let p = ProfileDType(dtype), !profile.numerics.storageDtypes.value.contains(p) {
            switch profile.numerics.policy(for: p) {
            case let policy? where policy.action == .emulate:
                notes.append("\(dtype) emulated via \(policy.via?.rawValue ?? "f32")")
            default:
                return .unsupported("\(profile.name) has no \(dtype) storage and its profile rejects it")
            }
        }
        if [.int4Matmul, .int4GroupedMatmul, .quantizeInt4, .dequantizeInt4].contains(kernel),
           profile.compute.matrix.peakRate(.int4) == nil {
            switch profile.numerics.policy(for: .int4) {
            case let policy? where policy.action == .emulate:
                let via = policy.via?.rawValue ?? "bf16"
                if policy.via == .int8 || policy.via == .int32 {
                    notes.append("no INT4 unit: INT4 weights are held exactly in \(via) and timed at its rate")
                } else {
                    notes.append("no INT4 unit: INT4 weights are expanded into the activations' dtype (W4A16) and timed at \(via)'s rate")
                }
            default:
                return .unsupported("\(profile.name) has no INT4 support and its profile rejects it")
            }
        }
        if case .unmodeledAccumulator(let acc) = profile.arithmeticPath(for: kernel) {
            notes.append("the profile's \(acc) accumulator is not modeled for \(kernel.name): it accumulates in f32")
        }
        return notes.isEmpty ? .native : .emulated(notes.joined(separator: "; "))
    }

    public func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer {
        guard byteCount >= 0 else { throw PolychipError.invalidTensor(reason: "negative allocation of \(byteCount) bytes") }
        try checkFaults(.allocate)
        let capacity = profile.memory.capacity.value
        // Reserve first so concurrent allocations cannot both pass the check; nothing is
        // half-allocated: a failed host allocation returns the reservation.
        try budget.used.withLock { u in
            guard byteCount <= capacity - u else {
                throw PolychipError.outOfMemory(device: id, requested: byteCount, available: capacity - u)
            }
            u += byteCount
        }
        do {
            let host = try HostBuffer.allocate(byteCount: byteCount, deviceID: id)
            return SimulatedBuffer(host: host, release: { [budget] in budget.used.withLock { $0 -= byteCount } })
        } catch {
            budget.used.withLock { $0 -= byteCount }
            throw error
        }
    }

    public func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        let hb = try host(buffer)
        try checkFaults(.write)
        try HostMemory.write(source, to: hb, at: offset, device: id)
    }

    public func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        let hb = try host(buffer)
        try checkFaults(.read)
        try HostMemory.read(from: hb, at: offset, into: destination, device: id)
    }

    private func host(_ b: any DeviceBuffer) throws -> HostBuffer {
        guard let s = b as? SimulatedBuffer, s.deviceID == id else { throw PolychipError.invalidTensor(reason: "buffer does not belong to \(id)") }
        return s.host
    }

    /// The host address of a tensor's element 0, range-checked.
    private func address(_ t: Tensor) throws -> UnsafeMutableRawPointer {
        let buffer = try t.requireBuffer(on: self)
        return try host(buffer).pointer + t.byteOffset
    }

    /// A tensor's value, read without counting a fault event (collectives count theirs once).
    func hostValue(_ t: Tensor) throws -> HostTensor {
        let p = try address(t)
        return try HostTensor(t.desc, bytes: [UInt8](UnsafeRawBufferPointer(start: p, count: try t.desc.checkedByteCount())))
    }

    /// Stores a value into a tensor of the same descriptor without counting a fault event.
    func store(_ value: HostTensor, to t: Tensor) throws {
        guard value.desc == t.desc else { throw PolychipError.invalidTensor(reason: "store of \(value.desc) into \(t.desc)") }
        let p = try address(t)
        value.bytes.withUnsafeBytes { if let b = $0.baseAddress, $0.count > 0 { p.copyMemory(from: b, byteCount: $0.count) } }
    }

    /// Runs a kernel: fault checks (device lost, launch failure), the arithmetic into host
    /// temporaries, a memory-error check, and only then the store into `outputs`, so a fault
    /// leaves inputs and outputs as they were.
    public func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let name = call.kind.name, expected = call.outputs
        let ins = try inputs.map { HostOperand(try address($0), $0.desc) }
        let dst = try outputs.map { try address($0) }
        try checkFaults(.kernel(name))
        guard let modeled = try modelTime(call) else {
            throw PolychipError.unsupported(kernel: name, device: id, reason: "no time model")
        }
        let temps = try expected.map { d -> HostBuffer in try HostBuffer.allocate(byteCount: try d.checkedByteCount(), deviceID: id) }
        let outs = zip(temps, expected).map { HostOperand($0.pointer, $1) }
        try SimulatedArithmetic(profile: profile, engine: try CPUBackend.engine()).compute(call, inputs: ins, outputs: outs)
        try checkMemoryError(name)
        for (p, t) in zip(dst, temps) where t.byteCount > 0 { p.copyMemory(from: t.pointer, byteCount: t.byteCount) }
        return .modeled(modeled)
    }

    public func model(_ op: Op, inputs: [TensorDesc]) throws -> ModeledBreakdown? {
        try checkLost(op.kind.name)
        return try modelTime(try op.validated(inputs))
    }

    /// The kernel's modeled time (no fault checks).
    func modelTime(_ call: ValidatedCall) throws -> ModeledBreakdown? {
        do {
            let t = try model.kernelTime(KernelCostQuery(call))
            return ModeledBreakdown(launch: t.launch, compute: t.compute, memory: t.memory, total: t.total, bound: t.bound.rawValue)
        } catch {
            throw PolychipError.unsupported(kernel: call.kind.name, device: id, reason: "\(error)")
        }
    }
}

/// Bytes allocated on a device, shared with its buffers so freeing returns them.
final class MemoryBudget: Sendable {
    let used = Locked(0)
}

/// Host storage of a simulated device; returns its bytes to the device's budget when freed.
final class SimulatedBuffer: DeviceBuffer, @unchecked Sendable {
    // @unchecked: immutable after init; `release` only touches a lock (`Locked`).
    let host: HostBuffer
    let release: @Sendable () -> Void
    var byteCount: Int { host.byteCount }
    var deviceID: String { host.deviceID }
    init(host: HostBuffer, release: @escaping @Sendable () -> Void) { self.host = host; self.release = release }
    deinit { release() }
}

extension ProfileDType {
    /// The profile dtype of a storage dtype (`nil` for i8/i32).
    init?(_ d: DType) {
        switch d {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .int4: self = .int4
        case .i8: self = .int8
        case .i32: self = .int32
        }
    }
}
