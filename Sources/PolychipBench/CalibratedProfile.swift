import Foundation
import PolychipCore
import PolychipSimulated

extension CalibrationResult {
    /// The calibrated figures as a device profile in the bundled schema, validated.
    ///
    /// Measured figures say `measured by polychip calibrate on DATE, COMMAND: how`; figures the
    /// micro-benchmarks cannot measure (host-link generation, interconnect of a single device,
    /// numerics) say `set by polychip calibrate on DATE, COMMAND: why`. Peaks are the fitted
    /// asymptotic rates, so every efficiency `max` is 1 and the fitted half-saturation work
    /// carries the size dependence.
    ///
    /// - Parameter name: the profile name (`sim:NAME`); letters, digits, `.`, `_`, `-`.
    /// - Throws: ``PolychipError/malformedFile(path:field:reason:)`` when the figures do not make
    ///   a valid profile (a measured rate of 0, an invalid name).
    public func profile(name: String) throws -> DeviceProfile {
        let measured = "measured by polychip calibrate on \(date), \(command)" + (clock == .cpu ? " (CPU time per worker thread)" : "")
        let set = "set by polychip calibrate on \(date), \(command)"
        func fig<V>(_ v: V, _ how: String, note: String? = nil) -> Sourced<V> { Sourced(v, source: "\(measured): \(how)", note: note) }
        func fixed<V>(_ v: V, _ why: String) -> Sourced<V> { Sourced(v, source: "\(set): \(why)") }
        let lanes = Self.vectorLanes(info)
        let laneSource = "\(set): the kernels vectorise along N in \(lanes)-wide SIMD registers (\(info.details["isa"] ?? info.kind.rawValue)); M and K are not padded (GEMV paths)"
        let tile = DeviceProfile.Tile(m: 1, n: lanes, k: 1, source: laneSource)
        func unit(_ label: String, _ fits: [String: SaturationFit], launch: Double, kernels: String) -> DeviceProfile.ComputeUnit {
            var peak: [String: Sourced<Double>] = [:]
            for (dt, f) in fits {
                peak[dt] = fig(f.rate, "asymptotic rate of \(kernels) in \(dt) (weighted least-squares fit of t = launch + (W + h)/R over \(f.samples) sizes, median fit error \(Self.percent(f.medianAbsError)))")
            }
            let first = fits["f32"] ?? fits.values.first
            let h = first?.halfSaturation ?? 0
            return DeviceProfile.ComputeUnit(
                name: label,
                cores: Sourced(max(1, info.computeUnits), source: "\(set): worker threads of \(device) (DeviceInfo.computeUnits)"),
                peak: peak, tile: tile,
                efficiency: DeviceProfile.EfficiencyCurve(
                    max: fixed(1.0, "the peaks are measured asymptotic rates, so the large-kernel efficiency is 1"),
                    halfSaturation: fig(h, "intercept of the \(fits["f32"] != nil ? "f32" : "first dtype's") \(kernels) fit (ramp-up work, FLOPs)")),
                launchOverhead: fig(launch, "median time of the smallest \(label.contains("GEMM") ? "matmul (8×8×8)" : "element-wise kernel (scale of 64 floats)")"))
        }
        let matrix = unit("GEMM microkernels (\(info.details["isa"] ?? "SIMD") FMA)", self.matrix, launch: matrixLaunch, kernels: "square matmul")
        let vector = unit("element-wise SIMD kernels", self.vector, launch: vectorLaunch, kernels: "silu/swiglu on cache-resident rows")
        let storage: [ProfileDType] = [.f32, .f16, .bf16, .int32, .int8, .int4].filter { d in
            switch d {
            case .f32, .f16, .bf16: return self.matrix[d.rawValue] != nil
            default: return true
            }
        }
        let memory = DeviceProfile.Memory(
            capacity: fixed(max(1, info.memoryBytes), "memory of \(device) as the device reports it (DeviceInfo.memoryBytes)"),
            bandwidth: fig(self.memory.rate, "asymptotic rate of streaming scale/add on f32 arrays past the caches (read + write bytes; fit over \(self.memory.samples) points, median fit error \(Self.percent(self.memory.medianAbsError)))"),
            readBandwidth: readBandwidth.map { rb in
                fig(rb, "copy bandwidth × (modeled time of INT4 GEMVs (int4-matmul M = 1) over weights past the caches at the copy bandwidth / their measured time less launch; geometric mean)",
                    note: rawReadBandwidth.flatMap { raw in raw < rb ? String(format: "measured %.3g B/s, raised to half the copy bandwidth (the schema's floor)", raw) : nil })
            },
            efficiency: DeviceProfile.EfficiencyCurve(
                max: fixed(1.0, "the bandwidth is a measured asymptotic rate, so the large-transfer efficiency is 1"),
                halfSaturation: fig(self.memory.halfSaturation, "intercept of the scale/add fit (ramp-up bytes; 0 where the plan fits the bandwidth through the origin, as for host CPUs: CalibrationPlan.memoryRamp)")),
            onChipBuffers: [])
        let host = info.kind == .cpu
        let hostLink = DeviceProfile.HostLink(
            pcieGeneration: fixed(host ? 1 : 4, host ? "placeholder: the host CPU has no host link (its memory is host memory); the schema needs a generation ≥ 1"
                                                  : "placeholder: the PCIe generation is not measurable from OpenCL; the bandwidth below is measured"),
            bandwidth: fig(hostLinkBandwidth, host ? "median host-to-device write (memcpy into a device buffer)" : "median host-to-device buffer write"))
        let numerics = DeviceProfile.Numerics(
            storageDtypes: fixed(storage, "the dtypes \(device) stores; float dtypes are those whose GEMMs were calibrated"),
            accumulator: DeviceProfile.Accumulators(
                matmul: fixed(.f32, "the backends accumulate float kernels in f32 (docs/kernels.md)"),
                attention: fixed(.f32, "the backends accumulate float kernels in f32 (docs/kernels.md)"),
                vector: fixed(.f32, "the backends accumulate float kernels in f32 (docs/kernels.md)")),
            missingDtypePolicy: [
                "int4": DeviceProfile.DtypePolicy(action: .emulate, via: .f32, source: "\(set): INT4 weights are dequantised in registers and multiplied in f32"),
                "int8": DeviceProfile.DtypePolicy(action: .emulate, via: .f32, source: "\(set): int8 data is widened to f32"),
                "f16": DeviceProfile.DtypePolicy(action: .emulate, via: .f32, source: "\(set): 16-bit floats are widened to f32"),
                "bf16": DeviceProfile.DtypePolicy(action: .emulate, via: .f32, source: "\(set): 16-bit floats are widened to f32"),
                "tf32": DeviceProfile.DtypePolicy(action: .reject, source: "\(set): no TF32 mode"),
                "fp8": DeviceProfile.DtypePolicy(action: .reject, source: "\(set): no FP8 kernels"),
            ].filter { self.matrix[$0.key] == nil })
        let copy = max(self.memory.rate, 1)
        let interconnect = DeviceProfile.Interconnect(
            topology: fixed(.switch, "one device: no device-to-device fabric; a 1-device switch keeps the schema valid"),
            devicesPerNode: fixed(1, "one device"),
            linksPerDevice: fixed(1, "one device"),
            link: DeviceProfile.Link(
                bandwidth: fig(copy, "device-memory bandwidth (a single device's collectives are copies)"),
                latency: fig(vectorLaunch, "launch of a tiny element-wise kernel"),
                efficiency: fixed(1.0, "the bandwidth is measured")),
            collectiveOverhead: fig(vectorLaunch, "launch of a tiny element-wise kernel"),
            collectiveAlgorithms: fixed([.direct, .ring], "host-staged collectives; any algorithm is one copy on one device"))
        let vendor = info.vendor.isEmpty || info.vendor == "unknown" ? "unknown vendor" : info.vendor
        var p = DeviceProfile(
            name: name, vendor: vendor,
            description: "\(info.name) (\(device), \(info.computeUnits) workers\(info.details["isa"].map { ", \($0)" } ?? "")) as calibrated on \(date)",
            note: "Written by polychip calibrate from micro-benchmarks through the device's own kernels (\(planSummary)). " +
                "Peaks are attained asymptotic rates, not datasheet figures. Validate with polychip bench --validate --profile FILE.",
            compute: DeviceProfile.Compute(matrix: matrix, vector: vector), memory: memory, hostLink: hostLink,
            numerics: numerics, interconnect: interconnect, kernelEfficiency: kernelEfficiencyTable(measured: measured),
            origin: "polychip calibrate")
        do { try p.validate() } catch {
            throw PolychipError.malformedFile(path: "polychip calibrate", field: error.path ?? "", reason: error.description)
        }
        p.origin = "polychip calibrate (\(device), \(date))"
        return p
    }

    /// The profile's `kernelEfficiency` table from ``kernelClasses`` (`nil` when not measured).
    func kernelEfficiencyTable(measured: String) -> [String: DeviceProfile.KernelEfficiency]? {
        guard let classes = kernelClasses, !classes.isEmpty else { return nil }
        var table: [String: DeviceProfile.KernelEfficiency] = [:]
        for (name, f) in classes {
            let on = f.points.joined(separator: "; ")
            func entry(_ v: Double?, _ raw: Double?, _ term: String, other: String) -> Sourced<Double>? {
                v.map { x in
                    guard let raw else {
                        return Sourced(x, source: "\(measured): the \(other) fraction of this class (no point of \(on) is \(term)-bound in the base model; a class reaches the same fraction of its roofline either way)")
                    }
                    return Sourced(x, source: "\(measured): \(term) time the model gives \(on) without this table / measured time less launch (geometric mean over the \(term)-bound points)",
                                   note: raw > x ? String(format: "measured %.3f: the class beat the roofline; efficiencies are at most 1", raw) : nil)
                }
            }
            let e = DeviceProfile.KernelEfficiency(compute: entry(f.compute, f.rawCompute, "compute", other: "memory"),
                                                   memory: entry(f.memory, f.rawMemory, "memory", other: "compute"))
            if e.compute != nil || e.memory != nil { table[name] = e }
        }
        return table.isEmpty ? nil : table
    }

    /// SIMD lanes of f32 the device's kernels use: from the CPU's ISA, 32 (a warp) for GPUs.
    static func vectorLanes(_ info: DeviceInfo) -> Int {
        switch info.details["isa"] {
        case "avx512": return 16
        case "avx2": return 8
        case "neon", "sse2", "sse4": return 4
        default: return info.kind == .gpu ? 32 : 1
        }
    }

    static func percent(_ x: Double) -> String { String(format: "%.1f%%", x * 100) }
}

/// Models workloads on the profile a partial ``CalibrationResult`` describes (the base model
/// that the read bandwidth and the kernel-class efficiencies are measured against).
struct ModelProbe {
    let device: SimulatedDevice

    init(_ result: CalibrationResult) throws {
        device = try SimulatedDevice(profile: try result.profile(name: "calibration-probe"), index: 0)
    }

    /// The modeled breakdown of `w`.
    func model(_ w: Workload) throws -> ModeledBreakdown {
        guard let m = try device.model(w.op, inputs: w.inputs) else {
            throw PolychipError.unsupported(kernel: w.kind.name, device: device.id, reason: "no time model")
        }
        return m
    }
}
