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
}
