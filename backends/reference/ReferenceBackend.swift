import Foundation
import PolychipCore

extension DeviceKind {
    /// The strict reference implementation on the host CPU.
    public static let reference = DeviceKind(rawValue: "reference")
}

/// The strict reference backend: one device, `reference:0`, backed by host memory.
public struct ReferenceBackend: Backend {
    private static let shared = ReferenceDevice()
    /// Creates the backend.
    public init() {}
    public var name: String { "reference" }
    public var status: String { "1 device (f64 oracle, single-threaded)" }
    public func devices() throws -> [any Device] { [Self.shared] }
    public func device(profile: String?, index: Int?) throws -> any Device {
        guard profile == nil else {
            throw PolychipError.unknownDevice(selector: "reference:\(profile!)", reason: "the reference backend takes no profile")
        }
        guard (index ?? 0) == 0 else {
            throw PolychipError.unknownDevice(selector: "reference:\(index!)", reason: "the reference backend has one device, reference:0")
        }
        return Self.shared
    }
}

/// The reference device: runs ``Reference/evaluate(_:_:)`` on host-memory tensors.
public final class ReferenceDevice: Device {
    public let id = "reference:0"
    public let info: DeviceInfo
    public var usesHostMemory: Bool { true }

    /// Creates the device.
    public init() {
        info = DeviceInfo(name: "Polychip reference (f64 loops)", vendor: "Polychip", kind: .reference,
                          memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), computeUnits: 1,
                          details: ["accumulation": "f64", "threads": "1"])
    }

    public func supports(_ kernel: OpKind, dtype: DType) -> Support { .native }

    public func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer {
        guard byteCount >= 0 else { throw PolychipError.invalidTensor(reason: "negative allocation of \(byteCount) bytes") }
        guard byteCount <= info.memoryBytes else {
            throw PolychipError.outOfMemory(device: id, requested: byteCount, available: info.memoryBytes)
        }
        return try HostBuffer.allocate(byteCount: byteCount, deviceID: id)
    }

    public func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        try HostMemory.write(source, to: buffer, at: offset, device: id)
    }

    public func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        try HostMemory.read(from: buffer, at: offset, into: destination, device: id)
    }

    public func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let t0 = Queue.wallClock()
        let values = try inputs.map { try $0.hostValue(on: self) }
        let results = try Reference.compute(call, values)
        // Results are complete before anything is stored: a failure leaves outputs untouched.
        for (o, r) in zip(outputs, results) { try o.storeHostValue(r, on: self) }
        return .measured(seconds: Queue.wallClock() - t0)
    }
}
