import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipOpenCL

/// The conformance suite (standard level) on the first OpenCL device with the `small` tile
/// preset: several work-groups, K slabs, key blocks, split-KV parts and top-k select passes
/// at the suite's shapes, so a tiling bug that only large shapes reach at the default tiles
/// shows here. f32 only: the 16-bit loads and stores are the same code at either tiling.
@Suite struct OpenCLSmallTilesTests {
    static let device: OpenCLDevice? = openCLDevice.flatMap { try? OpenCLDevice(entry: $0.entry, index: 0, tuningOverrides: "small") }

    @Test func presetIsSmall() throws {
        guard let d = Self.device else { print("skipped: no OpenCL device"); return }
        #expect(d.tuning.tm <= 16 && d.tuning.tk == 8 && d.tuning.sortMax == 64)
        #expect(d.tiling.boundaries(.matmul).contains { $0.dim == "K" && $0.size == 8 })
    }

    @Test(arguments: OpKind.allCases)
    func conformance(_ kind: OpKind) throws {
        guard let d = Self.device else { print("skipped: no OpenCL device"); return }
        let results = ConformanceRunner.run(on: d, options: ConformanceOptions(kernels: [kind], dtypes: [.f32], collectives: false))
        #expect(!results.isEmpty)
        for r in results where r.status != .pass {
            Issue.record("\(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape) [\(r.path ?? "")]: \(r.message ?? "")")
        }
    }
}
