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

@Test func debugBuildTiming() throws {
    guard ProcessInfo.processInfo.environment["PC_DEBUG_TIMING"] != nil, let d = openCLDevice else { return }
    for file in CLFile.allCases {
        let t0 = Date()
        let extra: [(String, Int)] = file == .attention ? [("HD", 64), ("HDV", 64)] : []
        _ = try d.catalogProgram(file, dtype: .f32, extra)
        print(file, "build", Date().timeIntervalSince(t0))
    }
    for kind in [OpKind.matmul, .softmax, .attention, .moeLayer] {
        let t0 = Date()
        _ = ConformanceRunner.run(on: d, options: ConformanceOptions(kernels: [kind], dtypes: [.f32], collectives: false))
        print(kind, "run", Date().timeIntervalSince(t0))
    }
}

@Test func debugTileTiming() throws {
    guard let spec = ProcessInfo.processInfo.environment["PC_DEBUG_TILES"], let d = openCLDevice else { return }
    let parts = spec.split(separator: ";")
    let file = CLFile(rawValue: String(parts[0]))!
    let macros = parts.dropFirst().map { p -> (String, Int) in let kv = p.split(separator: "="); return (String(kv[0]), Int(kv[1])!) }
    let t0 = Date()
    _ = try d.catalogProgram(file, dtype: .f32, macros)
    print("BUILD", spec, Date().timeIntervalSince(t0))
}
