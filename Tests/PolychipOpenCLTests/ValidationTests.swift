import Testing
import PolychipCore
import PolychipReference
@testable import PolychipOpenCL

/// Data-dependent validation throws exactly the reference backend's errors, before
/// anything is launched, and leaves the outputs untouched.
@Suite struct ValidationTests {
    /// Runs `op` on the reference and on the OpenCL device; both must throw the same error,
    /// and the OpenCL outputs (pre-filled with a pattern) must be unchanged.
    func expectSameError(_ op: Op, _ inputs: [HostTensor]) throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        var refError: PolychipError?
        do { _ = try Reference.evaluate(op, inputs) } catch let e as PolychipError { refError = e }
        let expected = try #require(refError, "the reference accepted \(op)")
        let ins = try inputs.map { try d.tensor($0) }
        let outDescs = try op.validate(inputs.map(\.desc))
        let fills = try outDescs.map { try HostTensor($0, bytes: [UInt8](repeating: 0x3C, count: $0.byteCount)) }
        let outs = try fills.map { try d.tensor($0) }
        #expect(throws: expected) { try Queue(device: d).enqueue(op, inputs: ins, outputs: outs) }
        for (o, f) in zip(outs, fills) { #expect(try d.download(o) == f) }
    }

    @Test func groupedMatmulOffsets() throws {
        let x = try HostTensor([4, 3], floats: (0..<12).map { Float($0) / 7 })
        let w = try HostTensor([2, 3, 5], floats: (0..<30).map { Float($0) / 11 })
        try expectSameError(.groupedMatmul(transposeB: false), [x, w, try HostTensor([3], int32s: [0, 3, 2])])
        try expectSameError(.groupedMatmul(transposeB: false), [x, w, try HostTensor([3], int32s: [1, 2, 4])])
        try expectSameError(.groupedMatmul(transposeB: false), [x, w, try HostTensor([3], int32s: [0, 2, 9])])
    }

    @Test func int4GroupedMatmulOffsets() throws {
        let f = Int4Format(groupSize: 4, symmetric: true)
        let x = try HostTensor([3, 8], floats: (0..<24).map { Float($0) / 9 })
        let q = try HostTensor(TensorDesc([2, 4, 8], .int4), bytes: (0..<32).map { UInt8($0 * 7 % 256) })
        let s = try HostTensor([2, 4, 2], floats: [Float](repeating: 0.01, count: 16))
        try expectSameError(.int4GroupedMatmul(f), [x, q, s, try HostTensor([3], int32s: [0, 4, 3])])
    }

    @Test func sparseAttentionIndices() throws {
        let q = try HostTensor([2, 2, 8], floats: (0..<32).map { Float($0) / 31 })
        let k = try HostTensor([5, 1, 8], floats: (0..<40).map { Float($0) / 41 })
        let v = try HostTensor([5, 1, 8], floats: (0..<40).map { Float($0) / 43 })
        for bad: Int32 in [5, -2, 1 << 30] {
            try expectSameError(.sparseAttention(SparseAttentionParams()),
                                [q, k, v, try HostTensor([2, 3], int32s: [0, 1, -1, 2, bad, 3])])
        }
    }

    @Test func moePermuteIds() throws {
        let x = try HostTensor([3, 4], floats: (0..<12).map { Float($0) })
        try expectSameError(.moePermute(numExperts: 4), [x, try HostTensor([3, 2], int32s: [0, 1, 2, 4, 3, 0])])
        try expectSameError(.moePermute(numExperts: 4), [x, try HostTensor([3, 2], int32s: [0, 1, -1, 2, 3, 0])])
    }

    @Test func moeCombineSourceMap() throws {
        let y = try HostTensor([4, 3], floats: (0..<12).map { Float($0) })
        let w = try HostTensor([2, 2], floats: [0.5, 0.25, 1, 2])
        try expectSameError(.moeCombine, [y, try HostTensor([4], int32s: [0, 1, 1, 3]), w])
        try expectSameError(.moeCombine, [y, try HostTensor([4], int32s: [0, 1, 2, 4]), w])
    }

    @Test func dequantizeZeroPoints() throws {
        let f = Int4Format(groupSize: 4, symmetric: false)
        let q = try HostTensor(TensorDesc([2, 8], .int4), bytes: (0..<8).map { UInt8($0 * 37 % 256) })
        let s = try HostTensor([2, 2], floats: [0.1, 0.2, 0.3, 0.4])
        try expectSameError(.dequantizeInt4(f, output: .f32), [q, s, try HostTensor([2, 2], int8s: [1, 16, 3, 4])])
    }

    /// An output that overlaps an input (not an elementwise kernel) is computed into a
    /// temporary, so the result equals the reference's on the original input.
    @Test func overlappingOutputIsStaged() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        let a = try HostTensor([4, 4], floats: (0..<16).map { Float($0) / 5 })
        let b = try HostTensor([4, 4], floats: (0..<16).map { Float(15 - $0) / 7 })
        let expected = try Reference.evaluate(.matmul(transposeB: false), [a, b])[0]
        let ta = try d.tensor(a), tb = try d.tensor(b)
        let out = Tensor(desc: ta.desc, buffer: try #require(ta.buffer), byteOffset: 0)
        try Queue(device: d).enqueue(.matmul(transposeB: false), inputs: [ta, tb], outputs: [out])
        let got = try d.download(out).floats, want = expected.floats
        for (g, w) in zip(got, want) { #expect(abs(g - w) <= 1e-5 * max(1, abs(w))) }
    }
}
