import Testing
import PolychipCore
import PolychipConformance
@testable import PolychipOpenCL

/// The GPU code shapes of the kernels (float4 GEMM reads with register prefetch, the
/// register-tiled prefill attention, 16-byte INT4 GEMV loads, the scalar row kernels) run on
/// the CI's OpenCL device (PoCL) too, so they are checked on every run and not only when a
/// GPU is at hand. Tiles are smaller than the H100's to keep PoCL's compile time down; the
/// interior and edge paths are the same code.
@Suite struct OpenCLGPUMappingTests {
    static let gpuShapes = "gemmCPU=0,tm=64,tn=64,tk=8,wptm=8,wptn=8,lpad=4,gemmPrefetch=1,"
        + "gvVec=0,gvWide=1,gvWG=64,gvRows=8,attCPU=0,attTiled=1,attRows=0,rowVec=0,ixCPU=0,it=16,iS=64,rt=2,rs=4"

    static let device: OpenCLDevice? = openCLDevice.flatMap {
        try? OpenCLDevice(entry: $0.entry, index: 0, tuningOverrides: gpuShapes)
    }

    @Test("the tuning override selects the GPU mappings")
    func mappings() throws {
        guard let d = Self.device else { print("skipped: no OpenCL device"); return }
        #expect(!d.tuning.gemmCPU && d.tuning.gemmPrefetch && d.tuning.attTiled && !d.tuning.attRows && !d.tuning.gvVec
                && !d.tuning.rowVec && !d.tuning.ixCPU)
        #expect(d.tuning.tm == 64 && d.tuning.tk == 8 && d.tuning.lpad == 4)
    }

    @Test(arguments: [OpKind.matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul, .attention, .softmax, .moeLayer, .lightningIndexer])
    func conformance(_ kind: OpKind) throws {
        guard let d = Self.device else { print("skipped: no OpenCL device"); return }
        let results = ConformanceRunner.run(on: d, options: ConformanceOptions(kernels: [kind], dtypes: [.f32, .bf16], collectives: false))
        #expect(!results.isEmpty)
        for r in results where r.status != .pass {
            Issue.record("\(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape): \(r.message ?? "")")
        }
    }
}
