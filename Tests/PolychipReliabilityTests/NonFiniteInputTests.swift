import Foundation
import Testing
import Polychip
import PolychipConformance
import PolychipReference

/// NaN and ±Inf inputs give the outputs docs/kernels.md defines, identical (NaN positions,
/// infinities, finite values within tolerance) on every backend.
@Suite struct NonFiniteInputTests {
    /// Poisons the first float input with NaN, +Inf and −Inf at fixed positions.
    static func poisoned(_ c: ConformanceCase) throws -> [HostTensor] {
        var ins = c.inputs
        guard let i = ins.firstIndex(where: { $0.desc.dtype.isFloat }) else { return ins }
        var v = ins[i].floats
        let specials: [Float] = [.nan, .infinity, -.infinity]
        for (j, s) in specials.enumerated() where v.count > 3 * j + 1 { v[3 * j + 1] = s }
        ins[i] = try HostTensor(ins[i].desc.shape, ins[i].desc.dtype, floats: v)
        return ins
    }

    @Test(arguments: ["cpu", "sim:ascend-910b"])
    func nonFiniteInputsMatchTheReference(_ selector: String) throws {
        let device = try Polychip.device(selector)
        var mismatches: [String] = []
        for kind in OpKind.allCases where kind != .quantizeInt4 {
            for c in try CaseGenerator.cases(kind, dtype: .f32, seed: 5).prefix(3) {
                let ins = try Self.poisoned(c)
                let expected: [HostTensor]
                do { expected = try Reference.evaluate(c.op, ins) } catch { continue }
                let got: [HostTensor]
                do { got = try device.run(c.op, ins) } catch {
                    mismatches.append("\(kind.name) \(c.label): threw \(error)"); continue
                }
                for (n, (e, g)) in zip(c.op.outputNames, zip(expected, got)) {
                    if e.desc.dtype.isFloat {
                        let (a, b) = (e.floats, g.floats)
                        if let k = a.indices.first(where: { a[$0].isNaN != b[$0].isNaN || (a[$0].isInfinite && a[$0] != b[$0]) }) {
                            mismatches.append("\(kind.name) \(c.label) \(n)[\(k)]: \(b[k]) vs reference \(a[k])")
                        }
                    } else if e != g, kind != .moeRouter {
                        mismatches.append("\(kind.name) \(c.label) \(n): integer output differs")
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches:\n\(mismatches.prefix(40).joined(separator: "\n"))")
    }
}
