import Foundation
import PolychipCore
import PolychipConformance

/// One row of `polychip bench`.
public struct BenchResult: Sendable, Codable {
    public var kernel: String
    public var shape: String
    public var dtype: String
    public var device: String
    /// `measured` or `modeled`.
    public var source: String
    public var medianSeconds: Double
    public var minSeconds: Double
    public var maxSeconds: Double
    public var repetitions: Int
    public var flops: Double
    public var bytes: Double
    public var gflops: Double
    public var gbps: Double
    /// Percent of the device's roofline time (nil when the device's peaks are unknown).
    public var rooflinePercent: Double?
    /// `compute`, `memory`, `launch` (or `-` when unknown).
    public var bound: String
    /// The timed call's outputs checked at full size: `yes (Freivalds ×2)`, `yes (full)`,
    /// `yes (32 sampled rows)`; `yes (reduced: …)` where no call ran at full size (modeled
    /// devices); `FAIL (…): …`, `unsupported: …`, or `off`.
    public var verified: String
    /// Modeled breakdown for modeled rows.
    public var breakdown: ModeledBreakdown?
    /// Median process CPU time per call (every thread of the process), measured rows only.
    /// Divided by the device's worker count it estimates the call's time on an otherwise idle
    /// host: time-slicing by other tenants stretches wall time but not CPU time.
    public var cpuSeconds: Double?
    /// FNV-1a fingerprint of the timed call's output bytes (measured rows): results are
    /// deterministic per device, path and thread count, so two runs can be compared without
    /// keeping the outputs (the mutation harness uses it to tell which mutants change them).
    public var outputDigest: String?
    /// Arithmetic intensity (FLOP/byte).
    public var intensity: Double { bytes > 0 ? flops / bytes : 0 }
}

/// How to measure.
public struct BenchOptions: Sendable {
    /// Minimum total measured time per row (seconds).
    public var minTime: Double = 1.0
    /// Hard cap on repetitions.
    public var maxRepetitions: Int = 1000
    /// Verify against the reference (at a reduced size where needed).
    public var verify: Bool = true
    /// Seed for inputs.
    public var seed: UInt64 = 0xBE7C
    /// Creates options.
    public init(minTime: Double = 1.0, verify: Bool = true) { self.minTime = minTime; self.verify = verify }
}

/// Times workloads on devices: warm-up, repeat to ≥ `minTime`, median.
public enum BenchRunner {
    /// Runs `w` on `device`: measured for real devices, modeled (dry run on meta tensors)
    /// for devices that model time. Every kernel call is recorded on `queue` (a fresh one when
    /// `nil`; pass one per device to collect a trace of the whole run); it must be on `device`.
    public static func run(_ w: Workload, on device: any Device, options: BenchOptions, queue: Queue? = nil) throws -> BenchResult {
        // Validated once: the support query, the cost and every timed call use this.
        let call = try w.op.validated(w.inputs)
        if case .unsupported(let why) = device.support(for: call) {
            throw PolychipError.unsupported(kernel: w.kind.name, device: device.id, reason: why)
        }
        let cost = call.cost, outDescs = call.outputs
        var times: [Double] = [], cpu: [Double] = []
        var breakdown: ModeledBreakdown? = nil
        var verified = options.verify ? "" : "off"
        var digest: String? = nil
        let queue = queue ?? Queue(device: device)
        guard queue.device === device else {
            throw PolychipError.invalidArgument(kernel: w.kind.name, argument: "queue", reason: "the queue is on \(queue.device.id), not \(device.id)")
        }
        if device.supportsDryRun {
            let r = try queue.enqueue(call, inputs: w.inputs.map(Tensor.meta), outputs: outDescs.map(Tensor.meta))
            times = [r.seconds]
            breakdown = r.breakdown
            if options.verify { verified = verifyReduced(w, on: device) }
        } else {
            // Estimated before anything is allocated: the seeded inputs (a float array and its
            // stored bytes), then the device copies and outputs, which on host-memory devices
            // are host memory too.
            let inBytes = w.inputs.reduce(0.0) { $0 + Double($1.byteCount) + 4 * Double($1.elementCount) }
            let devBytes = (w.inputs + outDescs).reduce(0.0) { $0 + Double($1.byteCount) }
            try HostMemory.reserve(inBytes + (device.usesHostMemory ? devBytes : 0),
                                   for: "\(w.kind.name) \(w.label) inputs and outputs", device: device.id)
            let hostInputs = try w.makeInputs(seed: options.seed)
            let ins = try hostInputs.map { try device.tensor($0) }
            let outs = try outDescs.map { try device.allocate($0) }
            try queue.enqueue(call, inputs: ins, outputs: outs)  // warm-up
            var total = 0.0
            while (total < options.minTime || times.count < 3) && times.count < options.maxRepetitions {
                let c0 = processCPUTime()
                let t = try queue.enqueue(call, inputs: ins, outputs: outs).seconds
                cpu.append(processCPUTime() - c0)
                times.append(t)
                total += t
            }
            // The outputs of the last timed call: fingerprinted, and checked at full size.
            let outputs = try outs.map { try device.download($0) }
            digest = String(outputs.reduce(fnv1a([]) as UInt64) { fnv1a($1.bytes, start: $0) }, radix: 16)
            if options.verify { verified = TimedCallVerifier.verify(w.op, inputs: hostInputs, outputs: outputs).summary }
        }
        times.sort()
        cpu.sort()
        let median = times[times.count / 2]
        var roof: Double? = nil
        var bound = breakdown?.bound ?? "-"
        let peak = device.info.peakFlops[w.dtype.rawValue] ?? device.info.peakFlops["f32"]
        if let peak, let bw = device.info.memoryBandwidth, peak > 0, bw > 0 {
            let (tc, tm) = (cost.flops / peak, cost.bytes / bw)
            roof = 100 * max(tc, tm) / median
            if breakdown == nil { bound = tc >= tm ? "compute" : "memory" }
        }
        return BenchResult(kernel: w.kind.name, shape: w.label, dtype: w.dtype.rawValue, device: device.id,
                           source: breakdown == nil ? "measured" : "modeled", medianSeconds: median,
                           minSeconds: times.first ?? median, maxSeconds: times.last ?? median, repetitions: times.count,
                           flops: cost.flops, bytes: cost.bytes, gflops: cost.flops / median / 1e9, gbps: cost.bytes / median / 1e9,
                           rooflinePercent: roof, bound: bound, verified: verified, breakdown: breakdown,
                           cpuSeconds: cpu.isEmpty ? nil : cpu[cpu.count / 2], outputDigest: digest)
    }

    /// CPU time consumed by every thread of this process so far, seconds.
    public static func processCPUTime() -> Double {
        var ts = timespec()
        guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 else { return 0 }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Checks the kernel on `device` against the reference at a reduced size: for devices
    /// that model the call instead of running it, so no full-size outputs exist.
    static func verifyReduced(_ w: Workload, on device: any Device) -> String {
        do {
            let small = try Workloads.reduced(w)
            let c = ConformanceCase(op: small.op, inputs: try small.makeInputs(seed: 0xC0FFEE), dtype: small.dtype, label: small.label, seed: 0xC0FFEE)
            let r = ConformanceRunner.runCase(c, on: device)
            switch r.status {
            case .pass: return small.label == w.label ? "yes" : "yes (reduced: \(small.label))"
            case .unsupported: return "unsupported: \(r.message ?? "")"
            default: return "FAIL: \(r.message ?? "")"
            }
        } catch {
            return "FAIL: \(error)"
        }
    }
}
