import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipOpenCL

/// The CPU attention prefill paths other than the default: the flash core's CPU mapping
/// (`attRows=0`, what prefill used before the row-private kernel) and the row-private
/// kernel with other chunk widths and a tiling with several key blocks per split, so the
/// macro variants compile and pass on PoCL too. f32 only: the storage-dtype loads and
/// stores are the same helpers in every tiling, and the default tiling runs all dtypes
/// in the conformance suite (each variant × dtype is a cold PoCL build in CI).
@Suite struct OpenCLAttentionMappingTests {
    static let variants = [
        "attRows=0",
        "attRows=1,rowsPrefill=8/16/2/1,attKC=1,attDC=1",
        "attRows=1,rowsPrefill=12/24/3/1,attKC=3,attDC=3",
    ]

    @Test(arguments: variants)
    func conformance(_ overrides: String) throws {
        guard let base = openCLDevice else { print("skipped: no OpenCL device"); return }
        let d = try OpenCLDevice(entry: base.entry, index: 0, tuningOverrides: overrides)
        if overrides == "attRows=0" { #expect(!d.tuning.attRows) } else { #expect(d.tuning.attRows) }
        let results = ConformanceRunner.run(on: d, options: ConformanceOptions(kernels: [.attention], dtypes: [.f32], collectives: false))
        #expect(!results.isEmpty)
        for r in results where r.status != .pass {
            Issue.record("\(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape): \(r.message ?? "")")
        }
    }
}
