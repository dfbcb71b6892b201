import Foundation
import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipOpenCL

/// The conformance suite on the first OpenCL device (PoCL in CI), one test per kernel so
/// a failure names its kernel; every dtype the suite checks for that kernel.
@Suite struct OpenCLConformanceTests {
    @Test(arguments: OpKind.allCases)
    func conformance(_ kind: OpKind) throws {
        guard let d = openCLDevice else {
            print("skipped: no OpenCL device (\(OpenCLBackend().status))")
            return
        }
        let results = ConformanceRunner.run(on: d, options: ConformanceOptions(kernels: [kind], collectives: false))
        #expect(!results.isEmpty)
        for r in results where r.status != .pass {
            Issue.record("\(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape): \(r.message ?? "")")
        }
    }
}
