import CPolychipKernels
import Foundation
import PolychipCore

/// How a `cpu` device runs: thread count, pinning, memory placement and ISA path.
///
/// Defaults come from the environment: `POLYCHIP_CPU_THREADS` (a count in 1…4096),
/// `POLYCHIP_CPU_BIND` (`0` turns pinning off), `POLYCHIP_CPU_NUMA` (`0` turns libnuma
/// placement off), `POLYCHIP_CPU_ISA` (`scalar`, `avx2`, `avx512` or `neon`: force that
/// path) and `POLYCHIP_CPU_TILING` (block-size overrides, see
/// ``GemmBlocking/overridden(by:source:)``). On the command line the same options are a
/// device profile: `cpu:threads=1`, `cpu:threads=2,bind=0`, `cpu:isa=avx2`,
/// `cpu:tiles=small`. `POLYCHIP_CPU_GEMM_TILE` / `tile=14x32` force one of the path's GEMM
/// microkernel shapes (for tuning and tests).
public struct CPUDeviceOptions: Sendable, Hashable, Codable {
    /// Worker threads; `nil` means one per core.
    public var threads: Int?
    /// Pin each worker to its core.
    public var bind: Bool
    /// Place large buffers with libnuma when it is available.
    public var numa: Bool
    /// The ISA path to run; `nil` lets the backend choose by measurement
    /// (``CPUKernelPlan``). Opening a device with a path this CPU lacks throws.
    public var isa: CPUISA?
    /// The GEMM microkernel shape, `MRxNR` (`14x32`); `nil` lets the backend choose among
    /// the path's shapes. Opening a device with a shape its path lacks throws.
    public var tile: String?
    /// Block-size overrides (`small` or `key=value,…`); `nil` keeps the derived blocking.
    public var tiling: String?

    /// Creates options.
    public init(threads: Int? = nil, bind: Bool = true, numa: Bool = true, isa: CPUISA? = nil, tile: String? = nil, tiling: String? = nil) {
        self.threads = threads; self.bind = bind; self.numa = numa; self.isa = isa; self.tile = tile; self.tiling = tiling
    }

    /// `POLYCHIP_CPU_ISA` as a path (`nil` when unset or empty).
    /// - Throws: ``PolychipError/unknownDevice(selector:reason:)`` for a name that is no path.
    public static func isaFromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> CPUISA? {
        guard let v = env["POLYCHIP_CPU_ISA"]?.trimmingCharacters(in: .whitespaces).lowercased(), !v.isEmpty else { return nil }
        guard let isa = CPUISA(rawValue: v) else {
            throw PolychipError.unknownDevice(selector: "POLYCHIP_CPU_ISA=\(Quoted(v))",
                                              reason: "unknown ISA path (\(CPUISA.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return isa
    }

    /// Options from `POLYCHIP_CPU_THREADS`, `POLYCHIP_CPU_BIND`, `POLYCHIP_CPU_NUMA`,
    /// `POLYCHIP_CPU_ISA`, `POLYCHIP_CPU_GEMM_TILE` and `POLYCHIP_CPU_TILING`.
    /// Unset or empty variables keep the defaults.
    /// - Throws: `PolychipError.unknownDevice` naming the variable when a value is not one
    ///   the variable takes (threads: a count in 1…``CPUThreadPool/maxThreads``; bind and
    ///   numa: 0/1, true/false, yes/no, on/off; isa: a path name) — a typo never silently
    ///   falls back.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> CPUDeviceOptions {
        var o = CPUDeviceOptions()
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        if let t = value("POLYCHIP_CPU_THREADS") { o.threads = try parseThreads(t, origin: "POLYCHIP_CPU_THREADS") }
        if let b = value("POLYCHIP_CPU_BIND") { o.bind = try parseSwitch(b, origin: "POLYCHIP_CPU_BIND") }
        if let n = value("POLYCHIP_CPU_NUMA") { o.numa = try parseSwitch(n, origin: "POLYCHIP_CPU_NUMA") }
        if let t = value("POLYCHIP_CPU_TILING") { o.tiling = t }
        o.isa = try isaFromEnvironment(env)
        if let t = value("POLYCHIP_CPU_GEMM_TILE") { o.tile = t.lowercased() }
        return o
    }

    static func parseThreads(_ text: String, origin: String) throws -> Int {
        guard let t = Int(text), t >= 1, t <= CPUThreadPool.maxThreads else {
            throw PolychipError.unknownDevice(selector: "cpu", reason: "\(origin) must be a thread count in 1…\(CPUThreadPool.maxThreads), got \(Quoted(text))")
        }
        return t
    }

    static func parseSwitch(_ text: String, origin: String) throws -> Bool {
        guard let v = ["1": true, "true": true, "yes": true, "on": true, "0": false, "false": false, "no": false, "off": false][text.lowercased()] else {
            throw PolychipError.unknownDevice(selector: "cpu", reason: "\(origin) must be 0 or 1, got \(Quoted(text))")
        }
        return v
    }

    /// Parses a device profile `threads=N[,bind=0|1][,numa=0|1][,isa=PATH][,tile=MRxNR][,tiles=small]` on top of `base`.
    public init(profile: String, base: CPUDeviceOptions) throws {
        self = base
        for part in profile.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard kv.count == 2 else {
                throw PolychipError.unknownDevice(selector: "cpu:\(Quoted(profile))", reason: "expected key=value options (threads=N, bind=0|1, numa=0|1, isa=PATH, tile=MRxNR, tiles=small)")
            }
            switch kv[0] {
            case "threads":
                threads = try Self.parseThreads(kv[1], origin: "threads")
            case "tiles":
                guard kv[1] == "small" else {
                    throw PolychipError.unknownDevice(selector: "cpu", reason: "tiles must be 'small' (other sizes: POLYCHIP_CPU_TILING), got \(Quoted(kv[1]))")
                }
                tiling = "small"
            case "bind", "numa":
                let v = try Self.parseSwitch(kv[1], origin: kv[0])
                if kv[0] == "bind" { bind = v } else { numa = v }
            case "isa":
                guard let v = CPUISA(rawValue: kv[1]) else {
                    throw PolychipError.unknownDevice(selector: "cpu",
                                                      reason: "isa must be one of \(CPUISA.allCases.map(\.rawValue).joined(separator: ", ")), got \(Quoted(kv[1]))")
                }
                isa = v
            case "tile":
                tile = kv[1]
            default:
                throw PolychipError.unknownDevice(selector: "cpu", reason: "unknown option \(Quoted(kv[0])) (threads, bind, numa, isa, tile, tiles)")
            }
        }
    }

    /// The profile text for these options relative to the defaults (`""` when equal).
    var profileText: String {
        var parts: [String] = []
        if let threads { parts.append("threads=\(threads)") }
        if !bind { parts.append("bind=0") }
        if !numa { parts.append("numa=0") }
        if let isa { parts.append("isa=\(isa.rawValue)") }
        if let tile { parts.append("tile=\(tile)") }
        if let tiling { parts.append(tiling == "small" ? "tiles=small" : "tiling=\(tiling)") }
        return parts.joined(separator: ",")
    }
}

/// The fast CPU backend: one device, `cpu:0` (or `cpu:threads=N:0` with options).
public struct CPUBackend: Backend {
    private static let cache = DeviceCache()

    /// Creates the backend.
    public init() {}

    public var name: String { "cpu" }

    public var status: String {
        let t = HostTopology.current
        let isa = (try? CPUDeviceOptions.isaFromEnvironment())?.rawValue ?? "isa by measurement"
        return "1 device (\(t.cores.count) cores, \(isa), \(t.source); paths here: \(CPUISA.supported.map(\.rawValue).joined(separator: ", ")))"
    }

    public func devices() throws -> [any Device] { [try device(profile: nil, index: nil)] }

    public func device(profile: String?, index: Int?) throws -> any Device {
        guard (index ?? 0) == 0 else {
            throw PolychipError.unknownDevice(selector: "cpu:\(index!)", reason: "the cpu backend has one device, cpu:0 (the whole host)")
        }
        let base = try CPUDeviceOptions.fromEnvironment()
        let options = try profile.map { try CPUDeviceOptions(profile: $0, base: base) } ?? base
        let id = CPUDevice.deviceID(for: options, defaults: base)
        return try Self.cache.device(id) { try CPUDevice(options: options, id: id) }
    }

    /// The `cpu:0` device (options from the environment) as an arithmetic engine for other
    /// host-memory backends: call ``CPUDevice/run(_:hostInputs:hostOutputs:)`` on it. The
    /// same object the registry returns for `cpu`, so its threads are shared, not duplicated.
    public static func engine() throws -> CPUDevice {
        guard let d = try CPUBackend().device(profile: nil, index: nil) as? CPUDevice else {
            throw PolychipError.backendFailure(backend: "cpu", call: "engine", code: -1, detail: "cpu:0 is not a CPUDevice")
        }
        return d
    }
}

/// The host CPU as a Polychip device: a pinned worker pool, NUMA-placed buffers and
/// SIMD kernels chosen at run time (`DeviceInfo.details["isa"]`).
public final class CPUDevice: Device {
    public let id: String
    public let info: DeviceInfo
    public var usesHostMemory: Bool { true }
    /// The topology the device was planned from.
    public let topology: HostTopology
    /// The options it runs with.
    public let options: CPUDeviceOptions
    /// Cache and register blocking of the GEMM family's table (with any tiling overrides
    /// applied); ``blocking(for:)`` gives another family's.
    public let blocking: GemmBlocking
    /// The blocking of every table the plan uses.
    let blockings: [KernelTable: GemmBlocking]
    /// The kernels this device runs and why (ISA path, GEMM shape, bf16 arithmetic).
    public let plan: CPUKernelPlan
    /// Where large buffers are placed.
    public let placement: MemoryPlacement
    let pool: CPUThreadPool
    private let allocator: NUMAAllocator
    private let shared = Locked(Workspace())

    static func deviceID(for options: CPUDeviceOptions, defaults: CPUDeviceOptions) -> String {
        options == defaults ? "cpu:0" : (options.profileText.isEmpty ? "cpu:0" : "cpu:\(options.profileText):0")
    }

    /// Opens a CPU device with explicit options (the registry uses `CPUBackend`).
    /// - Throws: `PolychipError.unknownDevice` for a bad `POLYCHIP_CPU_*` variable, a thread
    ///   count outside 1…``CPUThreadPool/maxThreads`` or an `options.isa` / `options.tile`
    ///   this CPU cannot run; `PolychipError.invalidArgument` for tiling overrides it cannot
    ///   apply; `PolychipError.resourceExhausted` when the worker threads cannot be created.
    public convenience init(options: CPUDeviceOptions) throws {
        let base = try CPUDeviceOptions.fromEnvironment()
        try self.init(options: options, id: CPUDevice.deviceID(for: options, defaults: base))
    }

    init(options: CPUDeviceOptions, id: String) throws {
        let envISA = try? CPUDeviceOptions.isaFromEnvironment()
        let selector = id != "cpu:0" ? id
            : options.isa != nil && options.isa == envISA ? "POLYCHIP_CPU_ISA=\(options.isa!.rawValue)"
            : options.tile.map { "POLYCHIP_CPU_GEMM_TILE=\($0)" } ?? id
        plan = try CPUKernelPlan.make(isa: options.isa, tile: options.tile, selector: selector)
        self.id = id
        self.options = options
        let topo = HostTopology.current
        topology = topo
        if let t = options.threads, t < 1 || t > CPUThreadPool.maxThreads {
            throw PolychipError.unknownDevice(selector: id, reason: "threads must be a count in 1…\(CPUThreadPool.maxThreads), got \(t)")
        }
        let threads = min(max(1, options.threads ?? topo.cores.count), CPUThreadPool.maxThreads)
        // Each table's blocking (its own MR × NR), with the tiling overrides applied to every
        // one; checked before any thread exists.
        let coresUsed = min(threads, max(1, topo.cores.count))
        blockings = try Dictionary(uniqueKeysWithValues: plan.tables.map { table in
            let derived = GemmBlocking(topology: topo, cores: coresUsed, table: table)
            return (table, try options.tiling.map { try derived.overridden(by: $0, source: "POLYCHIP_CPU_TILING") } ?? derived)
        })
        blocking = blockings[plan.choices[.gemm]!.table]!
        let binding: [[Int]]? = options.bind ? topo.cores.map(\.processingUnits).filter { !$0.isEmpty } : nil
        pool = try CPUThreadPool(threads: threads, bindTo: (binding?.isEmpty ?? true) ? nil : binding)
        let usedCores = (0..<threads).map { topo.cores.isEmpty ? 0 : topo.cores[$0 % topo.cores.count].numaNode }
        allocator = NUMAAllocator(workerNodes: usedCores, numaDisabled: !options.numa)
        placement = allocator.placement
        let isa = plan.isa.rawValue
        // Measured, not estimated from a clock and a lane count: a 512-bit FMA may be one
        // operation or two 256-bit halves.
        var peak = ["f32": Double(coresUsed) * plan.fmaGflopsPerCore * 1e9]
        if plan.bf16Pairs { peak["bf16"] = 2 * peak["f32"]! }
        let caches = topo.caches.map { "L\($0.level) \($0.sizeBytes >> 10) KiB ×\($0.instances)" }.joined(separator: ", ")
        info = DeviceInfo(
            name: topo.cpuModel == "unknown" ? "Host CPU" : topo.cpuModel, vendor: topo.cpuVendor, kind: .cpu,
            memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), computeUnits: threads,
            dtypes: DType.allCases, peakFlops: peak, memoryBandwidth: nil,
            details: [
                "isa": isa,
                "gemm": "\(plan.choices[.gemm]!.gemmShape) — \(plan.choices[.gemm]!.reason)",
                "attention": "\(plan.choices[.attention]!.gemmShape) — \(plan.choices[.attention]!.reason)",
                "moe": "\(plan.choices[.moe]!.gemmShape) — \(plan.choices[.moe]!.reason)",
                "bf16Gemm": "\(plan.choices[.bf16Gemm]!.gemmShape): \(plan.bf16Gemm)",
                "fmaRate": plan.fmaNote,
                "int4Weights": pck_int4_denormals_fast() != 0 ? "read as denormal floats" : "converted to float",
                "threads": "\(threads)",
                "binding": pool.pinned ? "pinned, one worker per core (hwloc)" : (options.bind ? "unpinned (binding failed)" : "unpinned"),
                "numa": placement.rawValue,
                "numaNodes": "\(topo.numaNodes.count)",
                "packages": "\(topo.packages)",
                "cores": "\(topo.cores.count)",
                "pus": "\(topo.processingUnitCount)",
                "caches": caches,
                "topology": topo.source,
                "gemmBlocking": "MR \(blocking.mr) NR \(blocking.nr) KC \(blocking.kc) MC \(blocking.mc) NC \(blocking.nc)"
                    + (options.tiling.map { " (tiling overrides: \($0))" } ?? ""),
                "peakFlops": String(format: "measured: %d cores × %.1f GFLOP/s (12 FMA chains at the path's width)", coresUsed, plan.fmaGflopsPerCore),
            ])
    }

    deinit { pool.shutdown() }

    /// Every catalog kernel runs natively in every float dtype.
    public func supports(_ kernel: OpKind, dtype: DType) -> Support {
        if kernel == .topK { return dtype == .f32 ? .native : .unsupported("top-k takes f32 scores") }
        return dtype.isFloat ? .native : .unsupported("\(dtype) is not a float activation dtype")
    }

    public func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer {
        guard byteCount >= 0 else { throw PolychipError.invalidTensor(reason: "negative allocation of \(byteCount) bytes") }
        guard byteCount <= info.memoryBytes, let b = allocator.allocate(byteCount: byteCount, deviceID: id, pool: pool) else {
            throw PolychipError.outOfMemory(device: id, requested: byteCount, available: info.memoryBytes)
        }
        return b
    }

    public func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        try HostMemory.write(source, to: buffer, at: offset, device: id)
    }

    public func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        try HostMemory.read(from: buffer, at: offset, into: destination, device: id)
    }

    public func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let ins = try inputs.map { HostOperand(try $0.hostPointer(on: self), $0.desc) }
        let outs = try outputs.map { HostOperand(try $0.hostPointer(on: self), $0.desc) }
        let t0 = Queue.wallClock()
        try run(call, hostInputs: ins, hostOutputs: outs)
        return .measured(seconds: Queue.wallClock() - t0)
    }

    /// Runs one catalog kernel with this device's kernels directly on caller-owned host
    /// memory: the arithmetic engine other host-memory backends reuse (the simulated devices
    /// run their arithmetic through it).
    ///
    /// Inputs are only read. Outputs whose address is not aligned to their element size go
    /// through aligned temporaries that are copied back only on success. Descriptors are
    /// validated against `op` first; data-dependent errors (offsets, indices) throw the same
    /// typed errors as ``execute(_:inputs:outputs:)``.
    /// - Throws: ``PolychipError`` for a kernel/dtype this device does not run
    ///   (``supports(_:dtype:)``), mismatched descriptors or invalid data.
    public func run(_ op: Op, hostInputs: [HostOperand], hostOutputs: [HostOperand]) throws {
        try run(try op.validated(hostInputs.map(\.desc)), hostInputs: hostInputs, hostOutputs: hostOutputs)
    }

    /// ``run(_:hostInputs:hostOutputs:)`` of a call validated by the caller (a queue, or a
    /// simulated device that prices and computes the same call): the operands are checked
    /// against it, not validated again.
    public func run(_ call: ValidatedCall, hostInputs: [HostOperand], hostOutputs: [HostOperand]) throws {
        let op = call.op, inDescs = call.inputs
        try call.check(inputs: hostInputs.map(\.desc), outputs: hostOutputs.map(\.desc))
        if case .unsupported(let why) = supports(op.kind, dtype: op.primaryDType(inDescs)) {
            throw PolychipError.unsupported(kernel: op.kind.name, device: id, reason: why)
        }
        try shared.withLock { ws in
            try withOperands(hostInputs, hostOutputs) { ins, outs in
                let ctx = context(for: op, dtype: op.primaryDType(inDescs), shared: ws)
                try ctx.table.with { try CPUKernels.run(op, ctx, ins, outs) }
            }
        }
    }

    /// DeepSeek Sparse Attention's indexer fused with per-token top-k: the same scores as
    /// ``Op/lightningIndexer`` followed by ``Op/topK(k:)`` (bit for bit), but the `T × S`
    /// score matrix is never held: each token's top-k is kept while its score tiles stream by.
    ///
    /// - Parameters: `q [T, Hi, D]`, `k [S, D]`, `w [T, Hi]` (one float dtype); outputs
    ///   `indices: i32 [T, topK]` and `values: f32 [T, topK]`.
    public func lightningIndexerTopK(q: Tensor, k: Tensor, w: Tensor, topK: Int, indices: Tensor, values: Tensor) throws {
        let scores = try Op.lightningIndexer.validate([q.desc, k.desc, w.desc])
        let outs = try Op.topK(k: topK).validate(scores)
        guard outs == [indices.desc, values.desc] else {
            throw PolychipError.invalidTensor(reason: "lightning-indexer-top-k: outputs \([indices.desc, values.desc]) do not match \(outs)")
        }
        try shared.withLock { ws in
            let hostIns = try [q, k, w].map { HostOperand(try $0.hostPointer(on: self), $0.desc) }
            let hostOuts = try [indices, values].map { HostOperand(try $0.hostPointer(on: self), $0.desc) }
            try withOperands(hostIns, hostOuts) { ins, outs in
                let ctx = context(for: .lightningIndexer, dtype: q.desc.dtype, shared: ws, name: "lightning-indexer-top-k")
                ctx.table.with { CPUKernels.lightningIndexerTopK(ctx, ins[0], ins[1], ins[2], topK: topK, outs[0], outs[1]) }
            }
        }
    }

    /// The kernels (table and blocking) of `op`'s family for `dtype`.
    /// The blocking of the table that runs `family`'s kernels (tiling overrides applied).
    public func blocking(for family: CPUKernelFamily) -> GemmBlocking { blockings[plan.choices[family]!.table]! }

    private func context(for op: Op, dtype: DType, shared ws: Workspace, name: String? = nil) -> KernelContext {
        let table = plan.table(for: op, dtype: dtype)
        return KernelContext(pool: pool, blocking: blockings[table]!, table: table, shared: ws, kernel: name ?? op.kind.name)
    }

    /// Resolves operands; those whose address is not aligned to their element size go
    /// through aligned temporaries (outputs are copied back only on success).
    private func withOperands(_ inputs: [HostOperand], _ outputs: [HostOperand], _ body: ([Operand], [Operand]) throws -> Void) throws {
        var temps: [(UnsafeMutableRawPointer, Int)] = []
        defer { for t in temps { t.0.deallocate() } }
        func operand(_ t: HostOperand, copyIn: Bool) throws -> Operand {
            let p = t.address
            let align = max(1, t.desc.dtype.elementBytes)
            if Int(bitPattern: p) % align == 0 { return Operand(raw: p, desc: t.desc) }
            let n = try t.desc.checkedByteCount()
            let tmp = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 64)
            temps.append((tmp, n))
            if copyIn { tmp.copyMemory(from: p, byteCount: n) }
            return Operand(raw: tmp, desc: t.desc)
        }
        let ins = try inputs.map { try operand($0, copyIn: true) }
        let outs = try outputs.map { try operand($0, copyIn: false) }
        try body(ins, outs)
        for (t, o) in zip(outputs, outs) where t.address != o.raw {
            t.address.copyMemory(from: o.raw, byteCount: try t.desc.checkedByteCount())
        }
    }
}

/// A kernel operand in caller-owned host memory: the address of element 0 and its
/// descriptor. Used by ``CPUDevice/run(_:hostInputs:hostOutputs:)``; the caller keeps the
/// memory alive and unaliased for the call.
public struct HostOperand {
    /// Address of element 0.
    public var address: UnsafeMutableRawPointer
    /// Shape and dtype.
    public var desc: TensorDesc

    /// Wraps an address and a descriptor.
    public init(_ address: UnsafeMutableRawPointer, _ desc: TensorDesc) {
        self.address = address
        self.desc = desc
    }
}
