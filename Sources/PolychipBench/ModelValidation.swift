import Foundation
import PolychipCore
import PolychipSimulated

/// One kernel of `polychip bench --validate`: measured on a real device and modeled on that
/// device's calibrated profile.
public struct ValidationRow: Sendable, Codable, Hashable {
    /// Kernel name.
    public var kernel: String
    /// Shape label.
    public var shape: String
    /// Activation dtype.
    public var dtype: String
    /// The measured device (`cpu:0`).
    public var device: String
    /// The simulated device that modeled it (`sim:NAME:0`).
    public var modelDevice: String
    /// Measured median, fastest and slowest repetition, seconds.
    public var measuredSeconds: Double, minSeconds: Double, maxSeconds: Double
    /// Measured repetitions.
    public var repetitions: Int
    /// Modeled seconds.
    public var modeledSeconds: Double
    /// What bounds the modeled time (`compute`, `memory`, `launch`).
    public var bound: String
    /// The model's breakdown.
    public var breakdown: ModeledBreakdown?
    /// Median CPU time per call divided by the device's workers (``BenchClock/cpu``), seconds.
    public var cpuEquivalentSeconds: Double?
    /// The clock the error compares against.
    public var clock: BenchClock
    /// `modeled / measured − 1`, with `measured` the wall-clock median or, under
    /// ``BenchClock/cpu``, ``cpuEquivalentSeconds``.
    public var error: Double

    /// Pairs a measured and a modeled result of the same workload; `workers` divides the CPU time.
    public init(measured m: BenchResult, modeled s: BenchResult, clock: BenchClock = .wall, workers: Int = 1) {
        kernel = m.kernel; shape = m.shape; dtype = m.dtype; device = m.device; modelDevice = s.device
        measuredSeconds = m.medianSeconds; minSeconds = m.minSeconds; maxSeconds = m.maxSeconds; repetitions = m.repetitions
        modeledSeconds = s.medianSeconds; bound = s.bound; breakdown = s.breakdown
        cpuEquivalentSeconds = m.cpuSeconds.map { $0 / Double(max(1, workers)) }
        self.clock = clock
        let compared = clock == .cpu ? (cpuEquivalentSeconds ?? measuredSeconds) : measuredSeconds
        error = compared > 0 ? s.medianSeconds / compared - 1 : .infinity
    }

    /// The measured time the error compares against.
    public var comparedSeconds: Double {
        clock == .cpu ? (cpuEquivalentSeconds ?? measuredSeconds) : measuredSeconds
    }
}

/// The model-accuracy report of `polychip bench --validate`.
public struct ValidationReport: Sendable, Codable {
    /// Measured device.
    public var device: String
    /// Where the profile came from (a file, or "calibrated on the fly").
    public var profile: String
    /// Per-kernel rows.
    public var rows: [ValidationRow]
    /// The clock the errors compare against.
    public var clock: BenchClock
    /// Median of |error| over the rows.
    public var medianAbsError: Double
    /// Mean of |error| over the rows.
    public var meanAbsError: Double
    /// The target for the median absolute error.
    public var target: Double = 0.15

    /// Builds the report and its summary statistics.
    public init(device: String, profile: String, rows: [ValidationRow], clock: BenchClock = .wall) {
        self.device = device; self.profile = profile; self.rows = rows; self.clock = clock
        let errs = rows.map { abs($0.error) }.filter(\.isFinite)
        medianAbsError = SaturationFit.median(errs)
        meanAbsError = errs.isEmpty ? 0 : errs.reduce(0, +) / Double(errs.count)
    }

    /// The error table with a summary line.
    public func table() -> String {
        let cpu = clock == .cpu
        let header = ["kernel", "shape", "dtype"] + (cpu ? ["CPU/worker"] : []) + ["wall median", "wall min–max", "modeled", "bound", "error"]
        let body = rows.map { r -> [String] in
            [r.kernel, r.shape, r.dtype] + (cpu ? [BenchReport.seconds(r.comparedSeconds)] : []) + [BenchReport.seconds(r.measuredSeconds),
             "\(BenchReport.seconds(r.minSeconds))–\(BenchReport.seconds(r.maxSeconds))", BenchReport.seconds(r.modeledSeconds),
             r.bound, String(format: "%+.1f%%", r.error * 100)]
        }
        let widths = header.indices.map { i in max(header[i].count, body.map { $0[i].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        let measured = cpu ? "measured (CPU time per worker thread)" : "measured (wall-clock median)"
        var out = ["model accuracy on \(device): \(measured) vs modeled on \(profile)", ""]
        out += [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + body.map(line)
        out.append("")
        out.append(String(format: "median |error| %.1f%% over %d kernels (mean %.1f%%; target ≤ %.0f%%: ",
                          medianAbsError * 100, rows.count, meanAbsError * 100, target * 100) +
                   (medianAbsError <= target ? "met)" : "not met)"))
        return out.joined(separator: "\n")
    }

    /// Pretty JSON of the report.
    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try enc.encode(self) } catch {
            throw PolychipError.invalidArgument(kernel: "bench", argument: "--json", reason: "cannot encode the report: \(error)")
        }
    }

    /// CSV with a header line.
    public func csv() -> String {
        var out = "kernel,shape,dtype,device,model_device,measured_s,min_s,max_s,cpu_per_worker_s,modeled_s,bound,clock,error\n"
        for r in rows {
            out += [r.kernel, r.shape, r.dtype, r.device, r.modelDevice, "\(r.measuredSeconds)", "\(r.minSeconds)",
                    "\(r.maxSeconds)", r.cpuEquivalentSeconds.map { "\($0)" } ?? "", "\(r.modeledSeconds)", r.bound,
                    r.clock.rawValue, "\(r.error)"].joined(separator: ",") + "\n"
        }
        return out
    }
}

/// Measured vs modeled on one device: each workload timed on the device and modeled on the
/// device's calibrated profile, paired into a ``ValidationReport`` (`polychip bench --validate`).
public struct ModelValidationRun: Sendable {
    /// The report: one row per workload both sides could run.
    public var report: ValidationReport
    /// Every measured and modeled row, in pairs.
    public var results: [BenchResult]
    /// The measured device's roof and its model's (the same figures).
    public var roofs: [Roof]
    /// The two queues the rows ran on (for traces).
    public var queues: [Queue]

    /// Runs `workloads` on `device` and on a simulated device of `profile`.
    /// - Parameters:
    ///   - origin: where the profile came from (a file, "calibrated now"), for the report.
    ///   - verify: verify the measured rows' timed calls against the reference.
    ///   - progress: one line per workload; a workload either side cannot run is reported
    ///     through it and left out.
    public static func run(_ workloads: [Workload], on device: any Device, profile: DeviceProfile, origin: String,
                           dtype: DType, minTime: Double, verify: Bool, clock: BenchClock,
                           progress: (String) -> Void = { _ in }) throws -> ModelValidationRun {
        let sim = try SimulatedDevice(profile: profile, index: 0)
        let mq = Queue(device: device, label: "compute"), sq = Queue(device: sim, label: "compute (modeled)")
        let fig = Roof(device: device.id, peakFlops: sim.info.peakFlops[dtype.rawValue] ?? sim.info.peakFlops["f32"],
                       bandwidth: sim.info.memoryBandwidth)
        var rows: [ValidationRow] = []
        var results: [BenchResult] = []
        for (i, w) in workloads.enumerated() {
            progress("[\(i + 1)/\(workloads.count)] \(w.kind.name) \(w.label) \(w.dtype): measured on \(device.id), modeled on \(sim.id)…")
            do {
                let m = try BenchRunner.run(w, on: device, options: BenchOptions(minTime: minTime, verify: verify), queue: mq)
                let s = try BenchRunner.run(w, on: sim, options: BenchOptions(minTime: minTime, verify: false), queue: sq)
                results += [m, s]
                rows.append(ValidationRow(measured: m, modeled: s, clock: clock, workers: device.info.computeUnits))
            } catch {
                progress("  skipped: \(error)")
            }
        }
        return ModelValidationRun(report: ValidationReport(device: device.id, profile: origin, rows: rows, clock: clock),
                                  results: results,
                                  roofs: [fig, Roof(device: sim.id, peakFlops: fig.peakFlops, bandwidth: fig.bandwidth)],
                                  queues: [mq, sq])
    }
}
