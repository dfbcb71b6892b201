// TimeModel.swift — modeled kernel times for a simulated device.
//
// Pure and deterministic: the same profile and the same query always give the same time.
// Nothing here touches a clock, a random generator or shared state.
//
// ## Kernels
//
//     total   = launch + max(compute, memory)
//     launch  = unit.launchOverhead                          (msmodeling static per-op cost)
//     compute = W / (R · e_c(W) · k_c),  W = flops · padding  (0 when flops = 0)
//             = (W + h_c) / (R · max_c · k_c)                 (same thing, since e_c is a saturation curve)
//     memory  = B' / (BW · e_m(B) · k_m),  B = bytes          (0 when bytes = 0)
//             = (B' + h_m·B'/B) / (BW · max_m · k_m)
//     B'      = B                                             (no memory.readBandwidth, or writeBytes unknown)
//             = (B − W_b)·BW/BW_r + W_b·(2 − BW/BW_r)         (read bytes at BW_r; a written byte
//                                                              costs what a copy leaves after its read)
//     k_c,k_m = kernelEfficiency[class].compute / .memory    (1 when absent; class = the query's kernelClass)
//     e(w)    = max · w / (w + h)                             (h = halfSaturation; h = 0 → constant max)
//     padding = Σ batch·⌈m/tm⌉tm·⌈n/tn⌉tn·⌈k/tk⌉tk / Σ batch·m·n·k      (GEMM / grouped GEMM)
//             = rows·⌈len/tn⌉tn / (rows·len)                  (row-wise vector kernels; rows padded to tm)
//     R       = the unit's peak rate for the dtype, or for the dtype the profile's
//               missingDtypePolicy upcasts it to (the tile is the effective dtype's tile)
//     bound   = launch if launch ≥ max(compute, memory), else compute if compute ≥ memory, else memory
//
//
// Collectives are in CollectiveModel.swift, the link-contention engine in FabricContention.swift.

import Foundation
import PolychipCore

// MARK: - Kernel query and result

/// The time model's GEMM shape is the kernel catalog's (`Cost.gemms`): one type, so a
/// catalog cost feeds the model without a copy. Kept under this module's name for callers
/// that spell it `PolychipSimulated.GemmShape`.
public typealias GemmShape = PolychipCore.GemmShape

/// The shape information the model uses for tile padding.
public enum KernelShape: Sendable, Hashable {
    /// One (batched) GEMM; m, n, k are padded to the unit's tile.
    case gemm(GemmShape)
    /// A grouped GEMM (one product per expert segment); every segment is padded separately.
    case groupedGemm([GemmShape])
    /// A row-wise vector kernel over `count` rows of `length` elements; `length` is padded to the
    /// tile's `n` (vector width) and `count` to its `m`.
    case rows(count: Int, length: Int)
}

/// A kernel for the time model: which unit runs it, in which dtype, and its cost
/// (FLOPs and minimum bytes moved, from the kernel catalog's cost model).
public struct KernelCostQuery: Sendable, Hashable {
    /// Kernel name, for error messages and records.
    public var name: String
    /// The unit that executes the kernel (matrix for GEMM-like, vector for the rest).
    public var unit: ComputeUnitKind
    /// The dtype the kernel computes in (emulated per the profile if the unit lacks it).
    public var dtype: ProfileDType
    /// Floating-point (or integer) operations, unpadded; ≥ 0.
    public var flops: Double
    /// Minimum bytes moved to and from device memory; ≥ 0.
    public var bytes: Double
    /// Shape for tile padding; `nil` means no padding.
    public var shape: KernelShape?
    /// The kernel's class, whose `kernelEfficiency` entry (if the profile has one) scales the
    /// compute and memory times; `nil` means efficiency 1.
    public var kernelClass: KernelClass?
    /// Of `bytes`, those written (the outputs); the rest are read. Used only with a profile's
    /// `memory.readBandwidth`; `nil` prices every byte at `memory.bandwidth`.
    public var writeBytes: Double?

    /// Creates a query.
    public init(name: String = "kernel", unit: ComputeUnitKind, dtype: ProfileDType, flops: Double, bytes: Double, shape: KernelShape? = nil,
                kernelClass: KernelClass? = nil, writeBytes: Double? = nil) {
        self.name = name
        self.unit = unit
        self.dtype = dtype
        self.flops = flops
        self.bytes = bytes
        self.shape = shape
        self.kernelClass = kernelClass
        self.writeBytes = writeBytes
    }

    /// A GEMM `[m,k]·[k,n]` (× batch) on the matrix unit: flops = 2·batch·m·n·k,
    /// bytes = batch·(m·k + k·n + m·n)·elementBytes unless `bytes` is given.
    public static func gemm(m: Int, n: Int, k: Int, batch: Int = 1, dtype: ProfileDType, bytes: Double? = nil, name: String = "matmul") -> KernelCostQuery {
        let b = Double(batch), dm = Double(m), dn = Double(n), dk = Double(k)
        let flops = 2 * b * dm * dn * dk
        let bytesMoved = bytes ?? b * (dm * dk + dk * dn + dm * dn) * Double(dtype.bitWidth) / 8
        return KernelCostQuery(name: name, unit: .matrix, dtype: dtype, flops: flops, bytes: bytesMoved,
                               shape: .gemm(GemmShape(m: m, n: n, k: k, batch: batch)))
    }
}

extension KernelCostQuery {
    /// The time model's question for a validated catalog call: its cost, the class and unit
    /// the kernel's descriptor gives, the GEMM shapes (tile padding) or rows, and the outputs
    /// as the written bytes. The one pricing path of `SimulatedDevice` and the model simulator;
    /// `count` repeats the call (per-sequence kernels), `dtype` and `bytes` override the
    /// arithmetic dtype and the traffic (int8-activation GEMMs), and then the written bytes are
    /// left to the read bandwidth as before.
    public init(_ call: ValidatedCall, count: Int = 1, dtype: ProfileDType? = nil, bytes: Double? = nil) {
        let cost = call.cost, inputs = call.inputs, c = Double(count)
        let shape: KernelShape?
        if cost.unit == .matrix, !cost.gemms.isEmpty {
            let g = cost.gemms.map { GemmShape(m: $0.m, n: $0.n, k: $0.k, batch: $0.batch * count) }
            shape = g.count == 1 ? .gemm(g[0]) : .groupedGemm(g)
        } else if let last = inputs.first?.shape.last {
            shape = .rows(count: max(1, (inputs.first?.elementCount ?? 1) / max(1, last)) * count, length: last)
        } else {
            shape = nil
        }
        let plain = count == 1 && dtype == nil && bytes == nil
        let written = call.outputs.reduce(0.0) { $0 + Double($1.byteCount) }
        self.init(name: call.kind.name, unit: cost.unit == .matrix ? .matrix : .vector, dtype: dtype ?? ProfileDType(cost.dtype) ?? .f32,
                  flops: cost.flops * c, bytes: (bytes ?? cost.bytes) * c, shape: shape, kernelClass: call.kind.descriptor.timeClass,
                  writeBytes: plain ? min(written, cost.bytes) : nil)
    }
}

/// A kernel's modeled time and its breakdown. All times in seconds.
public struct ModeledTime: Sendable, Hashable {
    /// What dominates the kernel's time.
    public enum Bound: String, Sendable, Hashable, Codable, CaseIterable {
        /// max(compute, memory) is compute and exceeds the launch overhead.
        case compute
        /// max(compute, memory) is memory and exceeds the launch overhead.
        case memory
        /// The launch overhead is at least max(compute, memory).
        case launch
    }

    /// Launch overhead of the unit.
    public var launch: Double
    /// Compute time (padded FLOPs at rate × efficiency).
    public var compute: Double
    /// Memory time (bytes at bandwidth × efficiency).
    public var memory: Double
    /// `launch + max(compute, memory)`.
    public var total: Double
    /// The dominant term.
    public var bound: Bound
    /// The unit that ran the kernel.
    public var unit: ComputeUnitKind
    /// The dtype asked for.
    public var requestedDtype: ProfileDType
    /// The dtype the unit computed in (differs when emulated).
    public var effectiveDtype: ProfileDType
    /// FLOPs after tile padding.
    public var paddedFlops: Double
    /// paddedFlops / flops (1 without a shape).
    public var paddingFactor: Double
    /// Peak rate used, op/s (0 when flops = 0).
    public var rate: Double
    /// Compute efficiency e_c(paddedFlops) used (0 when flops = 0).
    public var computeEfficiency: Double
    /// Memory efficiency e_m(bytes) used (0 when bytes = 0).
    public var memoryEfficiency: Double

    /// Whether the dtype was emulated through an upcast.
    public var emulated: Bool { effectiveDtype != requestedDtype }
}

/// Why a kernel cannot be modeled.
public enum TimeModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A query field is out of range (negative, NaN, infinite, a negative dimension).
    case invalidQuery(kernel: String, field: String, value: String, expected: String)
    /// The unit lacks the dtype and the profile's policy rejects it.
    case unsupportedDtype(device: String, unit: ComputeUnitKind, dtype: ProfileDType, reason: String)

    /// A one-line message.
    public var description: String {
        switch self {
        case let .invalidQuery(kernel, field, value, expected):
            return "\(kernel): \(field) = \(value): expected \(expected)"
        case let .unsupportedDtype(device, unit, dtype, reason):
            return "\(device): \(dtype) unsupported on the \(unit) unit: \(reason)"
        }
    }
}

// MARK: - The model

/// Modeled times for kernels and collectives on one device profile. A value type holding
/// only the profile: pure, deterministic and `Sendable`.
public struct TimeModel: Sendable {
    /// The profile the model reads.
    public let profile: DeviceProfile

    /// The largest collective group the model accepts (direct algorithms are O(p²) transfers).
    public static let maxCollectiveDevices = 4096

    /// The largest global device index the model accepts (2^40).
    public static let maxDeviceIndex = 1 << 40

    /// Creates a model for `profile` (assumed validated, as every loader does).
    public init(profile: DeviceProfile) { self.profile = profile }

    // MARK: Kernels

    /// `max · w / (w + halfSaturation)` of the unit's compute curve (see `EfficiencyCurve`).
    public func computeEfficiency(unit: ComputeUnitKind, flops: Double) -> Double {
        profile.compute.unit(unit).efficiency.efficiency(work: flops)
    }

    /// `max · b / (b + halfSaturation)` of the memory curve.
    public func memoryEfficiency(bytes: Double) -> Double {
        profile.memory.efficiency.efficiency(work: bytes)
    }

    /// Padded work / actual work for `shape` on `tile` (1 when `shape` is nil or its volume is 0).
    ///
    /// GEMM: `Σ batch·⌈m/tm⌉tm·⌈n/tn⌉tn·⌈k/tk⌉tk / Σ batch·m·n·k`;
    /// rows: `⌈count/tm⌉tm·⌈length/tn⌉tn / (count·length)`.
    public static func paddingFactor(_ shape: KernelShape?, tile: DeviceProfile.Tile) -> Double {
        func pad(_ x: Int, _ t: Int) -> Double {
            let tt = Double(Swift.max(1, t))
            return (Double(x) / tt).rounded(.up) * tt
        }
        var padded = 0.0, actual = 0.0
        switch shape {
        case .none:
            return 1
        case .gemm(let g):
            padded = Double(g.batch) * pad(g.m, tile.m) * pad(g.n, tile.n) * pad(g.k, tile.k)
            actual = Double(g.batch) * Double(g.m) * Double(g.n) * Double(g.k)
        case .groupedGemm(let gs):
            for g in gs {
                padded += Double(g.batch) * pad(g.m, tile.m) * pad(g.n, tile.n) * pad(g.k, tile.k)
                actual += Double(g.batch) * Double(g.m) * Double(g.n) * Double(g.k)
            }
        case let .rows(count, length):
            padded = pad(count, tile.m) * pad(length, tile.n)
            actual = Double(count) * Double(length)
        }
        guard actual > 0, padded.isFinite else { return 1 }
        return padded / actual
    }

    /// The modeled time of one kernel (formulas at the top of this file).
    /// - Throws: `TimeModelError.invalidQuery` for negative/NaN/infinite figures or negative
    ///   dimensions; `.unsupportedDtype` when flops > 0 and the policy rejects the dtype.
    public func kernelTime(_ q: KernelCostQuery) throws(TimeModelError) -> ModeledTime {
        try Self.validateShape(q)
        guard q.flops.isFinite, q.flops >= 0 else {
            throw .invalidQuery(kernel: q.name, field: "flops", value: "\(q.flops)", expected: "a finite number ≥ 0")
        }
        guard q.bytes.isFinite, q.bytes >= 0 else {
            throw .invalidQuery(kernel: q.name, field: "bytes", value: "\(q.bytes)", expected: "a finite number ≥ 0")
        }
        if let w = q.writeBytes, !(w.isFinite && w >= 0 && w <= q.bytes) {
            throw .invalidQuery(kernel: q.name, field: "writeBytes", value: "\(w)", expected: "a finite number in [0, bytes = \(q.bytes)]")
        }
        let classEfficiency = q.kernelClass.flatMap { profile.efficiency(of: $0) }
        let unit = profile.compute.unit(q.unit)
        var effective = q.dtype
        var rate = 0.0, paddedFlops = 0.0, factor = 1.0, cEff = 0.0, compute = 0.0
        if q.flops > 0 {
            let resolution: DTypeResolution
            switch profile.dtypeSupport(unit: q.unit, dtype: q.dtype) {
            case .native(let r), .emulated(let r): resolution = r
            case .rejected(let reason): throw .unsupportedDtype(device: profile.name, unit: q.unit, dtype: q.dtype, reason: reason)
            }
            effective = resolution.effective
            rate = resolution.rate
            factor = Self.paddingFactor(q.shape, tile: unit.tile(for: effective))
            paddedFlops = q.flops * factor
            // The ramp-up measures how much of the device a kernel keeps busy. A kernel with
            // few FLOPs per byte (a GEMV) fills the device through its memory traffic, so its
            // work on this curve is the larger of its FLOPs and its bytes at the unit's
            // FLOP-per-byte balance point.
            let balance = profile.memory.bandwidth.value > 0 ? rate / profile.memory.bandwidth.value : 0
            let rampWork = Swift.max(paddedFlops, q.bytes * balance)
            cEff = unit.efficiency.efficiency(work: rampWork) * (classEfficiency?.compute?.value ?? 1)
            compute = paddedFlops / (rate * cEff)
        }
        var mEff = 0.0, memory = 0.0
        if q.bytes > 0 {
            mEff = profile.memory.efficiency.efficiency(work: q.bytes) * (classEfficiency?.memory?.value ?? 1)
            memory = Self.copyEquivalentBytes(q, memory: profile.memory) / (profile.memory.bandwidth.value * mEff)
        }
        let launch = unit.launchOverhead.value
        let busy = Swift.max(compute, memory)
        let bound: ModeledTime.Bound = launch >= busy ? .launch : (compute >= memory ? .compute : .memory)
        return ModeledTime(launch: launch, compute: compute, memory: memory, total: launch + busy, bound: bound,
                           unit: q.unit, requestedDtype: q.dtype, effectiveDtype: effective, paddedFlops: paddedFlops,
                           paddingFactor: factor, rate: rate, computeEfficiency: cEff, memoryEfficiency: mEff)
    }

    /// The bytes of a copy stream that take as long as the query's traffic: `bytes` without a
    /// `readBandwidth` or without `writeBytes`; else reads at `readBandwidth` and writes at
    /// `2 / bandwidth − 1 / readBandwidth` each, expressed in bytes at `bandwidth`.
    static func copyEquivalentBytes(_ q: KernelCostQuery, memory: DeviceProfile.Memory) -> Double {
        guard let rb = memory.readBandwidth?.value, rb > 0, let w = q.writeBytes else { return q.bytes }
        let ratio = memory.bandwidth.value / rb
        return (q.bytes - w) * ratio + w * Swift.max(0, 2 - ratio)
    }

    private static func validateShape(_ q: KernelCostQuery) throws(TimeModelError) {
        func check(_ g: GemmShape, _ label: String) throws(TimeModelError) {
            for (n, v) in [("m", g.m), ("n", g.n), ("k", g.k), ("batch", g.batch)] where v < 0 {
                throw .invalidQuery(kernel: q.name, field: "\(label).\(n)", value: "\(v)", expected: "a dimension ≥ 0")
            }
        }
        switch q.shape {
        case .none: break
        case .gemm(let g): try check(g, "shape")
        case .groupedGemm(let gs):
            for (i, g) in gs.enumerated() { try check(g, "shape[\(i)]") }
        case let .rows(count, length):
            if count < 0 { throw .invalidQuery(kernel: q.name, field: "shape.count", value: "\(count)", expected: "a dimension ≥ 0") }
            if length < 0 { throw .invalidQuery(kernel: q.name, field: "shape.length", value: "\(length)", expected: "a dimension ≥ 0") }
        }
    }
}
