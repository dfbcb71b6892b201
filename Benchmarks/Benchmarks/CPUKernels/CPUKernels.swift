// ordo-one/benchmark suite for the CPU backend: `swift package benchmark` in Benchmarks/.
import Benchmark
import BenchWorkloads
import Polychip

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], warmupIterations: 2,
                                           maxDuration: .seconds(5), maxIterations: 50)
    func register(_ name: String, _ make: @escaping @Sendable () throws -> Workload) {
        Benchmark(name) { benchmark in
            let w = try make()
            try w.run()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { try w.run() }
        }
    }
    register("GEMM f32 2048x2048x2048") { try Workloads.gemm(try Polychip.device("cpu")) }
    register("INT4 GEMV N4096 K14336 M1 g32") { try Workloads.int4Matmul(try Polychip.device("cpu")) }
    register("Attention causal B1 H32 KV8 L2048 D128") { try Workloads.attention(try Polychip.device("cpu")) }
    register("MoE layer E64 top8 H2048 F1024 T512 int4") { try Workloads.moe(try Polychip.device("cpu")) }
}
