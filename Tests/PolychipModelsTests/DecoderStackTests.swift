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

@Suite("Decoder stack weights")
struct DecoderWeightsTests {
    /// Float weights written as `NAME.npy` and loaded under w4a8 are quantized on load exactly
    /// as the seeded w4a8 stack quantizes the same values; a missing tensor is a typed error.
    @Test("float .npy weights load, quantize on load like the seeded stack, and a missing one is named")
    func npyRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("polychip-weights-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let float = DecoderStackConfig(layers: 1, tokens: 8, weights: .bf16)
        for (key, t) in try DecoderWeights.seeded(float).tensors {
            try NumPyFile.write(t, path: dir.appendingPathComponent(key + ".npy").path)
        }
        let w4a8 = DecoderStackConfig(layers: 1, tokens: 8)
        let loaded = try DecoderWeights.load(w4a8, from: NumPyDirectoryWeights(directory: dir.path))
        let seeded = try DecoderWeights.seeded(w4a8)
        #expect(Set(loaded.tensors.keys) == Set(seeded.tensors.keys))
        for (key, t) in seeded.tensors { #expect(loaded.tensors[key] == t, "\(key)") }
        let a = try DecoderStack(config: w4a8, weights: loaded).run { call, ins in try Reference.evaluate(call.op, ins) }
        let b = try DecoderStack(config: w4a8).run { call, ins in try Reference.evaluate(call.op, ins) }
        #expect(a.output == b.output)

        try FileManager.default.removeItem(at: dir.appendingPathComponent("layers.0.moe.router_gemm.weight.npy"))
        #expect { _ = try DecoderWeights.load(w4a8, from: NumPyDirectoryWeights(directory: dir.path)) } throws: { error in
            "\(error)".contains("layers.0.moe.router_gemm")
        }
    }
}
