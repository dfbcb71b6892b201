import Foundation
import Testing
import Polychip
import PolychipConformance
import PolychipReference

/// 64 tasks submit 10,000 kernels in total across the cpu, simulated (and, when present,
/// OpenCL) devices through shared queues; every result is checked against the reference and
/// repeated submissions of the same case on the same device must give identical bytes.
@Suite struct ConcurrencyStressTests {
    final class Shared: Sendable {
        let firstResult = Locked([String: [HostTensor]]())
        let failures = Locked([String]())
    }

    struct Case: Sendable { var op: Op; var inputs: [HostTensor]; var expected: [HostTensor] }

    static func cases() throws -> [Case] {
        var out: [Case] = []
        for kind in [OpKind.matmul, .softmax, .add, .rmsNorm, .int4Matmul, .topK, .moeRouter, .attention] {
            let c = try CaseGenerator.cases(kind, dtype: .f32, seed: 99)[1]
            out.append(Case(op: c.op, inputs: c.inputs, expected: try Reference.evaluate(c.op, c.inputs)))
        }
        return out
    }

    @Test func sixtyFourTasksTenThousandKernels() async throws {
        let cases = try Self.cases()
        var list: [any Device] = [try Polychip.device("cpu"), try Polychip.device("sim:ascend-910b:0"), try Polychip.device("sim:mtt-s4000:1")]
        if let ocl = Polychip.registry.backend(named: "opencl"), let d = try? ocl.devices().first { list.append(d) }
        let devices = list
        let queues = devices.map { Queue(device: $0) }
        let state = Shared()
        let total = 10_000, tasks = 64
        try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var done = 0
                    var i = t
                    while i < total {
                        let c = cases[i % cases.count]
                        let di = (i / cases.count) % devices.count
                        let d = devices[di]
                        let ins = try c.inputs.map { try d.tensor($0) }
                        let outs = try c.expected.map { try d.allocate($0.desc) }
                        try queues[di].enqueue(c.op, inputs: ins, outputs: outs)
                        let got = try outs.map { try d.download($0) }
                        let key = "\(d.id)#\(i % cases.count)"
                        let first = state.firstResult.withLock { m -> [HostTensor] in
                            if let f = m[key] { return f }
                            m[key] = got
                            return got
                        }
                        if first != got { state.failures.withLock { $0.append("\(key): result changed between runs") } }
                        for (e, g) in zip(c.expected, got) where e.desc.dtype.isFloat {
                            var num = 0.0, den = 0.0
                            for (a, b) in zip(e.floats, g.floats) where a.isFinite {
                                num += Double(a - b) * Double(a - b); den += Double(a) * Double(a)
                            }
                            if den > 0 && num / den > c.op.kind.tolerance(.f32) { state.failures.withLock { $0.append("\(key): NMSE \(num / den)") } }
                        }
                        done += 1
                        i += tasks
                    }
                    return done
                }
            }
            var n = 0
            for try await k in group { n += k }
            #expect(n == total)
        }
        let f = state.failures.withLock { $0 }
        #expect(f.isEmpty, "\(f.prefix(5))")
        #expect(queues.reduce(0) { $0 + $1.records.count } == total)
    }
}
