// DecoderStackTests.swift — the executable decoder stack: it runs the layer description's
// steps on real data; the reference and the CPU backend agree on it.

import Foundation
import Testing
import Polychip
import PolychipModels
import PolychipReference

@Suite("Executable decoder stack")
struct DecoderStackTests {
    @Test("a 2-layer stack runs on the reference and on cpu:0 with close outputs")
    func referenceAndCPU() throws {
        let stack = try DecoderStack(config: DecoderStackConfig(layers: 2))
        let ref = try stack.run { call, ins in try Reference.evaluate(call.op, ins) }
        let cpu = try Polychip.registry.resolve(["cpu"], fallback: [])[0]
        let q = Queue(device: cpu)
        let dev = try stack.run { call, ins in
            let ts = try ins.map { try cpu.tensor($0) }
            let outs = try call.op.validate(ins.map(\.desc)).map { try cpu.allocate($0) }
            _ = try q.enqueue(call.op, inputs: ts, outputs: outs)
            return try outs.map { try cpu.download($0) }
        }
        let a = ref.output.floats, b = dev.output.floats
        var num = 0.0, den = 0.0
        for i in a.indices {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(a[i]) * Double(a[i])
        }
        print("calls", stack.calls.count, "nmse", num / den, "rms", (den / Double(a.count)).squareRoot())
        #expect(num / den < 1e-8)
    }
}
