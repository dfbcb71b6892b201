/// What kind of hardware a device is. Core names the hardware classes; a backend whose
/// devices are something else names its own kind in its module (the reference backend's
/// `.reference`, the simulated backend's `.simulated`), so core knows no backend.
public struct DeviceKind: RawRepresentable, Sendable, Codable, Hashable, CustomStringConvertible {
    /// The kind's name, as records and JSON write it (`"cpu"`).
    public let rawValue: String
    /// A kind by name.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A host CPU.
    public static let cpu = DeviceKind(rawValue: "cpu")
    /// A GPU (through OpenCL or a vendor plugin).
    public static let gpu = DeviceKind(rawValue: "gpu")
    /// Another accelerator (an NPU, a DSP) reached through OpenCL or a vendor plugin.
    public static let accelerator = DeviceKind(rawValue: "accelerator")

    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
    public var description: String { rawValue }
}

/// Static facts about a device.
public struct DeviceInfo: Sendable, Codable, Hashable {
    /// Human-readable name (e.g. `"NVIDIA H100 80GB HBM3"`).
    public var name: String
    /// Vendor string.
    public var vendor: String
    /// Hardware class.
    public var kind: DeviceKind
    /// Device memory in bytes (host RAM for host devices).
    public var memoryBytes: Int
    /// Compute units (cores, SMs, AI cores).
    public var computeUnits: Int
    /// Storage dtypes the device can hold and compute with.
    public var dtypes: [DType]
    /// Peak arithmetic rate in FLOP/s per dtype name where known (`"f32"`, `"f16"`, …).
    public var peakFlops: [String: Double]
    /// Peak memory bandwidth in bytes/s where known.
    public var memoryBandwidth: Double?
    /// Free-form facts (driver version, ISA, profile file, …).
    public var details: [String: String]

    /// Creates a device description.
    public init(name: String, vendor: String, kind: DeviceKind, memoryBytes: Int, computeUnits: Int,
                dtypes: [DType] = DType.allCases, peakFlops: [String: Double] = [:],
                memoryBandwidth: Double? = nil, details: [String: String] = [:]) {
        self.name = name; self.vendor = vendor; self.kind = kind
        self.memoryBytes = memoryBytes; self.computeUnits = computeUnits
        self.dtypes = dtypes; self.peakFlops = peakFlops
        self.memoryBandwidth = memoryBandwidth; self.details = details
    }
}

/// A device's answer to "can you run this kernel for this dtype?".
public enum Support: Sendable, Hashable, CustomStringConvertible {
    /// Implemented natively.
    case native
    /// Runs, but through a documented emulation (e.g. W4A16 via bf16 dequantization).
    case emulated(String)
    /// Not available; the reason says why. Never silently replaced by another path.
    case unsupported(String)

    /// Whether the kernel can run at all.
    public var isRunnable: Bool {
        if case .unsupported = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .native: return "native"
        case .emulated(let r): return "emulated (\(r))"
        case .unsupported(let r): return "unsupported (\(r))"
        }
    }
}

/// How long a kernel took, as the device knows it.
public enum KernelTiming: Sendable, Hashable, Codable {
    /// Wall-clock or device-event time in seconds.
    case measured(seconds: Double)
    /// Time predicted by a model, with its breakdown.
    case modeled(ModeledBreakdown)
}

/// The time model's account of one kernel or collective (seconds).
public struct ModeledBreakdown: Sendable, Hashable, Codable {
    /// Launch overhead.
    public var launch: Double
    /// Compute time on the unit that runs it.
    public var compute: Double
    /// Memory time for the minimum bytes.
    public var memory: Double
    /// Communication time (collectives).
    public var communication: Double
    /// Total modeled time.
    public var total: Double
    /// What bounds it: `"compute"`, `"memory"`, `"launch"` or `"communication"`.
    public var bound: String
    /// Anything else the model did, e.g. the algorithm a collective used and the reroutes it
    /// took around downed links (`nil` when there is nothing to say).
    public var detail: String?

    /// Creates a breakdown.
    public init(launch: Double, compute: Double, memory: Double, communication: Double = 0, total: Double, bound: String,
                detail: String? = nil) {
        self.launch = launch; self.compute = compute; self.memory = memory
        self.communication = communication; self.total = total; self.bound = bound; self.detail = detail
    }
}

/// A compute device: identity, facts, memory and kernel execution.
///
/// Devices execute kernels synchronously from the caller's point of view; ordering,
/// records and timing are the ``Queue``'s job. Implementations must be thread-safe.
public protocol Device: AnyObject, Sendable {
    /// Stable identity in selector form, e.g. `"cpu:0"`, `"sim:ascend-910b:3"`.
    var id: String { get }
    /// Static facts.
    var info: DeviceInfo { get }
    /// Whether `kernel` can run with `dtype` as its primary (activation) dtype.
    func supports(_ kernel: OpKind, dtype: DType) -> Support
    /// Whether this exact call (kernel, parameters, input and output shapes and dtypes) can
    /// run. The default is ``supports(_:dtype:)`` for the call's primary dtype; a device whose
    /// support depends on shapes or parameters (index widths, local memory, a plugin's vendor
    /// kernels) answers per call, before anything is launched.
    func support(for call: ValidatedCall) -> Support
    /// Allocates a device buffer of `byteCount` bytes; throws ``PolychipError/outOfMemory(device:requested:available:)``.
    func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer
    /// Copies host bytes into a buffer at a byte offset.
    func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws
    /// Copies bytes out of a buffer at a byte offset.
    func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws
    /// Runs one validated call on tensors of this device whose descriptors are the call's
    /// (``Queue`` checked them and ``support(for:)``; the device does not validate again).
    func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming
    /// Whether the device can model a kernel on meta tensors (no data): simulated devices can.
    var supportsDryRun: Bool { get }
    /// Whether the device's buffers live in host memory (so a device copy of host data
    /// takes host memory twice); the default is false.
    var usesHostMemory: Bool { get }
    /// Models the time of a kernel without running it (dry run); `nil` when not supported.
    func model(_ op: Op, inputs: [TensorDesc]) throws -> ModeledBreakdown?
    /// The block sizes and path thresholds of this device's kernels, from which the
    /// conformance suite derives boundary shapes (``DeviceTiling/none`` when it has none).
    var tiling: DeviceTiling { get }
    /// The code path `op` takes on this device for these inputs, in the device's words
    /// (`"gemm parallel, 2 K blocks"`); `nil` when the device does not say.
    func path(of op: Op, inputs: [TensorDesc]) -> String?
    /// The 16-bit accumulator this device declares for `kind` (a simulated chip whose
    /// profile accumulates in f16 or bf16), or nil for f32 or wider. Conformance judges such
    /// a kernel within that accumulator's error (docs/conformance.md) on simulated devices
    /// (``supportsDryRun``) only, never on a real device's claim about itself; the default is nil.
    func accumulator(for kind: OpKind) -> DType?
}

extension Device {
    /// The default: ``supports(_:dtype:)`` for the call's primary dtype.
    public func support(for call: ValidatedCall) -> Support { supports(call.kind, dtype: call.primaryDType) }

    /// ``support(for:)`` of `op` on `inputs`; an invalid call is unsupported, with the reason.
    public func support(for op: Op, inputs: [TensorDesc]) -> Support {
        do { return support(for: try op.validated(inputs)) } catch { return .unsupported("invalid call: \(error)") }
    }
    public var supportsDryRun: Bool { false }
    public var usesHostMemory: Bool { false }
    public func model(_ op: Op, inputs: [TensorDesc]) throws -> ModeledBreakdown? { nil }
    public var tiling: DeviceTiling { .none }
    public func path(of op: Op, inputs: [TensorDesc]) -> String? { nil }
    public func accumulator(for kind: OpKind) -> DType? { nil }

    /// Allocates an uninitialised tensor.
    public func allocate(_ desc: TensorDesc) throws -> Tensor {
        let n = try desc.checkedByteCount()
        return Tensor(desc: desc, buffer: try allocateBuffer(byteCount: n), byteOffset: 0)
    }

    /// Allocates a tensor and uploads `host` into it.
    public func tensor(_ host: HostTensor) throws -> Tensor {
        let t = try allocate(host.desc)
        try upload(host, to: t)
        return t
    }

    /// Uploads a host value into a tensor of the same descriptor.
    public func upload(_ host: HostTensor, to tensor: Tensor) throws {
        guard host.desc == tensor.desc else {
            throw PolychipError.invalidTensor(reason: "upload of \(host.desc) into \(tensor.desc)")
        }
        let buffer = try tensor.requireBuffer(on: self)
        try host.bytes.withUnsafeBytes { try write($0, to: buffer, at: tensor.byteOffset) }
    }

    /// Downloads a tensor's value.
    public func download(_ tensor: Tensor) throws -> HostTensor {
        let buffer = try tensor.requireBuffer(on: self)
        var out = [UInt8](repeating: 0, count: try tensor.desc.checkedByteCount())
        try out.withUnsafeMutableBytes { try read(from: buffer, at: tensor.byteOffset, into: $0) }
        return try HostTensor(tensor.desc, bytes: out)
    }

    /// Convenience for one-off work: uploads `inputs`, runs `op` on a fresh queue,
    /// downloads the outputs.
    public func run(_ op: Op, _ inputs: [HostTensor]) throws -> [HostTensor] {
        let call = try op.validated(inputs.map(\.desc))
        let ins = try inputs.map { try tensor($0) }
        let outs = try call.outputs.map { try allocate($0) }
        let queue = Queue(device: self)
        _ = try queue.submit(call, inputs: ins, outputs: outs, attempt: nil)
        return try outs.map { try download($0) }
    }
}
