import CPolychipPluginABI
import Foundation
import PolychipCore

/// A buffer a plugin made; freed through the plugin when the last reference goes.
final class PluginBuffer: DeviceBuffer, @unchecked Sendable {
    // @unchecked: `handle` is an opaque plugin pointer set once; it is only passed back to the
    // plugin, under the plugin's lock.
    let byteCount: Int
    let deviceID: String
    let handle: OpaquePointer
    let library: PluginLibrary
    let index: Int32

    init(handle: OpaquePointer, byteCount: Int, deviceID: String, library: PluginLibrary, index: Int32) {
        self.handle = handle; self.byteCount = byteCount; self.deviceID = deviceID; self.library = library; self.index = index
    }

    deinit {
        let (h, i) = (handle, index)
        library.locked { api, state in api.buffer_free?(state, i, h) }
    }
}

/// A device of a plugin: `NAME:INDEX`. Every call is validated here (or by ``Queue``) before it
/// crosses into the plugin; the plugin's status codes come back as typed errors naming the
/// plugin, the call and the kernel.
public final class PluginDevice: Device, @unchecked Sendable {
    // @unchecked: every stored property is immutable except `supportCache`, which is a `Locked`.

    public let id: String
    public let info: DeviceInfo
    /// A CPU plugin's buffers are host memory (a device copy of host data takes it twice).
    public var usesHostMemory: Bool { info.kind == .cpu }
    /// The plugin it belongs to.
    public let library: PluginLibrary
    let index: Int32
    public let tiling: DeviceTiling
    private let supportCache = Locked([String: Support]())

    init(library: PluginLibrary, index: Int32) throws {
        self.library = library
        self.index = index
        let id = "\(library.name):\(index)"
        self.id = id
        var raw = polychip_device_info()
        raw.struct_size = UInt32(MemoryLayout<polychip_device_info>.size)
        try library.call({ api, state, msg, cap in api.device_info!(state, index, &raw, msg, cap) },
                         failure: { library.error($0, $1, call: "device_info", kernel: nil, device: id) })
        info = Self.info(raw, library: library)
        tiling = Self.tiling(library: library, index: index)
    }

    static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let n = raw.firstIndex(of: 0) ?? raw.count
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<n]), as: UTF8.self)
        }
    }

    static func info(_ raw: polychip_device_info, library: PluginLibrary) -> DeviceInfo {
        var peaks: [String: Double] = [:]
        withUnsafeBytes(of: raw.peak_flops) { p in
            let values = p.bindMemory(to: Double.self)
            for dt in DType.allCases {
                let v = values[Int(PluginABI.dtypeID(dt))]
                if v.isFinite && v > 0 { peaks[dt.rawValue] = v }
            }
        }
        var details = ["plugin": library.path, "plugin version": library.version]
        for line in string(raw.details).split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, !kv[0].isEmpty { details[kv[0]] = kv[1] }
        }
        let name = string(raw.name)
        return DeviceInfo(name: name.isEmpty ? library.name : name, vendor: string(raw.vendor),
                          kind: PluginABI.deviceKind(raw.kind), memoryBytes: Int(clamping: raw.memory_bytes),
                          computeUnits: Int(max(0, raw.compute_units)), dtypes: PluginABI.dtypes(mask: raw.dtype_mask),
                          peakFlops: peaks,
                          memoryBandwidth: raw.memory_bandwidth.isFinite && raw.memory_bandwidth > 0 ? raw.memory_bandwidth : nil,
                          details: details)
    }

    /// The plugin's tiles per kernel, when it reports them (the optional `kernel_tiling`).
    static func tiling(library: PluginLibrary, index: Int32) -> DeviceTiling {
        guard library.api.kernel_tiling != nil else { return .none }
        var kernels: [KernelTiling] = []
        for kind in OpKind.allCases {
            var entries = [polychip_tile_boundary](repeating: polychip_tile_boundary(), count: 32)
            for i in entries.indices { entries[i].struct_size = UInt32(MemoryLayout<polychip_tile_boundary>.size) }
            var count: Int32 = 0
            let status = library.locked { api, state in
                api.kernel_tiling!(state, index, PluginABI.kernelID(kind), &entries, Int32(entries.count), &count)
            }
            guard status == Int32(POLYCHIP_OK.rawValue), count > 0 else { continue }
            let boundaries = entries.prefix(Int(min(count, Int32(entries.count)))).compactMap { e -> TileBoundary? in
                let dim = string(e.dim)
                guard e.size >= 2, e.size <= 1 << 20, !dim.isEmpty else { return nil }
                let role: TileBoundary.Role = UInt32(bitPattern: e.role) == POLYCHIP_TILE_THRESHOLD.rawValue ? .threshold : .block
                let name = string(e.name)
                return TileBoundary(dim, Int(e.size), role, name: name.isEmpty ? "\(library.name) \(dim)" : name)
            }
            if !boundaries.isEmpty { kernels.append(KernelTiling(kind, boundaries, variant: nil)) }
        }
        return DeviceTiling(kernels: kernels, overrides: nil)
    }

    // MARK: Support

    public func supports(_ kernel: OpKind, dtype: DType) -> Support {
        let key = "\(kernel.rawValue)/\(dtype.rawValue)"
        if let s = supportCache.withLock({ $0[key] }) { return s }
        var reason = [CChar](repeating: 0, count: PluginLibrary.messageCapacity)
        let raw = library.locked { api, state in
            api.support!(state, index, PluginABI.kernelID(kernel), PluginABI.dtypeID(dtype), &reason, reason.count - 1)
        }
        let s = PluginABI.support(raw, reason: PluginLibrary.text(reason, or: ""))
        supportCache.withLock { $0[key] = s }
        return s
    }

    /// The plugin's answer for this exact call (its `query`), after the host's own validation.
    public func support(for call: ValidatedCall) -> Support {
        query(call).support
    }

    /// For a native call, the code path the plugin says it takes.
    public func path(of op: Op, inputs: [TensorDesc]) -> String? {
        guard let call = try? op.validated(inputs) else { return nil }
        let q = query(call)
        guard case .native = q.support, !q.reason.isEmpty else { return nil }
        return q.reason
    }

    func query(_ call: ValidatedCall) -> (support: Support, reason: String) {
        let (op, inputs, outputs) = (call.op, call.inputs, call.outputs)
        guard (inputs + outputs).allSatisfy({ $0.rank <= Int(POLYCHIP_MAX_RANK) }) else {
            return (.unsupported("a tensor has more than \(POLYCHIP_MAX_RANK) dimensions, the ABI's limit"), "")
        }
        var cop = PluginABI.op(op, inputs: inputs)
        var reason = [CChar](repeating: 0, count: PluginLibrary.messageCapacity)
        let raw = Self.withTensors(op, inputs.map { ($0, nil, 0) }, outputs.map { ($0, nil, 0) }) { ins, outs in
            library.locked { api, state in
                api.query!(state, index, &cop, ins.baseAddress, Int32(ins.count), outs.baseAddress, Int32(outs.count),
                           &reason, reason.count - 1)
            }
        }
        let text = PluginLibrary.text(reason, or: "")
        return (PluginABI.support(raw, reason: text), text)
    }

    /// Builds the `polychip_tensor` arrays (with C strings for the operand names, alive for the
    /// call) and runs `body` with them.
    static func withTensors<R>(_ op: Op, _ inputs: [(TensorDesc, OpaquePointer?, Int)], _ outputs: [(TensorDesc, OpaquePointer?, Int)],
                               _ body: (UnsafeBufferPointer<polychip_tensor>, UnsafeBufferPointer<polychip_tensor>) throws -> R) rethrows -> R {
        let names = op.inputNames + op.outputNames
        let cNames = names.map { strdup($0) }
        defer { for p in cNames { free(p) } }
        let ins = inputs.enumerated().map { i, t in PluginABI.tensor(t.0, name: UnsafePointer(cNames[i]), buffer: t.1, byteOffset: t.2) }
        let outs = outputs.enumerated().map { i, t in
            PluginABI.tensor(t.0, name: UnsafePointer(cNames[min(names.count - 1, op.inputNames.count + i)]), buffer: t.1, byteOffset: t.2)
        }
        return try ins.withUnsafeBufferPointer { i in try outs.withUnsafeBufferPointer { o in try body(i, o) } }
    }

    // MARK: Memory

    public func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer {
        guard byteCount >= 0 else { throw PolychipError.invalidTensor(reason: "buffer of \(byteCount) bytes on \(id)") }
        var handle: OpaquePointer? = nil
        let (lib, idx, id) = (library, index, id)
        try library.call({ api, state, msg, cap in api.buffer_alloc!(state, idx, UInt64(max(1, byteCount)), &handle, msg, cap) },
                         failure: { lib.error($0, $1, call: "buffer_alloc", kernel: nil, device: id, requested: byteCount) })
        guard let handle else {
            throw PolychipError.backendFailure(backend: library.label, call: "buffer_alloc", code: 0, detail: "returned OK and no buffer")
        }
        return PluginBuffer(handle: handle, byteCount: byteCount, deviceID: id, library: library, index: index)
    }

    func pluginBuffer(_ buffer: any DeviceBuffer, _ offset: Int, _ count: Int) throws -> PluginBuffer {
        guard let b = buffer as? PluginBuffer, b.deviceID == id, b.library === library else {
            throw PolychipError.invalidTensor(reason: "buffer of \(buffer.deviceID) used on \(id)")
        }
        guard offset >= 0, count >= 0, offset <= b.byteCount, count <= b.byteCount - offset else {
            throw PolychipError.invalidTensor(reason: "\(count) bytes at offset \(offset) exceed a buffer of \(b.byteCount) bytes on \(id)")
        }
        return b
    }

    public func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        let b = try pluginBuffer(buffer, offset, source.count)
        guard source.count > 0, let base = source.baseAddress else { return }
        let (lib, idx, id) = (library, index, id)
        try library.call({ api, state, msg, cap in api.buffer_write!(state, idx, b.handle, UInt64(offset), base, UInt64(source.count), msg, cap) },
                         failure: { lib.error($0, $1, call: "buffer_write", kernel: nil, device: id) })
    }

    public func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        let b = try pluginBuffer(buffer, offset, destination.count)
        guard destination.count > 0, let base = destination.baseAddress else { return }
        let (lib, idx, id) = (library, index, id)
        try library.call({ api, state, msg, cap in api.buffer_read!(state, idx, b.handle, UInt64(offset), base, UInt64(destination.count), msg, cap) },
                         failure: { lib.error($0, $1, call: "buffer_read", kernel: nil, device: id) })
    }

    // MARK: Execution

    public func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let op = call.op, kernel = op.kind.name
        func operand(_ t: Tensor) throws -> (TensorDesc, OpaquePointer?, Int) {
            let buffer = try t.requireBuffer(on: self)
            return (t.desc, try pluginBuffer(buffer, t.byteOffset, try t.desc.checkedByteCount()).handle, t.byteOffset)
        }
        let ins = try inputs.map(operand), outs = try outputs.map(operand)
        guard (inputs + outputs).allSatisfy({ $0.desc.rank <= Int(POLYCHIP_MAX_RANK) }) else {
            throw PolychipError.unsupported(kernel: kernel, device: id, reason: "more than \(POLYCHIP_MAX_RANK) dimensions")
        }
        var cop = PluginABI.op(op, inputs: inputs.map(\.desc))
        var deviceSeconds = -1.0
        let (lib, idx, id) = (library, index, id)
        let start = Queue.wallClock()
        try Self.withTensors(op, ins, outs) { i, o in
            try library.call({ api, state, msg, cap in
                api.execute!(state, idx, &cop, i.baseAddress, Int32(i.count), o.baseAddress, Int32(o.count), &deviceSeconds, msg, cap)
            }, failure: { lib.error($0, $1, call: "execute", kernel: kernel, device: id) })
        }
        try library.call({ api, state, msg, cap in api.synchronize!(state, idx, msg, cap) },
                         failure: { lib.error($0, $1, call: "synchronize", kernel: kernel, device: id) })
        let wall = Queue.wallClock() - start
        return .measured(seconds: deviceSeconds.isFinite && deviceSeconds >= 0 ? deviceSeconds : wall)
    }
}
