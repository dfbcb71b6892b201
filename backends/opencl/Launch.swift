import COpenCL
import PolychipCore

/// One argument of a kernel launch.
enum KernelArg {
    /// A buffer (`__global T *`).
    case buffer(OpenCLBuffer)
    /// A NULL `__global` pointer (optional operands).
    case null
    /// `int`.
    case i32(Int32)
    /// `uint`.
    case u32(UInt32)
    /// `ulong` (element offsets).
    case u64(UInt64)
    /// `float`.
    case f32(Float)
    /// A `__local` array of this many bytes.
    case local(Int)

    /// `int` from an `Int` (shapes are validated to fit).
    static func int(_ v: Int) -> KernelArg { .i32(Int32(truncatingIfNeeded: v)) }
}

/// The kernels one catalog call enqueues, in order, with their profiling events.
final class Submission {
    let device: OpenCLDevice
    private(set) var events: [CLEvent] = []
    /// Temporaries that must outlive the enqueued work.
    var keepAlive: [OpenCLBuffer] = []

    init(device: OpenCLDevice) { self.device = device }

    /// Enqueues `kernel` of `program` over `global` work-items in groups of `local`
    /// (global is rounded up to a multiple of local).
    func launch(_ program: OpenCLProgram, _ kernel: String, _ args: [KernelArg], global: [Int], local: [Int]?) throws {
        let k = try program.checkOut(kernel)
        defer { program.checkIn(kernel, k) }
        for (i, a) in args.enumerated() {
            let st: cl_int
            switch a {
            case .buffer(let b):
                var m: cl_mem? = b.mem.raw
                st = clSetKernelArg(k.raw, cl_uint(i), MemoryLayout<cl_mem>.size, &m)
            case .i32(var v): st = clSetKernelArg(k.raw, cl_uint(i), 4, &v)
            case .u32(var v): st = clSetKernelArg(k.raw, cl_uint(i), 4, &v)
            case .u64(var v): st = clSetKernelArg(k.raw, cl_uint(i), 8, &v)
            case .f32(var v): st = clSetKernelArg(k.raw, cl_uint(i), 4, &v)
            case .null:
                var m: cl_mem? = nil
                st = clSetKernelArg(k.raw, cl_uint(i), MemoryLayout<cl_mem>.size, &m)
            case .local(let n): st = clSetKernelArg(k.raw, cl_uint(i), max(n, 1), nil)
            }
            try CLStatus.check(st, "clSetKernelArg", "\(kernel) argument \(i)")
        }
        var g = global.map { max($0, 1) }
        if let local {
            for i in g.indices { g[i] = (g[i] + local[i] - 1) / local[i] * local[i] }
        }
        var event: cl_event? = nil
        let st: cl_int
        if var l = local {
            st = clEnqueueNDRangeKernel(device.queue.raw, k.raw, cl_uint(g.count), nil, &g, &l, 0, nil, &event)
        } else {
            st = clEnqueueNDRangeKernel(device.queue.raw, k.raw, cl_uint(g.count), nil, &g, nil, 0, nil, &event)
        }
        if st == CL_MEM_OBJECT_ALLOCATION_FAILURE {
            // Drivers that allocate lazily (NVIDIA) report device memory exhaustion here.
            throw PolychipError.outOfMemory(device: device.id, requested: keepAlive.reduce(0) { $0 + $1.byteCount },
                                            available: device.limits.globalMemBytes)
        }
        if CLStatus.isOutOfMemory(st) {
            throw PolychipError.deviceFault(device: device.id, kernel: kernel, kind: "resources", detail: "clEnqueueNDRangeKernel: \(CLStatus.name(st))")
        }
        try CLStatus.check(st, "clEnqueueNDRangeKernel", "\(kernel) global \(g) local \(local.map { "\($0)" } ?? "auto")")
        if let event { events.append(CLEvent(event)) }
    }

    /// Enqueues a fill of `bytes` bytes of `buffer` at `offset` with a 4-byte pattern.
    func fill(_ buffer: OpenCLBuffer, offset: Int = 0, bytes: Int, pattern: UInt32 = 0) throws {
        guard bytes > 0 else { return }
        var p = pattern
        var event: cl_event? = nil
        let st = clEnqueueFillBuffer(device.queue.raw, buffer.mem.raw, &p, 4, offset, bytes, 0, nil, &event)
        try CLStatus.check(st, "clEnqueueFillBuffer", "\(bytes) bytes")
        if let event { events.append(CLEvent(event)) }
    }

    /// Enqueues a device-to-device copy.
    func copy(_ src: OpenCLBuffer, _ srcOffset: Int, _ dst: OpenCLBuffer, _ dstOffset: Int, bytes: Int) throws {
        guard bytes > 0 else { return }
        var event: cl_event? = nil
        let st = clEnqueueCopyBuffer(device.queue.raw, src.mem.raw, dst.mem.raw, srcOffset, dstOffset, bytes, 0, nil, &event)
        try CLStatus.check(st, "clEnqueueCopyBuffer", "\(bytes) bytes")
        if let event { events.append(CLEvent(event)) }
    }

    /// Allocates a temporary device buffer kept alive until the submission completes.
    func scratch(_ bytes: Int) throws -> OpenCLBuffer {
        let b = try device.allocate(bytes: bytes)
        keepAlive.append(b)
        return b
    }

    /// Waits for everything enqueued and returns the summed device time of its commands.
    func finish() throws -> Double {
        let st = clFinish(device.queue.raw)
        if st != CL_SUCCESS {
            throw PolychipError.deviceFault(device: device.id, kernel: "clFinish", kind: "execution", detail: CLStatus.name(st))
        }
        var total = 0.0
        for e in events { total += try e.profiledSeconds() }
        return total
    }
}
