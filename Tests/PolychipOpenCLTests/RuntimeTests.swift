import Testing
import PolychipCore
@testable import PolychipOpenCL

@Suite struct RuntimeTests {
    @Test func enumeration() throws {
        let b = OpenCLBackend()
        print(b.status)
        for d in b.openCLDevices() { print(d.id, d.info.name, d.info.details) }
        let src = "__kernel void f(__global float *x) { x[get_global_id(0)] *= 2.0f; }"
        let d = try #require(b.openCLDevices().first)
        let p = try d.buildProgram(name: "t", source: src)
        print(p.origin, p.kernelNames, OpenCLKernelSources.files.keys.sorted())
    }
}
