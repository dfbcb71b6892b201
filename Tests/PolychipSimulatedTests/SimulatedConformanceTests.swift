// SimulatedConformanceTests.swift — the whole conformance suite (every kernel, every float
// dtype, the collectives) on every bundled profile: what `polychip conform --device sim:NAME`
// runs. About 2–4 s per profile in a debug build.

import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipSimulated

@Suite("Conformance on the bundled profiles")
struct SimulatedConformanceTests {
    @Test("conformance passes", arguments: ["ascend-910b", "ascend-910c", "enflame-t20", "h100-opencl", "h100-sxm", "hygon-bw200",
                                            "iluvatar-bi150", "kunlun-r300", "mlu370-x8", "mlu590", "mtt-s4000"])
    func conformance(_ profile: String) throws {
        let device = try SimulatedBackend().device(profile: profile, index: 0)
        let results = ConformanceRunner.run(on: device)
        #expect(Set(results.map(\.kernel)).isSuperset(of: OpKind.allCases.map(\.name)))
        #expect(results.count > 200)
        for r in results where r.status != .pass {
            Issue.record("\(r.status) \(r.kernel) \(r.dtype) \(r.shape) on \(device.id): \(r.message ?? "")")
        }
    }
}
