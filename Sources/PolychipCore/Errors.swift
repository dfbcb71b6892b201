/// Every error Polychip throws. Each case says what was wrong and where.
public enum PolychipError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A tensor's shape does not fit the kernel (`argument` names the operand).
    case shapeMismatch(kernel: String, argument: String, expected: String, got: String)
    /// A tensor's dtype does not fit the kernel.
    case dtypeMismatch(kernel: String, argument: String, expected: String, got: DType)
    /// A parameter or a data-dependent value (offsets, indices) is out of its domain.
    case invalidArgument(kernel: String, argument: String, reason: String)
    /// Wrong number of input or output tensors for the kernel.
    case arityMismatch(kernel: String, what: String, expected: Int, got: Int)
    /// The device does not implement the kernel for this dtype.
    case unsupported(kernel: String, device: String, reason: String)
    /// An allocation exceeds the device's free memory.
    case outOfMemory(device: String, requested: Int, available: Int)
    /// A resource other than device memory ran out or would exceed its documented bound:
    /// threads (the process limit), disk space, host memory for staging (`resource` names it).
    case resourceExhausted(resource: String, reason: String)
    /// A shape whose element or byte count overflows `Int`, or is negative.
    case sizeOverflow(shape: [Int], dtype: DType)
    /// A tensor was used on a device it does not belong to, or a buffer view is out of range.
    case invalidTensor(reason: String)
    /// No device matches a selector, or the selector is malformed.
    case unknownDevice(selector: String, reason: String)
    /// A (simulated or real) device fault during a kernel or transfer.
    case deviceFault(device: String, kernel: String, kind: String, detail: String)
    /// A device program (an OpenCL kernel source, a plugin's JIT) failed to build; carries the compiler log.
    case buildFailure(device: String, program: String, log: String)
    /// A backend API call failed (OpenCL status codes, hwloc, …).
    case backendFailure(backend: String, call: String, code: Int, detail: String)
    /// A file (profile, .npy, safetensors) is malformed.
    case malformedFile(path: String, field: String, reason: String)
    /// A file could not be read or written.
    case io(path: String, reason: String)
    /// A collective was called with inconsistent per-device tensors or a broken mesh.
    case collectiveMismatch(collective: String, reason: String)

    public var description: String {
        // Every field that can carry user input is bounded (Quoted.bounded): a 10 MB profile
        // name must not become a 10 MB message. The build log is the compiler's, kept whole.
        func b(_ s: String) -> String { Quoted.bounded(s) }
        func r(_ s: String) -> String { Quoted.bounded(s, limit: 2000) }
        switch self {
        case let .shapeMismatch(k, a, e, g): return "\(b(k)): shape of '\(b(a))' must be \(r(e)), got \(r(g))"
        case let .dtypeMismatch(k, a, e, g): return "\(b(k)): dtype of '\(b(a))' must be \(r(e)), got \(g)"
        case let .invalidArgument(k, a, why): return "\(b(k)): invalid '\(b(a))': \(r(why))"
        case let .arityMismatch(k, w, e, g): return "\(b(k)): expected \(e) \(r(w)), got \(g)"
        case let .unsupported(k, d, why): return "\(b(k)) is unsupported on \(b(d)): \(r(why))"
        case let .outOfMemory(d, req, a): return "out of memory on \(b(d)): requested \(req) bytes, \(a) available"
        case let .resourceExhausted(res, why): return "out of \(b(res)): \(r(why))"
        case let .sizeOverflow(s, d): return "size of \(d) tensor with shape \(r("\(s)")) overflows or is negative"
        case let .invalidTensor(why): return "invalid tensor: \(r(why))"
        case let .unknownDevice(s, why): return "no device for '\(b(s))': \(r(why))"
        case let .deviceFault(d, k, kind, detail): return "\(b(kind)) fault on \(b(d)) during \(b(k)): \(r(detail))"
        case let .buildFailure(d, p, log): return "the build of device program \(b(p)) failed on \(b(d)):\n\(log)"
        case let .backendFailure(be, c, code, detail): return "\(b(be)): \(b(c)) failed (\(code)): \(r(detail))"
        case let .malformedFile(p, f, why): return "\(b(p)): field '\(b(f))': \(r(why))"
        case let .io(p, why): return "\(b(p)): \(r(why))"
        case let .collectiveMismatch(c, why): return "\(b(c)): \(r(why))"
        }
    }
}
