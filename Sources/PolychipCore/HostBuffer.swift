import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Storage in host memory, used by every backend whose device memory is the host's
/// (reference, cpu, simulated). 64-byte aligned so SIMD loads of whole rows are legal.
public final class HostBuffer: DeviceBuffer, @unchecked Sendable {
    // @unchecked: the pointer is owned for the object's lifetime; concurrent access to
    // its contents is ordered by the queues that use it, as with any device buffer.
    /// Start of the storage.
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    public let deviceID: String
    private let release: @Sendable (UnsafeMutableRawPointer, Int) -> Void

    /// Allocates `byteCount` zeroed bytes with the Swift allocator.
    public init(byteCount: Int, deviceID: String) {
        self.byteCount = byteCount
        self.deviceID = deviceID
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.pointer = p
        self.release = { p, _ in p.deallocate() }
    }

    /// Allocates `byteCount` zeroed bytes, or throws out-of-memory when the host cannot
    /// provide them (instead of trapping as the Swift allocator does).
    public static func allocate(byteCount: Int, deviceID: String) throws -> HostBuffer {
        guard byteCount >= 0 else { throw PolychipError.invalidTensor(reason: "negative allocation of \(byteCount) bytes") }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(byteCount, 1)) == 0, let p = raw else {
            throw PolychipError.outOfMemory(device: deviceID, requested: byteCount, available: 0)
        }
        memset(p, 0, max(byteCount, 1))
        return HostBuffer(adopting: p, byteCount: byteCount, deviceID: deviceID) { p, _ in free(p) }
    }

    /// Adopts memory from another allocator (e.g. libnuma) with its matching release.
    public init(adopting pointer: UnsafeMutableRawPointer, byteCount: Int, deviceID: String,
                release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.deviceID = deviceID
        self.release = release
    }

    deinit { release(pointer, byteCount) }
}

extension Tensor {
    /// The host address of element 0, for host-memory backends.
    public func hostPointer(on device: any Device) throws -> UnsafeMutableRawPointer {
        guard let hb = try requireBuffer(on: device) as? HostBuffer else {
            throw PolychipError.invalidTensor(reason: "\(desc) is not in host memory")
        }
        return hb.pointer + byteOffset
    }

    /// Reads a host-memory tensor as a ``HostTensor``.
    public func hostValue(on device: any Device) throws -> HostTensor {
        let p = try hostPointer(on: device)
        let n = try desc.checkedByteCount()
        return try HostTensor(desc, bytes: [UInt8](UnsafeRawBufferPointer(start: p, count: n)))
    }

    /// Stores a ``HostTensor`` into a host-memory tensor of the same descriptor.
    public func storeHostValue(_ value: HostTensor, on device: any Device) throws {
        guard value.desc == desc else {
            throw PolychipError.invalidTensor(reason: "store of \(value.desc) into \(desc)")
        }
        let p = try hostPointer(on: device)
        value.bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
}

/// Shared read/write for host-memory devices, and the host-memory check done before large
/// host allocations.
public enum HostMemory {
    /// Host memory a process may still take, bytes: `MemAvailable` from `/proc/meminfo` on
    /// Linux (free plus reclaimable), else the physical memory.
    public static func availableBytes() -> Double {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                if let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) { return kb * 1024 }
            }
        }
        return Double(ProcessInfo.processInfo.physicalMemory)
    }

    /// Checks, before allocating, that `bytes` of host memory for `what` fit in what is
    /// available: Swift's allocators abort on failure, so a too-large request must be refused
    /// here as a typed error instead.
    /// - Throws: `PolychipError.outOfMemory` on `device` with the estimate and the available bytes.
    public static func reserve(_ bytes: Double, for what: String, device: String) throws {
        let available = availableBytes()
        guard bytes.isFinite, bytes <= available else {
            throw PolychipError.outOfMemory(device: "\(device) (host memory for \(what))",
                                            requested: bytes.isFinite && bytes < 9e18 ? Int(bytes) : Int.max,
                                            available: available < 9e18 ? Int(available) : Int.max)
        }
    }

    /// Range-checked copy into a ``HostBuffer``.
    public static func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int, device: String) throws {
        guard let hb = buffer as? HostBuffer, hb.deviceID == device else {
            throw PolychipError.invalidTensor(reason: "buffer does not belong to \(device)")
        }
        guard offset >= 0, offset <= hb.byteCount, source.count <= hb.byteCount - offset else {
            throw PolychipError.invalidTensor(reason: "write of \(source.count) bytes at \(offset) exceeds buffer of \(hb.byteCount)")
        }
        if let base = source.baseAddress, source.count > 0 { (hb.pointer + offset).copyMemory(from: base, byteCount: source.count) }
    }

    /// Range-checked copy out of a ``HostBuffer``.
    public static func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer, device: String) throws {
        guard let hb = buffer as? HostBuffer, hb.deviceID == device else {
            throw PolychipError.invalidTensor(reason: "buffer does not belong to \(device)")
        }
        guard offset >= 0, offset <= hb.byteCount, destination.count <= hb.byteCount - offset else {
            throw PolychipError.invalidTensor(reason: "read of \(destination.count) bytes at \(offset) exceeds buffer of \(hb.byteCount)")
        }
        if let base = destination.baseAddress, destination.count > 0 { base.copyMemory(from: hb.pointer + offset, byteCount: destination.count) }
    }
}
