import Foundation
import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipOpenCL

@Test func debugKernels() throws {
    guard let list = ProcessInfo.processInfo.environment["PC_DEBUG_KERNELS"], let d = openCLDevice else { return }
    let kinds = list.split(separator: ",").compactMap { OpKind(name: String($0)) }
    let dts = ProcessInfo.processInfo.environment["PC_DEBUG_DTYPES"].map { $0.split(separator: ",").compactMap { DType(rawValue: String($0)) } }
    for r in ConformanceRunner.run(on: d, options: ConformanceOptions(kernels: kinds, dtypes: dts, collectives: false), progress: { print($0) }) where r.status != .pass {
        print("  -> \(r.message ?? "")")
    }
}
