// swift-tools-version: 6.1
// Benchmarks of the Polychip CPU backend: ordo-one/benchmark suites (`swift package benchmark`)
// and `polychip-cpu-bench`, a plain median timer that also measures the machine's FMA peak
// and read bandwidth so figures can be quoted against the roofline in the same run.
import PackageDescription

let package = Package(
    name: "PolychipBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Polychip", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // FMA-peak and read-bandwidth probes (per-function target attributes, no build flags).
        .target(name: "CBenchSupport", path: "Sources/CBenchSupport"),
        .target(name: "BenchWorkloads", dependencies: [.product(name: "Polychip", package: "Polychip"), "CBenchSupport"],
                path: "Sources/BenchWorkloads"),
        .executableTarget(name: "polychip-cpu-bench", dependencies: ["BenchWorkloads"], path: "Sources/polychip-cpu-bench"),
        .executableTarget(
            name: "CPUKernels",
            dependencies: ["BenchWorkloads", .product(name: "Benchmark", package: "package-benchmark")],
            path: "Benchmarks/CPUKernels",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
