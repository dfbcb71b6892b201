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
    /// An OpenCL program failed to build; carries the compiler log.
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
        switch self {
        case let .shapeMismatch(k, a, e, g): return "\(k): shape of '\(a)' must be \(e), got \(g)"
        case let .dtypeMismatch(k, a, e, g): return "\(k): dtype of '\(a)' must be \(e), got \(g)"
        case let .invalidArgument(k, a, r): return "\(k): invalid '\(a)': \(r)"
        case let .arityMismatch(k, w, e, g): return "\(k): expected \(e) \(w), got \(g)"
        case let .unsupported(k, d, r): return "\(k) is unsupported on \(d): \(r)"
        case let .outOfMemory(d, r, a): return "out of memory on \(d): requested \(r) bytes, \(a) available"
        case let .resourceExhausted(r, why): return "out of \(r): \(why)"
        case let .sizeOverflow(s, d): return "size of \(d) tensor with shape \(s) overflows or is negative"
        case let .invalidTensor(r): return "invalid tensor: \(r)"
        case let .unknownDevice(s, r): return "no device for '\(s)': \(r)"
        case let .deviceFault(d, k, kind, detail): return "\(kind) fault on \(d) during \(k): \(detail)"
        case let .buildFailure(d, p, log): return "OpenCL build of \(p) failed on \(d):\n\(log)"
        case let .backendFailure(b, c, code, detail): return "\(b): \(c) failed (\(code)): \(detail)"
        case let .malformedFile(p, f, r): return "\(p): field '\(f)': \(r)"
        case let .io(p, r): return "\(p): \(r)"
        case let .collectiveMismatch(c, r): return "\(c): \(r)"
        }
    }
}
