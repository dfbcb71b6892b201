import CBenchSupport
import Dispatch
import Foundation
import Polychip

/// A fast deterministic generator for benchmark data (xorshift64*).
public struct FastRandom {
    var state: UInt64
    /// Creates a generator.
    public init(seed: UInt64) { state = seed | 1 }
    /// Next 64 random bits.
    public mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 2685821657736338717
    }
    /// A float in `lo..<hi`.
    public mutating func float(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
}

/// One benchmark case: a kernel call with device-resident inputs and outputs.
public struct Workload: @unchecked Sendable {
    // @unchecked: tensors and the device are only used from the benchmarking thread.
    /// Short name.
    public var name: String
    /// The kernel.
    public var op: Op
    /// The device it runs on.
    public var device: any Device
    /// Inputs on the device.
    public var inputs: [Tensor]
    /// Outputs on the device.
    public var outputs: [Tensor]
    /// FLOPs per call (catalog cost model).
    public var flops: Double
    /// Minimum bytes per call (catalog cost model).
    public var bytes: Double
    let queue: Queue

    /// Runs the kernel once.
    public func run() throws { try queue.enqueue(op, inputs: inputs, outputs: outputs) }

    /// Median seconds over repeats: warm up twice, then repeat until `minSeconds` have
    /// passed and at least `minRuns` runs were made.
    public func median(minSeconds: Double = 1, minRuns: Int = 5, maxRuns: Int = 200) throws -> Double {
        try measure(minSeconds: minSeconds, minRuns: minRuns, maxRuns: maxRuns).wall
    }

    /// Median wall seconds and median process CPU seconds (user + system) per call. CPU
    /// time is far less sensitive to other load on a shared machine than wall time.
    public func measure(minSeconds: Double = 1, minRuns: Int = 5, maxRuns: Int = 200) throws -> (wall: Double, cpu: Double) {
        try run(); try run()
        var times: [Double] = [], cpus: [Double] = []
        let start = Queue.wallClock()
        while times.count < minRuns || (Queue.wallClock() - start < minSeconds && times.count < maxRuns) {
            let c0 = Machine.cpuSeconds()
            let t0 = Queue.wallClock()
            try run()
            times.append(Queue.wallClock() - t0)
            cpus.append(Machine.cpuSeconds() - c0)
        }
        times.sort(); cpus.sort()
        return (times[times.count / 2], cpus[cpus.count / 2])
    }

    init(name: String, op: Op, device: any Device, inputs: [HostTensor]) throws {
        self.name = name; self.op = op; self.device = device
        let descs = inputs.map(\.desc)
        let outs = try op.validate(descs)
        self.inputs = try inputs.map { try device.tensor($0) }
        self.outputs = try outs.map { try device.allocate($0) }
        let cost = op.cost(descs)
        flops = cost.flops; bytes = cost.bytes
        queue = Queue(device: device)
    }
}

/// The issue's benchmark shapes.
public enum Workloads {
    static func floats(_ shape: [Int], _ dtype: DType = .f32, _ rng: inout FastRandom, _ lo: Float = -1, _ hi: Float = 1) throws -> HostTensor {
        let n = shape.reduce(1, *)
        var v = [Float](repeating: 0, count: n)
        for i in 0..<n { v[i] = rng.float(lo, hi) }
        return try HostTensor(shape, dtype, floats: v)
    }

    static func int4(_ lead: [Int], _ n: Int, _ k: Int, group: Int, _ rng: inout FastRandom) throws -> [HostTensor] {
        let count = lead.reduce(1, *) * n * k / 2
        var bytes = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var r = rng.next()
            for _ in 0..<8 where i < count { bytes[i] = UInt8(truncatingIfNeeded: r); r >>= 8; i += 1 }
        }
        let groups = lead.reduce(1, *) * n * (k / group)
        var s = [Float](repeating: 0, count: groups)
        for j in 0..<groups { s[j] = rng.float(0.005, 0.05) }
        return [try HostTensor(TensorDesc(lead + [n, k], .int4), bytes: bytes), try HostTensor(lead + [n, k / group], .f32, floats: s)]
    }

    /// FP32 GEMM `n × n × n`.
    public static func gemm(_ device: any Device, n: Int = 2048, dtype: DType = .f32) throws -> Workload {
        var rng = FastRandom(seed: 1)
        return try Workload(name: "gemm \(dtype) \(n)³", op: .matmul(transposeB: false), device: device,
                            inputs: [try floats([n, n], dtype, &rng), try floats([n, n], dtype, &rng)])
    }

    /// W4A16 GEMV/GEMM `y[M,N] = x[M,K]·Wᵀ`, symmetric groups.
    public static func int4Matmul(_ device: any Device, m: Int = 1, n: Int = 4096, k: Int = 14336, group: Int = 32) throws -> Workload {
        var rng = FastRandom(seed: 2)
        let f = Int4Format(groupSize: group, symmetric: true)
        return try Workload(name: "int4 matmul M\(m) N\(n) K\(k) g\(group)", op: .int4Matmul(f), device: device,
                            inputs: [try floats([m, k], .f32, &rng)] + (try int4([], n, k, group: group, &rng)))
    }

    /// Attention `B × Hq (Hkv) × L × D`, f32.
    public static func attention(_ device: any Device, b: Int = 1, hq: Int = 32, hkv: Int = 8, lq: Int = 2048, lk: Int = 2048,
                                 d: Int = 128, causal: Bool = true) throws -> Workload {
        var rng = FastRandom(seed: 3)
        return try Workload(name: "attention B\(b) H\(hq)/\(hkv) Lq\(lq) Lk\(lk) D\(d)\(causal ? " causal" : "")",
                            op: .attention(AttentionParams(causal: causal)), device: device,
                            inputs: [try floats([b, hq, lq, d], .f32, &rng), try floats([b, hkv, lk, d], .f32, &rng),
                                     try floats([b, hkv, lk, d], .f32, &rng)])
    }

    /// MoE layer with INT4 experts.
    public static func moe(_ device: any Device, tokens: Int = 512, experts: Int = 64, topK: Int = 8, hidden: Int = 2048,
                           intermediate: Int = 1024, group: Int = 32) throws -> Workload {
        var rng = FastRandom(seed: 4)
        let p = MoELayerParams(router: RouterParams(scoring: .softmax, topK: topK), experts: .int4(Int4Format(groupSize: group, symmetric: true)))
        var ins = [try floats([tokens, hidden], .f32, &rng), try floats([experts, hidden], .f32, &rng, -0.05, 0.05)]
        ins += try int4([experts], intermediate, hidden, group: group, &rng)
        ins += try int4([experts], intermediate, hidden, group: group, &rng)
        ins += try int4([experts], hidden, intermediate, group: group, &rng)
        return try Workload(name: "moe T\(tokens) E\(experts) k\(topK) H\(hidden) F\(intermediate) int4 g\(group)",
                            op: .moeLayer(p), device: device, inputs: ins)
    }

    /// The GEMM floors of the MoE layer: for each GEMM, max(FLOPs / peak, bytes / bandwidth).
    public static func moeGemmFloor(tokens: Int = 512, experts: Int = 64, topK: Int = 8, hidden: Int = 2048, intermediate: Int = 1024,
                                    group: Int = 32, peak: Double, bandwidth: Double) -> Double {
        let rows = Double(tokens * topK)
        let (h, f, e) = (Double(hidden), Double(intermediate), Double(experts))
        let w4 = { (n: Double, k: Double) in e * (n * k / 2 + n * k / Double(group) * 4) }
        func floor(_ flops: Double, _ bytes: Double) -> Double { max(flops / peak, bytes / bandwidth) }
        let router = floor(2 * Double(tokens) * e * h, (Double(tokens) * h + e * h + Double(tokens) * e) * 4)
        let gate = floor(2 * rows * f * h, w4(f, h) + Double(tokens) * h * 4 + rows * f * 4)
        let down = floor(2 * rows * h * f, w4(h, f) + rows * f * 4 + rows * h * 4)
        return router + 2 * gate + down
    }
}

/// Machine probes, measured in the same run as the kernels.
public enum Machine {
    /// Process CPU time (user + system) in seconds.
    public static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) * 1e-6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) * 1e-6
    }

    /// Sustained f32 FMA rate (FLOP/s) of `threads` threads running concurrently: the best
    /// of many short trials (on a shared machine the best trial is the least disturbed).
    public static func fmaPeak(threads: Int, trials: Int = 15) -> Double {
        let iters: Int64 = 4_000_000
        _ = pcb_fma_burn(iters)
        var best = 0.0
        for _ in 0..<trials {
            let flops = UnsafeMutablePointer<Double>.allocate(capacity: threads)
            defer { flops.deallocate() }
            let addr = Int(bitPattern: flops)
            let t0 = Queue.wallClock()
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                UnsafeMutablePointer<Double>(bitPattern: addr)![i] = pcb_fma_burn(iters)
            }
            let dt = Queue.wallClock() - t0
            best = max(best, (0..<threads).reduce(0) { $0 + flops[$1] } / dt)
        }
        return best
    }

    /// Read bandwidth (bytes/s) of `threads` threads each summing its part of a 1 GiB array.
    public static func readBandwidth(threads: Int, bytes: Int = 1 << 30) -> Double {
        let n = bytes / 4
        let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { p.deallocate() }
        let per = n / threads
        let addr = Int(bitPattern: p)
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            (UnsafeMutablePointer<Float>(bitPattern: addr)! + i * per).initialize(repeating: 1, count: per)
        }
        var best = 0.0
        for _ in 0..<5 {
            let t0 = Queue.wallClock()
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                _ = pcb_read_sum(UnsafePointer<Float>(bitPattern: addr)! + i * per, per * 4)
            }
            best = max(best, Double(per * threads * 4) / (Queue.wallClock() - t0))
        }
        return best
    }
}
