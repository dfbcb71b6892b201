import Foundation
import PolychipCore

/// Which clock stands for a measured kernel's time.
public enum BenchClock: String, Sendable, Hashable, Codable, CaseIterable {
    /// Wall-clock time: the default, and what the bench tables quote.
    case wall
    /// Process CPU time divided by the device's worker threads: the kernel's time on an
    /// otherwise idle host. On a shared machine other tenants' time slices stretch wall time by
    /// amounts that vary from second to second; they do not stretch CPU time. `cpu` devices only
    /// (a GPU's work does not show in the host process's CPU time).
    case cpu

    /// Whether the cpu clock means something for `device`: devices of the `cpu` backend, whose
    /// workers sleep between kernels. (An OpenCL CPU device such as PoCL spins its threads while
    /// idle, so its CPU time is not its work.)
    public static func cpuClockApplies(to device: any Device) -> Bool {
        device.info.kind == .cpu && device.id.hasPrefix("cpu:")
    }
}

/// What `polychip calibrate` measures on a device, and how long it spends per point.
///
/// Every micro-benchmark is a catalog kernel run through the device's own backend with
/// ``BenchRunner`` (warm-up, repeat to `minTime`, median), so any measured device — the CPU
/// backend, an OpenCL device (`opencl:N`) — is calibrated by the same code; only the sizes
/// differ (``standard(for:)`` picks them from the device's kind).
public struct CalibrationPlan: Sendable, Hashable {
    /// Float dtypes whose matrix and vector rates are measured.
    public var dtypes: [DType]
    /// Square GEMM sizes `N` (`matmul` N×N×N) for the matrix unit's curve.
    public var gemmSizes: [Int]
    /// Row counts of the cache-resident `silu`/`swiglu` runs (rows of ``vectorWidth``) for the
    /// vector unit's curve.
    public var vectorRows: [Int]
    /// Row length of the vector runs.
    public var vectorWidth: Int
    /// Element counts of the `scale`/`add` f32 runs for the memory curve (large enough to
    /// stream from device memory rather than cache).
    public var streamElements: [Int]
    /// Bytes written to the device per host-link sample.
    public var hostLinkBytes: Int
    /// Minimum measured time per point, seconds.
    public var minTime: Double
    /// The clock the curves are fitted to.
    public var clock: BenchClock

    /// Creates a plan.
    public init(dtypes: [DType], gemmSizes: [Int], vectorRows: [Int], vectorWidth: Int, streamElements: [Int],
                hostLinkBytes: Int, minTime: Double, clock: BenchClock = .wall) {
        self.dtypes = dtypes; self.gemmSizes = gemmSizes; self.vectorRows = vectorRows; self.vectorWidth = vectorWidth
        self.streamElements = streamElements; self.hostLinkBytes = hostLinkBytes; self.minTime = minTime
        self.clock = clock
    }

    /// The full plan for a device: host CPUs get sizes that finish in well under a minute on two
    /// cores and stream well past a 32 MiB last-level cache; GPUs and accelerators (OpenCL) get
    /// larger GEMMs and arrays so thousands of lanes saturate.
    public static func standard(for device: any Device) -> CalibrationPlan {
        let dtypes = [DType.f32, .f16, .bf16].filter { device.supports(.matmul, dtype: $0).isRunnable }
        switch device.info.kind {
        case .gpu, .accelerator:
            return CalibrationPlan(dtypes: dtypes, gemmSizes: [512, 1024, 2048, 4096], vectorRows: [256, 1024, 4096],
                                   vectorWidth: 4096, streamElements: [1 << 24, 1 << 26, 1 << 27],
                                   hostLinkBytes: 1 << 28, minTime: 0.2)
        default:
            return CalibrationPlan(dtypes: dtypes, gemmSizes: [640, 1152, 1792], vectorRows: [16, 64, 128],
                                   vectorWidth: 4096, streamElements: [1 << 24, 1 << 25],
                                   hostLinkBytes: 1 << 26, minTime: 0.3)
        }
    }

    /// Small sizes for tests: seconds, not a faithful profile.
    public static func quick(for device: any Device) -> CalibrationPlan {
        var p = standard(for: device)
        p.dtypes = Array(p.dtypes.prefix(1))
        p.gemmSizes = [32, 64, 96]
        p.vectorRows = [4, 16]
        p.vectorWidth = 256
        p.streamElements = [1 << 12, 1 << 14]
        p.hostLinkBytes = 1 << 16
        p.minTime = 0.002
        return p
    }
}

/// One micro-benchmark point.
public struct CalibrationSample: Sendable, Hashable, Codable {
    /// What the point calibrates: `launch`, `matrix`, `vector`, `memory` or `hostLink`.
    public var purpose: String
    /// Kernel name (or `write` for the host link).
    public var kernel: String
    /// Shape label.
    public var shape: String
    /// Dtype.
    public var dtype: String
    /// Work of the point in the fitted unit (FLOPs for compute, bytes for memory and host link).
    public var work: Double
    /// Median seconds.
    public var seconds: Double
    /// Fastest and slowest repetition.
    public var minSeconds: Double, maxSeconds: Double
    /// Median process CPU time per call, seconds.
    public var cpuSeconds: Double?
    /// Threads that ran the point (the device's workers; 1 for host-link copies).
    public var threads: Int

    /// The time the fits use under `clock`: the wall-clock median, or CPU time per thread.
    public func time(_ clock: BenchClock) -> Double {
        guard clock == .cpu, let cpu = cpuSeconds, cpu > 0 else { return seconds }
        return cpu / Double(max(1, threads))
    }
}

/// What calibration measured: the fitted figures and the raw points behind them.
public struct CalibrationResult: Sendable, Codable {
    /// Device id (`cpu:0`).
    public var device: String
    /// The device's facts at calibration time.
    public var info: DeviceInfo
    /// Calendar date (`yyyy-MM-dd`, UTC).
    public var date: String
    /// The command that produced it (recorded in every figure's source).
    public var command: String
    /// Launch cost of a tiny GEMM (matrix unit) and of a tiny element-wise kernel (vector unit), s.
    public var matrixLaunch: Double, vectorLaunch: Double
    /// Matrix-unit curve per dtype name (FLOP/s and half-saturation FLOPs).
    public var matrix: [String: SaturationFit]
    /// Vector-unit curve per dtype name.
    public var vector: [String: SaturationFit]
    /// Device-memory curve (B/s and half-saturation bytes).
    public var memory: SaturationFit
    /// Host-to-device copy bandwidth, B/s.
    public var hostLinkBandwidth: Double
    /// Every measured point.
    public var samples: [CalibrationSample]
    /// The plan that was run.
    public var planSummary: String
    /// The clock the curves were fitted to.
    public var clock: BenchClock
}

/// Runs a ``CalibrationPlan`` on a measured device.
public enum Calibrator {
    /// Micro-benchmarks `device` and fits the time model's curves.
    ///
    /// - Parameters:
    ///   - command: the command line to record in the profile's sources.
    ///   - progress: called with one line per point (the CLI prints it on stderr).
    /// - Throws: ``PolychipError/unsupported(kernel:device:reason:)`` for devices that model
    ///   time (simulated) or are the reference oracle, and any kernel error.
    public static func calibrate(_ device: any Device, plan: CalibrationPlan, command: String,
                                 date: Date = Date(), progress: (String) -> Void = { _ in }) throws -> CalibrationResult {
        if device.supportsDryRun || device.info.kind == .simulated {
            throw PolychipError.unsupported(kernel: "calibrate", device: device.id,
                                            reason: "simulated devices model time; calibrate the real device they stand for")
        }
        if device.info.kind == .reference {
            throw PolychipError.unsupported(kernel: "calibrate", device: device.id,
                                            reason: "the reference backend is the correctness oracle, not a performance target")
        }
        if plan.clock == .cpu && !BenchClock.cpuClockApplies(to: device) {
            throw PolychipError.invalidArgument(kernel: "calibrate", argument: "clock",
                                                reason: "the cpu clock divides this process's CPU time by the cpu backend's workers; \(device.id) is not a cpu-backend device")
        }
        let workers = max(1, device.info.computeUnits)
        guard !plan.dtypes.isEmpty else {
            throw PolychipError.invalidArgument(kernel: "calibrate", argument: "dtypes", reason: "\(device.id) runs matmul in no float dtype")
        }
        var samples: [CalibrationSample] = []
        let options = BenchOptions(minTime: plan.minTime, verify: false)
        let queue = Queue(device: device, label: "calibrate")
        func time(_ purpose: String, _ kind: OpKind, _ dims: [String: Int], _ dtype: DType, work: (BenchResult) -> Double) throws -> CalibrationSample {
            let w = try Workloads.make(kind, dims, dtype)
            progress("  \(purpose): \(kind.name) \(w.label) \(dtype)")
            let r = try BenchRunner.run(w, on: device, options: options, queue: queue)
            queue.reset()
            let s = CalibrationSample(purpose: purpose, kernel: kind.name, shape: w.label, dtype: dtype.rawValue, work: work(r),
                                      seconds: r.medianSeconds, minSeconds: r.minSeconds, maxSeconds: r.maxSeconds,
                                      cpuSeconds: r.cpuSeconds, threads: workers)
            samples.append(s)
            return s
        }

        // Launch: the smallest GEMM and element-wise kernel the catalog allows to be useful.
        progress("launch overhead")
        let clock = plan.clock
        let matrixLaunch = try time("launch", .matmul, ["M": 8, "N": 8, "K": 8], .f32) { _ in 0 }.time(clock)
        let vectorLaunch = try time("launch", .scale, ["R": 1, "D": 64], .f32) { _ in 0 }.time(clock)

        // Matrix unit: square GEMMs per dtype.
        var matrix: [String: SaturationFit] = [:]
        for dt in plan.dtypes {
            progress("matrix unit, \(dt)")
            let pts = try plan.gemmSizes.map { n in try time("matrix", .matmul, ["M": n, "N": n, "K": n], dt) { $0.flops } }
            if let f = SaturationFit.fit(pts.map { ($0.work, $0.time(clock)) }, launch: matrixLaunch) { matrix[dt.rawValue] = f }
        }

        // Vector unit: transcendental element-wise kernels on cache-resident rows.
        var vector: [String: SaturationFit] = [:]
        for dt in plan.dtypes {
            progress("vector unit, \(dt)")
            var pts: [CalibrationSample] = []
            for kind in [OpKind.silu, .swiglu] {
                for r in plan.vectorRows { pts.append(try time("vector", kind, ["R": r, "D": plan.vectorWidth], dt) { $0.flops }) }
            }
            if let f = SaturationFit.fit(pts.map { ($0.work, $0.time(clock)) }, launch: vectorLaunch) { vector[dt.rawValue] = f }
        }

        // Memory: streaming scale and add on f32 arrays past the caches.
        progress("memory bandwidth")
        var mem: [CalibrationSample] = []
        for kind in [OpKind.scale, .add] {
            for n in plan.streamElements { mem.append(try time("memory", kind, ["R": 1, "D": n], .f32) { $0.bytes }) }
        }
        guard let memory = SaturationFit.fit(mem.map { ($0.work, $0.time(clock)) }, launch: vectorLaunch),
              matrix[plan.dtypes[0].rawValue] != nil, vector[plan.dtypes[0].rawValue] != nil else {
            throw PolychipError.deviceFault(device: device.id, kernel: "calibrate", kind: "measurement",
                                            detail: "the measured times do not fit a rate (every point took no time?)")
        }

        // Host link: host-to-device writes of one large buffer.
        progress("host link")
        let link = try hostLink(device, bytes: plan.hostLinkBytes, minTime: plan.minTime)
        samples.append(link)

        let fmt = DateFormatter()
        fmt.locale = Locale(identifier: "en_US_POSIX")
        fmt.timeZone = TimeZone(identifier: "UTC")
        fmt.dateFormat = "yyyy-MM-dd"
        let summary = "matmul N ∈ \(plan.gemmSizes) (\(plan.dtypes.map(\.rawValue).joined(separator: ", "))); " +
            "silu/swiglu \(plan.vectorRows)×\(plan.vectorWidth); scale/add f32 of \(plan.streamElements.map { "2^\(Int(log2(Double($0))))" }.joined(separator: ", ")) elements; " +
            "median of repeats ≥ \(plan.minTime) s per point, \(clock == .cpu ? "CPU time per worker thread" : "wall clock")"
        return CalibrationResult(device: device.id, info: device.info, date: fmt.string(from: date), command: command,
                                 matrixLaunch: matrixLaunch, vectorLaunch: vectorLaunch, matrix: matrix, vector: vector,
                                 memory: memory, hostLinkBandwidth: link.work / link.time(clock), samples: samples,
                                 planSummary: summary, clock: clock)
    }

    /// Median time of writing `bytes` host bytes into one device buffer.
    static func hostLink(_ device: any Device, bytes: Int, minTime: Double) throws -> CalibrationSample {
        let n = max(1, bytes)
        let buffer = try device.allocateBuffer(byteCount: n)
        let host = [UInt8](repeating: 0x5A, count: n)
        var times: [Double] = [], cpu: [Double] = []
        var total = 0.0
        try host.withUnsafeBytes { src in
            try device.write(src, to: buffer, at: 0)  // warm-up (first touch)
            while (total < minTime || times.count < 3) && times.count < 1000 {
                let (t0, c0) = (Queue.wallClock(), BenchRunner.processCPUTime())
                try device.write(src, to: buffer, at: 0)
                let dt = Queue.wallClock() - t0
                cpu.append(BenchRunner.processCPUTime() - c0)
                times.append(dt)
                total += dt
            }
        }
        times.sort()
        cpu.sort()
        let med = max(times[times.count / 2], 1e-9)
        return CalibrationSample(purpose: "hostLink", kernel: "write", shape: "\(n) bytes", dtype: "u8", work: Double(n),
                                 seconds: med, minSeconds: times.first ?? med, maxSeconds: times.last ?? med,
                                 cpuSeconds: cpu[cpu.count / 2], threads: 1)
    }
}

extension CalibrationResult {
    /// Every point and the fitted figures, one line each (what `polychip calibrate` prints on stderr).
    public func summary() -> String {
        var lines = samples.map { s in
            "  \(s.purpose) \(s.kernel) \(s.shape) \(s.dtype): \(BenchReport.seconds(s.seconds)) (\(BenchReport.seconds(s.minSeconds))–\(BenchReport.seconds(s.maxSeconds)))" +
                (s.cpuSeconds.map { ", CPU \(BenchReport.seconds($0))" } ?? "") +
                (s.work > 0 ? String(format: ", %.3g per s", s.work / s.time(clock)) : "")
        }
        lines.append("\(device) (\(clock == .cpu ? "CPU time per worker" : "wall clock")): launch \(BenchReport.seconds(matrixLaunch)) (GEMM), \(BenchReport.seconds(vectorLaunch)) (element-wise)")
        for (dt, f) in matrix.sorted(by: { $0.key < $1.key }) {
            lines.append("  matrix \(dt): " + String(format: "%.1f GFLOP/s, half-saturation %.3g FLOP (fit error %.1f%%)", f.rate / 1e9, f.halfSaturation, f.medianAbsError * 100))
        }
        for (dt, f) in vector.sorted(by: { $0.key < $1.key }) {
            lines.append("  vector \(dt): " + String(format: "%.2f GFLOP/s, half-saturation %.3g FLOP (fit error %.1f%%)", f.rate / 1e9, f.halfSaturation, f.medianAbsError * 100))
        }
        lines.append(String(format: "  memory: %.2f GB/s, half-saturation %.3g B (fit error %.1f%%); host link %.2f GB/s",
                            memory.rate / 1e9, memory.halfSaturation, memory.medianAbsError * 100, hostLinkBandwidth / 1e9))
        return lines.joined(separator: "\n")
    }
}
