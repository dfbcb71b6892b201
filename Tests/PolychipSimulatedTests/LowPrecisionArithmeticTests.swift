import Foundation
import Testing
import Polychip
@testable import PolychipConformance
import PolychipReference

/// The simulated devices' own arithmetic (a 16-bit accumulator, set with
/// `numerics.accumulator.*`) is not the reference's and fails conformance's tolerances by
/// design, so conformance cannot check it. Here each kernel on that path is held to the
/// reference within the error a 16-bit accumulator explains, on the quick cases: a wrong KV
/// head, a dropped LSE term, an off-by-one mask or a wrong mean is far outside it.
@Suite("Low-precision simulated arithmetic stays within its accumulator's error")
struct LowPrecisionArithmeticTests {
    static let kinds: [OpKind] = [.matmul, .groupedMatmul, .int4Matmul, .int4GroupedMatmul, .attention, .sparseAttention,
                                  .lightningIndexer, .softmax, .rmsNorm]

    /// NMSE bound per accumulator: the quick cases measure at most 6.0e-7 (f16) and 3.9e-4
    /// (bf16) on this code; the bounds leave 20× headroom.
    static func bound(_ acc: String) -> Double { acc == "f16" ? 1.2e-5 : 8e-3 }

    @Test("quick cases near the reference", arguments: ["f16", "bf16"])
    func nearTheReference(acc: String) throws {
        let settings = ["matmul", "attention", "vector"].map { "numerics.accumulator.\($0)=\(acc)" }
        let device = try SimulatedBackend(settings: settings).device(profile: "ascend-910b", index: 7)
        for kind in Self.kinds {
            for c in try CaseGenerator.cases(kind, dtype: .f32, seed: 11) {
                let expected = try Reference.evaluate(c.op, c.inputs)
                let got = try device.run(c.op, c.inputs)
                for (i, (e, g)) in zip(expected, got).enumerated() where e.desc.dtype.isFloat {
                    // Non-finite entries must agree exactly (Comparison's rule); the rest within the bound.
                    switch Comparison.floatNMSE(e.floats, g.floats) {
                    case .failure(let why):
                        Issue.record("\(kind.name) \(c.label) output \(i): \(why)")
                    case .value(let nmse):
                        #expect(nmse <= Self.bound(acc), "\(kind.name) \(c.label) output \(i): NMSE \(nmse) with a \(acc) accumulator")
                    }
                }
            }
        }
    }
}

/// Conformance on a profile that accumulates in 16 bits: judged within the accumulator's
/// error (`Comparison.accumulatorFactor`), with the contract's non-finite rules unchanged.
@Suite("Conformance on a 16-bit-accumulator profile")
struct LowPrecisionConformanceTests {
    @Test("quick level passes on every kernel the accumulator changes", arguments: ["f16", "bf16"])
    func quickPasses(acc: String) throws {
        let settings = ["matmul", "attention", "vector"].map { "numerics.accumulator.\($0)=\(acc)" }
        let device = try SimulatedBackend(settings: settings).device(profile: "ascend-910b", index: 6)
        var options = ConformanceOptions()
        options.kernels = LowPrecisionArithmeticTests.kinds
        options.level = .quick
        let results = ConformanceRunner.run(on: device, options: options)
        #expect(!results.isEmpty)
        for r in results where r.status != .pass {
            Issue.record("\(r.kernel) \(r.dtype) \(r.shape): \(r.status) \(r.message ?? "")")
        }
        // The accumulator widens the bound; an f32-accumulating device keeps the contract's.
        #expect(device.accumulator(for: .attention) == (acc == "f16" ? .f16 : .bf16))
        #expect(try SimulatedBackend().device(profile: "ascend-910b", index: 0).accumulator(for: .attention) == nil)
    }
}
