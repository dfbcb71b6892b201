// polychip-cpu-bench: medians of the CPU backend's benchmark shapes, with the machine's
// FMA peak and read bandwidth measured in the same run.
//   polychip-cpu-bench [machine] [gemm] [gemm1] [gemm16] [int4] [attention] [attnfull] [decode] [moe] [--json]
// With no kernel names it runs them all.
import BenchWorkloads
import Foundation
import Polychip
import PolychipCPU

var args = CommandLine.arguments.dropFirst()
let json = args.contains("--json")
args.removeAll { $0 == "--json" }
let all = ["machine", "gemm", "gemm1", "gemm16", "int4", "attention", "attnfull", "decode", "moe"]
let selected = args.isEmpty ? all : Array(args)

struct Row: Codable { var name: String; var device: String; var seconds: Double; var gflops: Double; var gbps: Double; var note: String; var cpuSeconds: Double? }
var rows: [Row] = []
let device = try Polychip.device("cpu")
let threads = device.info.computeUnits
var peak = 0.0, peak1 = 0.0, bandwidth = 0.0

nonisolated(unsafe) var lastCPU = 0.0

/// Median wall time of a workload; also records the median CPU time per call.
@MainActor func time(_ w: Workload, minRuns: Int = 5, maxRuns: Int = 200) throws -> Double {
    let m = try w.measure(minSeconds: 1, minRuns: minRuns, maxRuns: maxRuns)
    lastCPU = m.cpu
    return m.wall
}

@MainActor func report(_ w: Workload, _ sec: Double, note: String = "") {
    let r = Row(name: w.name, device: w.device.id, seconds: sec, gflops: w.flops / sec / 1e9, gbps: w.bytes / sec / 1e9, note: note,
                cpuSeconds: lastCPU)
    rows.append(r)
    if !json {
        // Paired runs (lastCPU = 0) have no CPU time of their own.
        let cpu = lastCPU > 0 ? String(format: "cpu %8.3f ms (%.1f GFLOP/cpu-s)", lastCPU * 1e3, w.flops / lastCPU / 1e9) : "cpu        -"
        print(String(format: "%-52@ %-16@ %10.3f ms %9.1f GFLOP/s %8.2f GB/s  %@  %@", r.name as NSString,
                     r.device as NSString, sec * 1e3, r.gflops, r.gbps, cpu as NSString, note as NSString))
    }
}

if !json {
    print("device \(device.id): \(device.info.name), isa \(device.info.details["isa"] ?? "?"), threads \(threads), \(device.info.details["binding"] ?? "")")
}
if selected.contains("machine") || selected.contains("moe") {
    peak = Machine.fmaPeak(threads: threads)
    peak1 = Machine.fmaPeak(threads: 1)
    bandwidth = Machine.readBandwidth(threads: threads)
    rows.append(Row(name: "machine fma peak", device: "\(threads) threads", seconds: 0, gflops: peak / 1e9, gbps: 0, note: ""))
    rows.append(Row(name: "machine read bandwidth", device: "\(threads) threads", seconds: 0, gflops: 0, gbps: bandwidth / 1e9, note: ""))
    rows.append(Row(name: "machine fma peak 1 thread", device: "1 thread", seconds: 0, gflops: peak1 / 1e9, gbps: 0, note: ""))
    // On a shared machine concurrent threads disturb each other; the peak of the cores
    // used is at least threads × the one-thread rate.
    peak = max(peak, Double(threads) * peak1)
    if !json {
        print(String(format: "FMA peak: %.1f GFLOP/s (%d threads), %.1f GFLOP/s (1 thread); read bandwidth %.2f GB/s", peak / 1e9, threads, peak1 / 1e9, bandwidth / 1e9))
    }
}
func pct(_ v: Double, _ of: Double) -> String { of > 0 ? String(format: "%.0f%%", 100 * v / of) : "-" }

if selected.contains("gemm") {
    let w = try Workloads.gemm(device)
    let s = try time(w)
    report(w, s, note: "\(pct(w.flops / s, peak)) of FMA peak")
}
if selected.contains("gemm1") {
    let d1 = try CPUDevice(options: CPUDeviceOptions(threads: 1))
    let w = try Workloads.gemm(d1)
    let s = try time(w)
    report(w, s, note: "1 thread, \(pct(w.flops / s, peak1)) of 1-thread peak")
}
if selected.contains("gemm16") {
    for dt in [DType.f16, .bf16] {
        let w = try Workloads.gemm(device, dtype: dt)
        report(w, try time(w))
    }
}
if selected.contains("int4") {
    for g in [32, 128] {
        let w = try Workloads.int4Matmul(device, group: g)
        let s = try time(w, minRuns: 20, maxRuns: 2000)
        let wbytes = Double(4096 * 14336 / 2)
        report(w, s, note: String(format: "weights %.1f GB/s = %@ of read bw", wbytes / s / 1e9, pct(wbytes / s, bandwidth)))
    }
}
if selected.contains("attention") {
    let w = try Workloads.attention(device)
    let s = try time(w)
    report(w, s, note: "\(pct(w.flops / s, peak)) of FMA peak")
}
if selected.contains("attnfull") {
    let w = try Workloads.attention(device, causal: false)
    let s = try time(w)
    report(w, s, note: "\(pct(w.flops / s, peak)) of FMA peak")
}
if selected.contains("decode") {
    let w = try Workloads.attention(device, lq: 1, lk: 8192)
    let s = try time(w, minRuns: 20, maxRuns: 2000)
    report(w, s, note: "decode, \(pct(w.bytes / s, bandwidth)) of read bw")
}
if selected.contains("moe") {
    let w = try Workloads.moe(device)
    let s = try time(w)
    let floor = Workloads.moeGemmFloor(peak: peak, bandwidth: bandwidth)
    report(w, s, note: String(format: "GEMM floor %.1f ms, ratio %.2f×", floor * 1e3, s / floor))
}
/// Paired, interleaved timing of two closures: call A, call B, repeat; returns the medians and
/// the median of the per-pair ratios (robust on a shared machine: both see the same load).
func paired(_ pairs: Int, _ a: () throws -> Void, _ b: () throws -> Void) rethrows -> (a: Double, b: Double, ratio: Double) {
    try a(); try b(); try a(); try b()
    var ta: [Double] = [], tb: [Double] = [], r: [Double] = []
    for _ in 0..<pairs {
        var t0 = Queue.wallClock(); try a(); let x = Queue.wallClock() - t0
        t0 = Queue.wallClock(); try b(); let y = Queue.wallClock() - t0
        ta.append(x); tb.append(y); r.append(y / x)
    }
    ta.sort(); tb.sort(); r.sort()
    return (ta[pairs / 2], tb[pairs / 2], r[pairs / 2])
}

if selected.contains("gemmpair") {
    // OpenBLAS as numpy ships it, called in-process and interleaved with ours.
    let path = ProcessInfo.processInfo.environment["POLYCHIP_OPENBLAS"] ?? ""
    guard let h = dlopen(path, RTLD_NOW), let sym = dlsym(h, "scipy_cblas_sgemm64_") ?? dlsym(h, "cblas_sgemm") else {
        print("gemmpair: set POLYCHIP_OPENBLAS to numpy's libscipy_openblas64_*.so"); exit(2)
    }
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int64, Int64, Int64, Float, UnsafePointer<Float>, Int64,
                                      UnsafePointer<Float>, Int64, Float, UnsafeMutablePointer<Float>, Int64) -> Void
    let sgemm = unsafeBitCast(sym, to: SGEMM.self)
    let n = 2048
    let w = try Workloads.gemm(device, n: n)
    var rng = FastRandom(seed: 9)
    let a = (0..<(n * n)).map { _ in rng.float(0, 1) }, b = (0..<(n * n)).map { _ in rng.float(0, 1) }
    var c = [Float](repeating: 0, count: n * n)
    let r = try a.withUnsafeBufferPointer { pa in
        try b.withUnsafeBufferPointer { pb in
            try c.withUnsafeMutableBufferPointer { pc in
                try paired(15, { try w.run() }, {
                    sgemm(101, 111, 111, Int64(n), Int64(n), Int64(n), 1, pa.baseAddress!, Int64(n), pb.baseAddress!, Int64(n), 0, pc.baseAddress!, Int64(n))
                })
            }
        }
    }
    lastCPU = 0
    report(w, r.a, note: String(format: "paired with OpenBLAS: %.1f ms; speed vs OpenBLAS %.2f× (median of pair ratios)", r.b * 1e3, r.ratio))
    rows.append(Row(name: "openblas sgemm 2048³ (paired)", device: "numpy's OpenBLAS", seconds: r.b, gflops: w.flops / r.b / 1e9, gbps: 0,
                    note: "ratio \(r.ratio)", cpuSeconds: nil))
}
if selected.contains("scalingpair") {
    let d1 = try CPUDevice(options: CPUDeviceOptions(threads: 1))
    let w1 = try Workloads.gemm(d1), w2 = try Workloads.gemm(device)
    let r = try paired(9, { try w2.run() }, { try w1.run() })
    lastCPU = 0
    report(w2, r.a, note: String(format: "paired with 1 thread: %.1f ms; 2 threads vs 1: %.2f× (median of pair ratios)", r.b * 1e3, r.ratio))
    rows.append(Row(name: "gemm f32 2048³ 1 thread (paired)", device: d1.id, seconds: r.b, gflops: w1.flops / r.b / 1e9, gbps: 0,
                    note: "ratio \(r.ratio)", cpuSeconds: nil))
}
if json {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try enc.encode(rows), as: UTF8.self))
}
