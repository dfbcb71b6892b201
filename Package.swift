// swift-tools-version: 6.0
// Polychip: a heterogeneous accelerator backend abstraction layer.
// The library targets carry no unsafe compiler flags, so the package stays usable as a
// versioned dependency; SIMD speed comes from runtime ISA dispatch in CPolychipKernels.
import PackageDescription

let package = Package(
    name: "Polychip",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Polychip", targets: ["Polychip"]),
        .library(name: "PolychipConformance", targets: ["PolychipConformance"]),
        .library(name: "PolychipModels", targets: ["PolychipModels"]),
        // Process-per-rank meshes over Open MPI; the other products do not need MPI.
        .library(name: "PolychipMPI", targets: ["PolychipMPI"]),
        .executable(name: "polychip", targets: ["polychip"]),
        // For the libFuzzer package in Fuzz/ and the crasher-replay tests; not an API.
        .library(name: "PolychipFuzzTargets", targets: ["PolychipFuzzTargets"]),
        // The oneDNN backend plugin (docs/plugins.md): `polychip --plugin onednn` finds it next to
        // the executable once `swift build --product PolychipOneDNN` has built it.
        .library(name: "PolychipOneDNN", type: .dynamic, targets: ["PolychipOneDNNPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (pkg-config + apt providers).
        .systemLibrary(name: "CHwloc", path: "Sources/CHwloc", pkgConfig: "hwloc",
                       providers: [.apt(["libhwloc-dev"])]),
        .systemLibrary(name: "CNuma", path: "Sources/CNuma", pkgConfig: "numa",
                       providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL", pkgConfig: "OpenCL",
                       providers: [.apt(["ocl-icd-opencl-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]),

        // The backend plugin ABI: a C header any vendor library implements.
        // layout.c pins the version-1 field offsets at compile time.
        .target(name: "CPolychipPluginABI", path: "backends/plugin/abi"),

        // Core: device protocols, tensors, dtypes, the kernel catalog. No backend code.
        .target(name: "PolychipCore", path: "Sources/PolychipCore"),

        // Backends.
        .target(name: "PolychipReference", dependencies: ["PolychipCore"], path: "backends/reference"),
        // SIMD microkernels in C with per-function target attributes and runtime ISA
        // dispatch (no build flags), used by the CPU backend.
        .target(name: "CPolychipKernels", path: "kernels/cpu", exclude: ["README.md"]),
        // The fast CPU backend: hwloc topology, NUMA placement, pinned thread pool.
        .target(name: "PolychipCPU", dependencies: ["PolychipCore", "CPolychipKernels", "CHwloc", "CNuma"],
                path: "backends/cpu"),

        // OpenCL backend; kernels/opencl/*.cl are embedded at build time by the EmbedFiles
        // plugin, so an installed binary never reads them from the source tree.
        .target(name: "PolychipOpenCL", dependencies: ["PolychipCore", "COpenCL"], path: "backends/opencl",
                plugins: ["EmbedFiles"]),

        // Simulated devices; arithmetic on the CPU engine; backends/profiles/*.json are
        // embedded at build time by the EmbedFiles plugin, so an installed binary has them.
        .target(name: "PolychipSimulated", dependencies: ["PolychipCore", "PolychipReference", "PolychipCPU"],
                path: "backends/simulated", plugins: ["EmbedFiles"]),

        // Build-time embedding of data files (profiles, OpenCL sources) as
        // Swift string literals: the plugin and its tool.
        .executableTarget(name: "PolychipEmbed", path: "Plugins/PolychipEmbed"),
        .plugin(name: "EmbedFiles", capability: .buildTool(), dependencies: ["PolychipEmbed"],
                path: "Plugins/EmbedFiles"),

        // Out-of-tree backends: plugins loaded with dlopen through the C ABI of
        // backends/plugin/abi/include/polychip_backend.h; their devices are NAME:INDEX.
        .target(name: "PolychipPlugin", dependencies: ["PolychipCore", "CPolychipPluginABI"], path: "backends/plugin/host"),
        // A real plugin: oneDNN's primitives behind the ABI, built as its own shared library.
        // Needs Debian's libdnnl-dev (oneDNN 2.x: <oneapi/dnnl/dnnl.h>, libdnnl.so).
        .target(name: "PolychipOneDNNPlugin", dependencies: ["CPolychipPluginABI"], path: "backends/plugin/onednn",
                linkerSettings: [.linkedLibrary("dnnl")]),

        // The umbrella module users import: core re-exported plus every backend registered.
        .target(name: "Polychip", dependencies: ["PolychipCore", "PolychipReference", "PolychipCPU", "PolychipOpenCL",
                                                 "PolychipSimulated", "PolychipPlugin"],
                path: "Sources/Polychip"),

        // Model-level scenarios: the expert-parallel MoE layer on a mesh and the model-scale
        // simulator (GLM-5 and DeepSeek-V3-style configs on device profiles).
        // backends/profiles/published/*.json (published measurements for `simulate --validate`)
        // are embedded by the EmbedFiles plugin.
        .target(name: "PolychipModels", dependencies: ["PolychipCore", "PolychipReference", "PolychipSimulated"],
                path: "Sources/PolychipModels", plugins: ["EmbedFiles"]),

        // The MPI communicator: process-per-rank collectives on device tensors (host-staged).
        .target(name: "PolychipMPI", dependencies: ["PolychipCore", "CMPI"], path: "Sources/PolychipMPI"),

        // Depends on what it uses: the catalog, the oracle, and the models (expert-parallel runs).
        .target(name: "PolychipConformance", dependencies: ["PolychipCore", "PolychipReference", "PolychipModels"],
                path: "Sources/PolychipConformance"),

        .target(name: "PolychipBench", dependencies: ["PolychipCore", "PolychipConformance", "PolychipSimulated"],
                path: "Sources/PolychipBench"),

        // The CLI: commands in a library so tests can drive them in-process.
        .target(name: "PolychipCLI", dependencies: [
            "Polychip", "PolychipConformance", "PolychipBench", "PolychipModels", "PolychipMPI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/PolychipCLI"),
        .executableTarget(name: "polychip", dependencies: ["PolychipCLI"], path: "Sources/polychip"),

        .target(name: "PolychipFuzzTargets", dependencies: ["Polychip"], path: "Sources/PolychipFuzzTargets"),

        .testTarget(name: "PolychipReliabilityTests", dependencies: ["PolychipFuzzTargets", "Polychip", "PolychipConformance",
                                                                  "PolychipModels", "PolychipReference"],
                    path: "Tests/PolychipReliabilityTests"),
        .testTarget(name: "PolychipCoreTests", dependencies: ["PolychipCore"], path: "Tests/PolychipCoreTests",
                    exclude: ["Golden"]),
        .testTarget(name: "PolychipReferenceTests", dependencies: ["PolychipReference", "PolychipCore"],
                    path: "Tests/PolychipReferenceTests"),
        .testTarget(name: "PolychipSimulatedTests", dependencies: ["PolychipSimulated", "PolychipConformance", "Polychip"],
                    path: "Tests/PolychipSimulatedTests"),
        .testTarget(name: "PolychipCPUTests", dependencies: ["PolychipCPU", "CPolychipKernels", "PolychipConformance", "Polychip"],
                    path: "Tests/PolychipCPUTests"),
        .testTarget(name: "PolychipConformanceTests", dependencies: ["PolychipConformance", "Polychip"],
                    path: "Tests/PolychipConformanceTests"),
        .testTarget(name: "PolychipOpenCLTests", dependencies: ["PolychipOpenCL", "PolychipConformance", "Polychip"],
                    path: "Tests/PolychipOpenCLTests"),
        .testTarget(name: "PolychipModelsTests", dependencies: ["PolychipModels", "PolychipConformance", "Polychip", "PolychipReference"],
                    path: "Tests/PolychipModelsTests"),
        // Temp dirs and running the built binary, shared by the bench and CLI tests.
        .target(name: "PolychipTestSupport", dependencies: ["PolychipCore"], path: "Tests/PolychipTestSupport"),
        .testTarget(name: "PolychipBenchTests", dependencies: ["PolychipBench", "PolychipCLI", "Polychip", "polychip", "PolychipTestSupport"],
                    path: "Tests/PolychipBenchTests"),
        // Process-per-rank meshes: unit tests, and the built binary under mpirun (skipped without it).
        .testTarget(name: "PolychipMPITests", dependencies: ["PolychipMPI", "PolychipBench", "Polychip", "PolychipReference", "polychip",
                                                           "PolychipTestSupport"],
                    path: "Tests/PolychipMPITests"),
        // Plugins: the oneDNN plugin and a misbehaving test plugin (built by the tests with cc),
        // crash isolation, case bundles and the JAX runner.
        .testTarget(name: "PolychipPluginTests", dependencies: ["PolychipPlugin", "PolychipConformance", "PolychipCLI", "Polychip",
                                                              "polychip", "PolychipTestSupport"],
                    path: "Tests/PolychipPluginTests", exclude: ["Fixtures"]),
        .testTarget(name: "PolychipCLITests", dependencies: ["PolychipCLI", "Polychip", "polychip", "PolychipTestSupport"],
                    path: "Tests/PolychipCLITests"),
    ],
    swiftLanguageModes: [.v6]
)
