import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipCPU

/// Every kernel table this machine can run (each ISA path, each of its GEMM shapes), as
/// device options: a path only some machines take is tested on every machine that takes it.
let everyCPUPath: [CPUDeviceOptions] = CPUISA.supported.flatMap { isa in
    KernelTable.all(isa).map { CPUDeviceOptions(isa: isa, tile: String($0.gemmName.split(separator: " ").last!)) }
}

@Suite struct CPUConformanceTests {
    /// The whole suite on each path (the default device runs one of them).
    @Test(arguments: everyCPUPath) func everyCasePasses(_ options: CPUDeviceOptions) throws {
        let device = try CPUDevice(options: options)
        let results = ConformanceRunner.run(on: device)
        let bad = results.filter { $0.status != .pass }
        for r in bad { Issue.record("\(device.id) \(r.status) \(r.kernel) \(r.dtype) \(r.shape): \(r.message ?? "")") }
        print("conformance on \(device.id): \(results.count - bad.count)/\(results.count) pass")
        #expect(!results.isEmpty)
    }

    /// The same suite with every block one or two tiles (`cpu:tiles=small`): the parallel,
    /// multi-block, chunked and split-KV paths all run at the suite's small shapes, and the
    /// standard level's boundary cases follow the small blocks.
    @Test func smallTilesPass() throws {
        let device = try CPUBackend().device(profile: "tiles=small", index: nil)
        let results = ConformanceRunner.run(on: device, options: ConformanceOptions(collectives: false))
        let bad = results.filter { $0.status != .pass }
        for r in bad { Issue.record("\(r.status) \(r.kernel) \(r.dtype) \(r.shape) [\(r.path ?? "")]: \(r.message ?? "")") }
        print("conformance on \(device.id): \(results.count - bad.count)/\(results.count) pass")
        #expect(results.count > 1000)
    }
}
