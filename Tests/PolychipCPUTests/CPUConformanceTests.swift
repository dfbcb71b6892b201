import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipCPU

@Suite struct CPUConformanceTests {
    @Test func everyCasePasses() throws {
        let device = try CPUBackend().device(profile: nil, index: nil)
        let results = ConformanceRunner.run(on: device)
        let bad = results.filter { $0.status != .pass }
        for r in bad { Issue.record("\(r.status) \(r.kernel) \(r.dtype) \(r.shape): \(r.message ?? "")") }
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
