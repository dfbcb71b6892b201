import COpenCL
import Foundation
import PolychipCore

/// A buffer in an OpenCL device's global memory.
public final class OpenCLBuffer: DeviceBuffer {
    /// Size in bytes.
    public let byteCount: Int
    /// The owning device's id (`opencl:N`).
    public let deviceID: String
    let mem: CLMem

    init(mem: CLMem, byteCount: Int, deviceID: String) {
        self.mem = mem
        self.byteCount = byteCount
        self.deviceID = deviceID
    }
}

/// The device limits kernels are sized from.
public struct OpenCLLimits: Sendable, Hashable {
    /// `CL_DEVICE_MAX_WORK_GROUP_SIZE`.
    public var maxWorkGroupSize: Int
    /// `CL_DEVICE_MAX_WORK_ITEM_SIZES`.
    public var maxWorkItemSizes: [Int]
    /// `CL_DEVICE_LOCAL_MEM_SIZE` in bytes.
    public var localMemBytes: Int
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` in bytes.
    public var maxAllocBytes: Int
    /// `CL_DEVICE_GLOBAL_MEM_SIZE` in bytes.
    public var globalMemBytes: Int
    /// Whether the device reports `cl_khr_fp16`.
    public var hasFP16: Bool
    /// Whether the device reports `cl_khr_fp64`.
    public var hasFP64: Bool
}

/// Coarse vendor class, which picks the kernels' tile parameters.
public enum OpenCLVendorClass: String, Sendable, Hashable {
    /// An NVIDIA GPU.
    case nvidia
    /// A CPU device (PoCL, Intel CPU runtime): large work-items, vector accumulators.
    case cpu
    /// Any other GPU or accelerator: conservative tiles.
    case other
}

/// Counters of program builds on one device, for tests and diagnostics.
public struct OpenCLBuildStatistics: Sendable, Hashable {
    /// Programs compiled from source (cache misses).
    public var sourceBuilds = 0
    /// Programs loaded from the on-disk binary cache.
    public var diskHits = 0
    /// Program requests answered from the in-memory cache.
    public var memoryHits = 0
    /// Cached binaries the driver rejected (then rebuilt from source).
    public var rejectedBinaries = 0
    /// Cache files whose length or checksum was wrong (deleted, then rebuilt from source).
    public var damagedEntries = 0
}

/// One OpenCL device: a context and one in-order profiling queue, buffers, cached
/// programs and the catalog kernels from kernels/opencl.
public final class OpenCLDevice: Device, @unchecked Sendable {
    // @unchecked: every mutable state is behind a lock (`Locked`); the OpenCL handles are
    // thread-safe objects (see CLHandles.swift) and kernel objects are never shared
    // between concurrent launches (OpenCLProgram's pool).
    /// `opencl:N`.
    public let id: String
    /// Static facts (name, vendor, memory, compute units; driver and limits in `details`).
    public let info: DeviceInfo
    /// Limits that size kernels and allocations.
    public let limits: OpenCLLimits
    /// Which tile parameters the kernels use.
    public let vendorClass: OpenCLVendorClass
    /// The kernels' tile and work-group parameters on this device.
    public let tuning: OpenCLTuning
    let entry: CLDeviceEntry
    let context: CLContext
    let queue: CLCommandQueue
    /// Cache key prefix: device name, driver, device and platform versions.
    let cacheIdentity: String
    /// Programs by key (the in-memory cache): each is built once per process.
    let buildSlots = Locked([ProgramKey: BuildSlot]())
    let stats = Locked(OpenCLBuildStatistics())

    /// - Parameter tuningOverrides: applied after `POLYCHIP_OPENCL_TUNING` (same syntax); tests
    ///   use it to run one device's kernels in another device class's code shapes.
    init(entry: CLDeviceEntry, index: Int, tuningOverrides: String? = nil) throws {
        self.entry = entry
        id = "opencl:\(index)"
        let d = entry.device
        let name = CLInfo.string(d, CL_DEVICE_NAME)
        let vendor = CLInfo.string(d, CL_DEVICE_VENDOR)
        let driver = CLInfo.string(d, CL_DRIVER_VERSION)
        let version = CLInfo.string(d, CL_DEVICE_VERSION)
        let cVersion = CLInfo.string(d, CL_DEVICE_OPENCL_C_VERSION)
        let extensions = CLInfo.string(d, CL_DEVICE_EXTENSIONS)
        let type = CLInfo.value(d, CL_DEVICE_TYPE, as: cl_device_type.self)
        let global = Int(CLInfo.value(d, CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self))
        let maxAlloc = Int(CLInfo.value(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self))
        let units = Int(CLInfo.value(d, CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self))
        let clock = Int(CLInfo.value(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, as: cl_uint.self))
        let local = Int(CLInfo.value(d, CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self))
        let wg = CLInfo.value(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self)
        let items = CLInfo.sizes(d, CL_DEVICE_MAX_WORK_ITEM_SIZES)
        let extList = Set(extensions.split(separator: " ").map(String.init))
        limits = OpenCLLimits(maxWorkGroupSize: max(wg, 1), maxWorkItemSizes: items.isEmpty ? [max(wg, 1), max(wg, 1), 1] : items,
                              localMemBytes: local, maxAllocBytes: maxAlloc, globalMemBytes: global,
                              hasFP16: extList.contains("cl_khr_fp16"), hasFP64: extList.contains("cl_khr_fp64"))
        let isCPU = type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0
        let isGPU = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0
        if vendor.uppercased().contains("NVIDIA") && isGPU { vendorClass = .nvidia }
        else if isCPU { vendorClass = .cpu }
        else { vendorClass = .other }
        tuning = try OpenCLTuning.make(vendorClass, limits)
            .overridden(by: ProcessInfo.processInfo.environment["POLYCHIP_OPENCL_TUNING"], limits: limits)
            .overridden(by: tuningOverrides, limits: limits, origin: "tuning overrides")
        info = DeviceInfo(
            name: name, vendor: vendor, kind: isCPU ? .cpu : isGPU ? .gpu : .accelerator,
            memoryBytes: global, computeUnits: units, dtypes: [.f32, .f16, .bf16, .i8, .i32, .int4],
            details: ["platform": entry.platformName, "platformVersion": entry.platformVersion, "driver": driver,
                      "deviceVersion": version, "openclC": cVersion, "maxAllocBytes": String(maxAlloc),
                      "maxWorkGroupSize": String(wg), "localMemBytes": String(local), "clockMHz": String(clock),
                      "fp16": String(limits.hasFP16), "fp64": String(limits.hasFP64), "tiles": vendorClass.rawValue])
        cacheIdentity = "device=\(name)\nvendor=\(vendor)\ndriver=\(driver)\nversion=\(version)\nplatform=\(entry.platformName) \(entry.platformVersion)"

        var st: cl_int = CL_SUCCESS
        var dev: cl_device_id? = d
        guard let ctx = clCreateContext(nil, 1, &dev, nil, nil, &st), st == CL_SUCCESS else {
            throw CLStatus.failure("clCreateContext", st, "\(name)")
        }
        context = CLContext(ctx)
        queue = try Self.makeQueue(ctx, d, platformVersion: entry.platformVersion)
    }

    /// An in-order queue with profiling; OpenCL 2.0+ API when the platform has it.
    private static func makeQueue(_ ctx: cl_context, _ d: cl_device_id, platformVersion: String) throws -> CLCommandQueue {
        var st: cl_int = CL_SUCCESS
        let major = platformVersion.split(separator: " ").dropFirst().first.flatMap { Int($0.split(separator: ".").first ?? "") } ?? 1
        if major >= 2 {
            var props: [cl_queue_properties] = [cl_queue_properties(CL_QUEUE_PROPERTIES), cl_queue_properties(CL_QUEUE_PROFILING_ENABLE), 0]
            guard let q = clCreateCommandQueueWithProperties(ctx, d, &props, &st), st == CL_SUCCESS else {
                throw CLStatus.failure("clCreateCommandQueueWithProperties", st)
            }
            return CLCommandQueue(q)
        }
        // OpenCL 1.x platform: the 1.0 entry point, looked up so the build stays free of
        // deprecation warnings.
        typealias Create = @convention(c) (cl_context?, cl_device_id?, cl_command_queue_properties, UnsafeMutablePointer<cl_int>?) -> cl_command_queue?
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "clCreateCommandQueue") else {
            throw CLStatus.failure("clCreateCommandQueue", CL_INVALID_OPERATION, "symbol not found in the ICD loader")
        }
        let create = unsafeBitCast(sym, to: Create.self)
        guard let q = create(ctx, d, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &st), st == CL_SUCCESS else {
            throw CLStatus.failure("clCreateCommandQueue", st)
        }
        return CLCommandQueue(q)
    }

    /// Counters of program builds (source builds, disk-cache hits, in-memory hits).
    public var buildStatistics: OpenCLBuildStatistics { stats.withLock { $0 } }

    // MARK: Memory

    /// Allocates `byteCount` bytes of device memory. Requests past
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` or global memory, and allocation failures the
    /// driver reports, are ``PolychipError/outOfMemory(device:requested:available:)``.
    public func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer {
        try allocate(bytes: byteCount)
    }

    func allocate(bytes byteCount: Int) throws -> OpenCLBuffer {
        guard byteCount >= 0 else { throw PolychipError.invalidTensor(reason: "negative allocation of \(byteCount) bytes") }
        let available = min(limits.maxAllocBytes, limits.globalMemBytes)
        guard byteCount <= available else {
            throw PolychipError.outOfMemory(device: id, requested: byteCount, available: available)
        }
        var st: cl_int = CL_SUCCESS
        let mem = clCreateBuffer(context.raw, cl_mem_flags(CL_MEM_READ_WRITE), max(byteCount, 1), nil, &st)
        if CLStatus.isOutOfMemory(st) { throw PolychipError.outOfMemory(device: id, requested: byteCount, available: available) }
        guard st == CL_SUCCESS, let mem else { throw CLStatus.failure("clCreateBuffer", st, "\(byteCount) bytes") }
        return OpenCLBuffer(mem: CLMem(mem), byteCount: byteCount, deviceID: id)
    }

    func clBuffer(_ buffer: any DeviceBuffer) throws -> OpenCLBuffer {
        guard let b = buffer as? OpenCLBuffer, b.deviceID == id else {
            throw PolychipError.invalidTensor(reason: "buffer of \(buffer.deviceID) does not belong to \(id)")
        }
        return b
    }

    /// Blocking copy of host bytes into `buffer` at byte `offset`.
    public func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        let b = try clBuffer(buffer)
        guard offset >= 0, offset <= b.byteCount, source.count <= b.byteCount - offset else {
            throw PolychipError.invalidTensor(reason: "write of \(source.count) bytes at \(offset) exceeds buffer of \(b.byteCount)")
        }
        guard let base = source.baseAddress, source.count > 0 else { return }
        let st = clEnqueueWriteBuffer(queue.raw, b.mem.raw, cl_bool(CL_TRUE), offset, source.count, base, 0, nil, nil)
        if CLStatus.isOutOfMemory(st) { throw PolychipError.outOfMemory(device: id, requested: b.byteCount, available: limits.globalMemBytes) }
        try CLStatus.check(st, "clEnqueueWriteBuffer", "\(source.count) bytes")
    }

    /// Blocking copy of `destination.count` bytes out of `buffer` at byte `offset`.
    public func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        let b = try clBuffer(buffer)
        guard offset >= 0, offset <= b.byteCount, destination.count <= b.byteCount - offset else {
            throw PolychipError.invalidTensor(reason: "read of \(destination.count) bytes at \(offset) exceeds buffer of \(b.byteCount)")
        }
        guard let base = destination.baseAddress, destination.count > 0 else { return }
        let st = clEnqueueReadBuffer(queue.raw, b.mem.raw, cl_bool(CL_TRUE), offset, destination.count, base, 0, nil, nil)
        if CLStatus.isOutOfMemory(st) { throw PolychipError.outOfMemory(device: id, requested: b.byteCount, available: limits.globalMemBytes) }
        try CLStatus.check(st, "clEnqueueReadBuffer", "\(destination.count) bytes")
    }
}
