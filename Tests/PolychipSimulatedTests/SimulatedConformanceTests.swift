// SimulatedConformanceTests.swift — the conformance suite (every kernel, every float dtype,
// the collectives) on every bundled profile: what `polychip conform --device sim:NAME` runs.
// Every profile computes through the CPU engine, whose tiling the CPU tests check at the
// standard level; here the standard level runs on the profiles whose arithmetic differs
// (INT4 held in int8, INT4 expanded into bf16, a dtype emulated) and the quick level on the
// rest, whose arithmetic is the engine's own.

import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipSimulated

@Suite("Conformance on the bundled profiles")
struct SimulatedConformanceTests {
    /// Profiles with arithmetic of their own: INT4 through int8 (910C), INT4 expanded into
    /// bf16 (S4000), bf16 emulated (R300).
    static let standardProfiles: Set<String> = ["ascend-910c", "mtt-s4000", "kunlun-r300"]

    @Test("conformance passes", arguments: ["ascend-910b", "ascend-910c", "enflame-t20", "h100-opencl", "h100-sxm", "hygon-bw200",
                                            "iluvatar-bi150", "kunlun-r300", "mlu370-x8", "mlu590", "mtt-s4000"])
    func conformance(_ profile: String) throws {
        let device = try SimulatedBackend().device(profile: profile, index: 0)
        let level: ConformanceLevel = Self.standardProfiles.contains(profile) ? .standard : .quick
        let results = ConformanceRunner.run(on: device, options: ConformanceOptions(level: level))
        #expect(Set(results.map(\.kernel)).isSuperset(of: OpKind.allCases.map(\.name)))
        #expect(results.count > 200)
        for r in results where r.status != .pass {
            Issue.record("\(r.status) \(r.kernel) \(r.dtype) \(r.shape) on \(device.id): \(r.message ?? "")")
        }
    }
}
