import Foundation
import PolychipCore
import PolychipSimulated

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
    /// `int4-matmul` shapes with `M = 1` (INT4 GEMVs: 4-bit weights and their scales streamed
    /// once past the caches, an output 1/K of that) for the read-only stream bandwidth
    /// (`memory.readBandwidth`); empty: no read bandwidth is written.
    public var readGemvs: [[String: Int]]
    /// Kernel-class micro-benchmarks (`kernelEfficiency`); empty: no table is written.
    public var classBenchmarks: [ClassBenchmark]
    /// Whether the memory curve gets a ramp-up (half-saturation bytes) from the stream sizes.
    /// GPUs and accelerators need many bytes in flight to reach their bandwidth; a host CPU's
    /// streams run at full rate within microseconds, so for it an intercept fitted from a few
    /// sizes past the caches is noise extrapolated a hundredfold (32 MB in one run, 85 MB in the
    /// next, on this project's host) that would price every small kernel as if it streamed tens
    /// of megabytes: the CPU plan fits the bandwidth through the origin.
    public var memoryRamp: Bool
    /// Bytes written to the device per host-link sample.
    public var hostLinkBytes: Int
    /// Minimum measured time per point, seconds.
    public var minTime: Double
    /// The clock the curves are fitted to.
    public var clock: BenchClock

    /// Creates a plan.
    public init(dtypes: [DType], gemmSizes: [Int], vectorRows: [Int], vectorWidth: Int, streamElements: [Int],
                readGemvs: [[String: Int]] = [], classBenchmarks: [ClassBenchmark] = [], memoryRamp: Bool = true,
                hostLinkBytes: Int, minTime: Double, clock: BenchClock = .wall) {
        self.dtypes = dtypes; self.gemmSizes = gemmSizes; self.vectorRows = vectorRows; self.vectorWidth = vectorWidth
        self.streamElements = streamElements; self.readGemvs = readGemvs; self.classBenchmarks = classBenchmarks
        self.memoryRamp = memoryRamp
        self.hostLinkBytes = hostLinkBytes; self.minTime = minTime
        self.clock = clock
    }

    /// The full plan for a device: host CPUs get sizes that finish in well under a minute on two
    /// cores and stream well past a 32 MiB last-level cache; GPUs and accelerators (OpenCL) get
    /// larger GEMMs and arrays so thousands of lanes saturate.
    public static func standard(for device: any Device) -> CalibrationPlan {
        let dtypes = [DType.f32, .f16, .bf16].filter { device.supports(.matmul, dtype: $0).isRunnable }
        let gemvs = [["M": 1, "N": 8192, "K": 8192, "G": 32], ["M": 1, "N": 6144, "K": 10240, "G": 32]]
        switch device.info.kind {
        case .gpu, .accelerator:
            return CalibrationPlan(dtypes: dtypes, gemmSizes: [512, 1024, 2048, 4096], vectorRows: [256, 1024, 4096],
                                   vectorWidth: 4096, streamElements: [1 << 24, 1 << 26, 1 << 27],
                                   readGemvs: gemvs, classBenchmarks: ClassBenchmark.standard,
                                   hostLinkBytes: 1 << 28, minTime: 0.2)
        default:
            return CalibrationPlan(dtypes: dtypes, gemmSizes: [640, 1152, 1792], vectorRows: [16, 64, 128],
                                   vectorWidth: 4096, streamElements: [1 << 24, 1 << 25],
                                   readGemvs: gemvs, classBenchmarks: ClassBenchmark.standard, memoryRamp: false,
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
        p.readGemvs = [["M": 1, "N": 64, "K": 512, "G": 32]]
        p.classBenchmarks = ClassBenchmark.quick
        p.hostLinkBytes = 1 << 16
        p.minTime = 0.002
        return p
    }
}

/// One kernel-class micro-benchmark of `polychip calibrate`: a catalog kernel of the class at
/// dimensions of its own. The standard shapes differ from every shape of
/// ``Workloads/defaultSuite(dtype:)`` (the validation suite), so `bench --validate` tests the
/// efficiencies on shapes they were not measured on.
public struct ClassBenchmark: Sendable, Hashable {
    /// The class the point calibrates.
    public var kernelClass: KernelClass
    /// The kernel run (a member of the class).
    public var kind: OpKind
    /// Its dimensions (``Workloads/make(_:_:_:)`` names).
    public var dims: [String: Int]

    /// Creates a point; `kind` should belong to `kernelClass`.
    public init(_ kernelClass: KernelClass, _ kind: OpKind, _ dims: [String: Int]) {
        self.kernelClass = kernelClass; self.kind = kind; self.dims = dims
    }

    /// The full plan's points: one or two kernels per class whose time is not a GEMM's, a
    /// `silu`'s or an INT4 GEMV's (those define the peaks and the read bandwidth), at LLM-like
    /// sizes (streaming past a 32 MiB cache where the kernel streams) but of other shapes.
    /// Top-k and sparse attention use DSA's selection size k = 2048 and two key counts S
    /// (4096 and 16384): their fraction of the roofline depends on k and S (heap replacements,
    /// the size of the key cache the gather reads from).
    public static let standard: [ClassBenchmark] = [
        ClassBenchmark(.attention, .attention, ["B": 1, "Hq": 16, "Hkv": 4, "Lq": 1024, "Lk": 1024, "D": 128, "causal": 1]),
        ClassBenchmark(.attention, .attention, ["B": 1, "Hq": 16, "Hkv": 4, "Lq": 1, "Lk": 16384, "D": 128, "causal": 1]),
        ClassBenchmark(.sparseAttention, .sparseAttention, ["T": 64, "H": 32, "Hkv": 1, "S": 4096, "D": 128, "k": 2048]),
        ClassBenchmark(.sparseAttention, .sparseAttention, ["T": 32, "H": 32, "Hkv": 1, "S": 16384, "D": 128, "k": 2048]),
        ClassBenchmark(.selection, .topK, ["T": 128, "S": 4096, "k": 2048]),
        ClassBenchmark(.selection, .topK, ["T": 32, "S": 16384, "k": 2048]),
        ClassBenchmark(.routing, .moeRouter, ["T": 2048, "E": 128, "k": 8, "groups": 8, "keep": 4]),
        ClassBenchmark(.normalization, .rmsNorm, ["R": 3072, "D": 6144]),
        ClassBenchmark(.softmax, .softmax, ["R": 3072, "D": 6144]),
        ClassBenchmark(.quantization, .quantizeInt4, ["N": 8192, "K": 2048, "G": 32]),
    ]

    /// Tiny points for tests: one per class of ``standard``.
    public static let quick: [ClassBenchmark] = [
        ClassBenchmark(.attention, .attention, ["B": 1, "Hq": 2, "Hkv": 1, "Lq": 16, "Lk": 16, "D": 16, "causal": 1]),
        ClassBenchmark(.sparseAttention, .sparseAttention, ["T": 4, "H": 2, "Hkv": 1, "S": 64, "D": 16, "k": 8]),
        ClassBenchmark(.selection, .topK, ["T": 4, "S": 256, "k": 16]),
        ClassBenchmark(.routing, .moeRouter, ["T": 16, "E": 16, "k": 2, "groups": 4, "keep": 2]),
        ClassBenchmark(.normalization, .rmsNorm, ["R": 4, "D": 256]),
        ClassBenchmark(.softmax, .softmax, ["R": 4, "D": 256]),
        ClassBenchmark(.quantization, .quantizeInt4, ["N": 16, "K": 64, "G": 32]),
    ]
}

/// A kernel class's calibrated efficiencies: the achieved fraction of the base model's compute
/// and memory times (``DeviceProfile/KernelEfficiency``), with the points behind them.
public struct ClassEfficiencyFit: Sendable, Hashable, Codable {
    /// Fraction of the compute time (geometric mean over the compute-bound points; the memory
    /// fraction when no point was compute-bound), ≤ 1.
    public var compute: Double?
    /// Fraction of the memory time (geometric mean over the memory-bound points; the compute
    /// fraction when no point was memory-bound), ≤ 1.
    public var memory: Double?
    /// The unclamped geometric means (above 1: the class beat the base model's roofline).
    public var rawCompute: Double?, rawMemory: Double?
    /// The points, as `kernel shape`.
    public var points: [String]
}

/// One measured kernel-class point against the base model (input of ``ClassEfficiencyFit/fit(_:)``).
public struct ClassPoint: Sendable, Hashable {
    /// The class it calibrates.
    public var kernelClass: KernelClass
    /// `kernel shape`.
    public var label: String
    /// Measured seconds on the calibration clock.
    public var seconds: Double
    /// The base model's breakdown (no kernel-class table).
    public var modeled: ModeledBreakdown

    /// Creates a point.
    public init(kernelClass: KernelClass, label: String, seconds: Double, modeled: ModeledBreakdown) {
        self.kernelClass = kernelClass; self.label = label; self.seconds = seconds; self.modeled = modeled
    }
}

extension ClassEfficiencyFit {
    /// Per class: the compute fraction from the points the base model calls compute-bound
    /// (modeled compute / (measured − launch), geometric mean, at most 1); then the memory
    /// fraction likewise from the memory-bound points the compute fraction does not already
    /// explain. A class measured in one regime only gets that fraction for both terms: it
    /// reaches the same fraction of its roofline whichever side binds.
    public static func fit(_ points: [ClassPoint]) -> [String: ClassEfficiencyFit] {
        var fits: [String: ClassEfficiencyFit] = [:]
        for cls in KernelClass.allCases {
            let pts = points.filter { $0.kernelClass == cls }
            guard !pts.isEmpty else { continue }
            func busy(_ p: ClassPoint) -> Double { Calibrator.busy(p.seconds, launch: p.modeled.launch) }
            let cb = pts.filter { $0.modeled.compute >= $0.modeled.memory && $0.modeled.compute > 0 }
            let rawC = Calibrator.geometricMean(cb.map { $0.modeled.compute / busy($0) })
            let kc = rawC.map { min(1, $0) }
            let mb = pts.filter { p in p.modeled.memory > p.modeled.compute && p.modeled.compute / (kc ?? 1) < busy(p) }
            let rawM = Calibrator.geometricMean(mb.map { $0.modeled.memory / busy($0) })
            let km = rawM.map { min(1, $0) }
            fits[cls.rawValue] = ClassEfficiencyFit(compute: kc ?? km, memory: km ?? kc, rawCompute: rawC, rawMemory: rawM,
                                                    points: pts.map(\.label))
        }
        return fits
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
    /// Read-only stream bandwidth from the GEMV points, B/s (`nil`: not measured).
    public var readBandwidth: Double?
    /// Read-only bandwidth before clamping to ≥ half the copy bandwidth, B/s.
    public var rawReadBandwidth: Double?
    /// Calibrated kernel-class efficiencies by class name (`nil`: not measured).
    public var kernelClasses: [String: ClassEfficiencyFit]?
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
        guard let memory = SaturationFit.fit(mem.map { ($0.work, $0.time(clock)) }, launch: vectorLaunch, throughOrigin: !plan.memoryRamp),
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
            (plan.readGemvs.isEmpty ? "" : "INT4 GEMVs \(plan.readGemvs.map { "\($0["N"] ?? 0)×\($0["K"] ?? 0)" }.joined(separator: ", ")) (read bandwidth); ") +
            (plan.classBenchmarks.isEmpty ? "" : "kernel-class points \(plan.classBenchmarks.map { "\($0.kind.name)" }.joined(separator: ", ")); ") +
            "median of repeats ≥ \(plan.minTime) s per point, \(clock == .cpu ? "CPU time per worker thread" : "wall clock")"
        var result = CalibrationResult(device: device.id, info: device.info, date: fmt.string(from: date), command: command,
                                       matrixLaunch: matrixLaunch, vectorLaunch: vectorLaunch, matrix: matrix, vector: vector,
                                       memory: memory, hostLinkBandwidth: link.work / link.time(clock), samples: samples,
                                       planSummary: summary, clock: clock)

        // Read-only bandwidth: INT4 GEMVs, against the copy-bandwidth model.
        if !plan.readGemvs.isEmpty {
            progress("read bandwidth")
            let base = try ModelProbe(result)
            var ratios: [Double] = []
            for dims in plan.readGemvs {
                let w = try Workloads.make(.int4Matmul, dims, .f32)
                let s = try time("read", .int4Matmul, dims, .f32) { $0.bytes }
                let m = try base.model(w)
                // m.memory prices the GEMV's bytes at the copy bandwidth; the read stream took busy.
                if m.memory > 0 { ratios.append(m.memory / Self.busy(s.time(clock), launch: m.launch)) }
            }
            if let g = Self.geometricMean(ratios) {
                result.rawReadBandwidth = memory.rate * g
                result.readBandwidth = memory.rate * max(0.5, g)
            }
            result.samples = samples
        }

        // Kernel classes: the achieved fraction of the (read-aware) base model per class.
        if !plan.classBenchmarks.isEmpty {
            progress("kernel classes")
            let base = try ModelProbe(result)
            var points: [ClassPoint] = []
            for b in plan.classBenchmarks {
                let w = try Workloads.make(b.kind, b.dims, .f32)
                let s = try time("class \(b.kernelClass.rawValue)", b.kind, b.dims, .f32) { $0.flops }
                points.append(ClassPoint(kernelClass: b.kernelClass, label: "\(b.kind.name) \(w.label)", seconds: s.time(clock), modeled: try base.model(w)))
            }
            result.samples = samples
            let fits = ClassEfficiencyFit.fit(points)
            result.kernelClasses = fits
        }
        return result
    }

    /// The measured time less the modeled launch, never below a tenth of the measured time.
    static func busy(_ seconds: Double, launch: Double) -> Double { max(seconds - launch, 0.1 * seconds) }

    /// Geometric mean of the positive finite values; `nil` when there are none.
    static func geometricMean(_ xs: [Double]) -> Double? {
        let v = xs.filter { $0 > 0 && $0.isFinite }
        guard !v.isEmpty else { return nil }
        return exp(v.map { log($0) }.reduce(0, +) / Double(v.count))
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
        if let rb = readBandwidth {
            lines.append(String(format: "  read-only stream: %.2f GB/s (measured %.2f GB/s)", rb / 1e9, (rawReadBandwidth ?? rb) / 1e9))
        }
        for (name, f) in (kernelClasses ?? [:]).sorted(by: { $0.key < $1.key }) {
            func pct(_ v: Double?, _ raw: Double?) -> String {
                guard let v else { return "—" }
                return String(format: "%.3f", v) + (raw.map { $0 > v ? String(format: " (measured %.3f)", $0) : "" } ?? "")
            }
            lines.append("  class \(name): compute \(pct(f.compute, f.rawCompute)), memory \(pct(f.memory, f.rawMemory)) from \(f.points.joined(separator: "; "))")
        }
        return lines.joined(separator: "\n")
    }
}
