// Int4CheckpointTests.swift — ggml Q4_0, GPTQ and AWQ imports against golden data produced by
// Golden/make_int4_golden.py (numpy implementations of the formats' published definitions),
// and the safetensors reader.

import Foundation
import Testing
@testable import PolychipCore

private let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

private func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

private func npy(_ name: String) throws -> HostTensor {
    let data = try Data(contentsOf: golden.appendingPathComponent(name))
    return try NumPyFile.decode([UInt8](data), path: name)
}

/// `[K, N]` row-major → `[N, K]`.
private func transpose(_ a: [Float], rows k: Int, cols n: Int) -> [Float] {
    var out = [Float](repeating: 0, count: a.count)
    for i in 0..<k { for j in 0..<n { out[j * k + i] = a[i * n + j] } }
    return out
}

@Suite("INT4 checkpoint formats")
struct Int4CheckpointTests {
    @Test("ggml Q4_0: the reference quantizer and dequantizer byte- and bit-exact; lossless import")
    func q4_0() throws {
        let st = try SafeTensorsFile.read(path: golden.appendingPathComponent("q4_0.safetensors").path)
        #expect(st.metadata["generator"] == "make_int4_golden.py")
        let x = try st.tensor("x")
        let blocks = try #require(st.tensors["blocks"]).bytes
        let expected = try st.tensor("dequant").floats
        #expect(try GGMLQ4_0.quantize(x.floats) == blocks)
        #expect(bits(try GGMLQ4_0.dequantize(blocks)) == bits(expected))
        let (rows, cols) = (x.desc.shape[0], x.desc.shape[1])
        let w = try GGMLQ4_0.importTensor(blocks, rows: rows, columns: cols)
        #expect(w.format == Int4Format(groupSize: 32, symmetric: true))
        #expect(bits(w.dequantized()) == bits(expected))
        // Row 1 starts with an all-zero block: d = 0 / −8 = −0 (f16 0x8000) and every nibble 8.
        #expect(blocks[(2 * 18)..<(2 * 18 + 18)].elementsEqual([0x00, 0x80] + [UInt8](repeating: 0x88, count: 16)))
        #expect(w.scales.floats[2] == 0)
        #expect((0..<32).allSatisfy { Int4Packing.nibble(w.q.bytes, 64 + $0) == 8 })
    }

    @Test("ggml Q4_0: bad input is a typed error, never a trap")
    func q4_0Errors() throws {
        #expect(throws: PolychipError.self) { _ = try GGMLQ4_0.quantize([Float](repeating: 1, count: 31)) }
        #expect(throws: PolychipError.self) { _ = try GGMLQ4_0.quantize([Float](repeating: .nan, count: 32)) }
        #expect(throws: PolychipError.self) { _ = try GGMLQ4_0.dequantize([1, 2, 3]) }
        #expect(throws: PolychipError.self) { _ = try GGMLQ4_0.importTensor([UInt8](repeating: 0, count: 18), rows: 2, columns: 32) }
        #expect(throws: PolychipError.self) { _ = try GGMLQ4_0.importTensor([], rows: 1, columns: 16) }
        // A subnormal scale whose reciprocal overflows stays defined (no trap).
        var tiny = [Float](repeating: 0, count: 32)
        tiny[0] = Float(bitPattern: 1)
        _ = try GGMLQ4_0.quantize(tiny)
    }

    @Test("GPTQ: v1/v2 zero points, act-order g_idx; lossless import into the native layout", arguments: ["v1_act", "v2", "v2_act", "v1"])
    func gptq(_ prefix: String) throws {
        let path = golden.appendingPathComponent("gptq.safetensors").path
        let st = try SafeTensorsFile.read(path: path)
        let qweight = try st.tensor(prefix + ".qweight"), qzeros = try st.tensor(prefix + ".qzeros")
        let scales = try st.tensor(prefix + ".scales"), gIdx = try st.tensor(prefix + ".g_idx")
        let expected = try st.tensor(prefix + ".dequant")
        #expect(scales.desc.dtype == .f16)
        let version: GPTQ.Version = prefix.hasPrefix("v1") ? .v1 : .v2
        let own = try GPTQ.dequantize(qweight: qweight, qzeros: qzeros, scales: scales, gIdx: gIdx, version: version)
        #expect(bits(own) == bits(expected.floats))
        let imported = try GPTQ.importTensor(qweight: qweight, qzeros: qzeros, scales: scales, gIdx: gIdx, version: version)
        let (k, n) = (expected.desc.shape[0], expected.desc.shape[1])
        #expect(imported.weight.rows == n && imported.weight.columns == k)
        #expect(imported.weight.format.symmetric == false)
        let native = imported.weight.dequantized()  // [N, K'] in permuted input order
        let perm = imported.inputPermutation ?? Array(0..<k)
        #expect((imported.inputPermutation != nil) == prefix.hasSuffix("act"))
        let reference = transpose(expected.floats, rows: k, cols: n)
        var permuted = [Float](repeating: 0, count: native.count)
        for c in 0..<n { for (kk, src) in perm.enumerated() { permuted[c * k + kk] = reference[c * k + src] } }
        #expect(bits(native) == bits(permuted))
        // The wrong convention does not reproduce the checkpoint.
        let other: GPTQ.Version = version == .v1 ? .v2 : .v1
        if let wrong = try? GPTQ.dequantize(qweight: qweight, qzeros: qzeros, scales: scales, gIdx: gIdx, version: other) {
            #expect(bits(wrong) != bits(expected.floats))
        }
    }

    @Test("GPTQ: a v1 zero nibble of 15 (zero point 16) and malformed tensors are typed errors")
    func gptqErrors() throws {
        let qweight = try HostTensor([1, 8], int32s: [Int32](repeating: 0x1234_5678, count: 8))
        let scales = try HostTensor([1, 8], .f16, floats: [Float](repeating: 0.01, count: 8))
        let zerosF = try HostTensor([1, 1], int32s: [Int32(bitPattern: 0xF000_0000)])
        #expect(throws: PolychipError.self) { _ = try GPTQ.importTensor(qweight: qweight, qzeros: zerosF, scales: scales, version: .v1) }
        let v2 = try GPTQ.importTensor(qweight: qweight, qzeros: zerosF, scales: scales, version: .v2)
        #expect(v2.weight.zeros?.ints.last == 15)
        #expect(throws: PolychipError.self) { _ = try GPTQ.importTensor(qweight: qweight, qzeros: try HostTensor([2, 1], int32s: [0, 0]), scales: scales, version: .v2) }
        let badG = try HostTensor([8], int32s: [0, 0, 0, 0, 0, 0, 0, 3])
        #expect(throws: PolychipError.self) { _ = try GPTQ.importTensor(qweight: qweight, qzeros: zerosF, scales: scales, gIdx: badG, version: .v2) }
    }

    @Test("AWQ: the interleaved nibble order; lossless import from .npy files")
    func awq() throws {
        let qweight = try npy("awq_qweight.npy"), qzeros = try npy("awq_qzeros.npy"), scales = try npy("awq_scales.npy")
        let expected = try npy("awq_dequant.npy")
        #expect(qweight.desc.dtype == .i32 && scales.desc.dtype == .f16)
        #expect(bits(try AWQ.dequantize(qweight: qweight, qzeros: qzeros, scales: scales)) == bits(expected.floats))
        let imported = try AWQ.importTensor(qweight: qweight, qzeros: qzeros, scales: scales)
        let (k, n) = (expected.desc.shape[0], expected.desc.shape[1])
        #expect(bits(imported.weight.dequantized()) == bits(transpose(expected.floats, rows: k, cols: n)))
        #expect(imported.weight.format == Int4Format(groupSize: 16, symmetric: false))
        // Reading the words in plain nibble order gets the columns wrong.
        let plain = try GPTQ.dequantize(qweight: try HostTensor([k / 8, n], int32s: [Int32](repeating: 0, count: k / 8 * n)),
                                        qzeros: qzeros, scales: scales, version: .v2)
        #expect(plain.count == k * n)
        #expect(AWQ.packOrder == [0, 2, 4, 6, 1, 3, 5, 7])
        #expect(throws: PolychipError.self) { _ = try AWQ.importTensor(qweight: qweight, qzeros: qweight, scales: scales) }
    }

    @Test("safetensors: round trip, every dtype, typed errors on malformed headers")
    func safetensors() throws {
        let c = SafeTensorsFile.Contents(tensors: [
            "a": .init(type: .F32, shape: [2], bytes: [0, 0, 128, 63, 0, 0, 0, 64]),
            "b": .init(type: .BF16, shape: [1], bytes: [128, 63]),
            "c": .init(type: .F16, shape: [1], bytes: [0, 60]),
            "d": .init(type: .I32, shape: [1, 1], bytes: [7, 0, 0, 0]),
            "e": .init(type: .I8, shape: [2], bytes: [255, 1]),
            "f": .init(type: .U8, shape: [1], bytes: [0x21]),
            "empty": .init(type: .F32, shape: [0, 3], bytes: []),
        ], metadata: ["format": "pt"])
        let bytes = SafeTensorsFile.encode(c)
        let back = try SafeTensorsFile.decode(bytes)
        #expect(back == c)
        #expect(try back.tensor("a").floats == [1, 2])
        #expect(try back.tensor("b").floats == [1])
        #expect(try back.tensor("c").floats == [1])
        #expect(try back.tensor("e").ints == [-1, 1])
        #expect(try back.tensor("f").ints == [1, 2])
        func header(_ json: String, body: [UInt8] = []) -> [UInt8] {
            let h = Array(json.utf8)
            return (0..<8).map { UInt8((UInt64(h.count) >> (8 * UInt64($0))) & 0xFF) } + h + body
        }
        let malformed: [[UInt8]] = [
            [1, 2, 3],
            [255, 255, 255, 255, 0, 0, 0, 0, 123],
            header("not json"),
            header("[1, 2]"),
            header(#"{"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}"#, body: [UInt8](repeating: 0, count: 8)),
            header(#"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#, body: [UInt8](repeating: 0, count: 4)),
            header(#"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}"#, body: [UInt8](repeating: 0, count: 4)),
            header(#"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, body: [UInt8](repeating: 0, count: 8)),
            header(#"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "y": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}"#, body: [UInt8](repeating: 0, count: 6)),
            header(#"{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, body: [UInt8](repeating: 0, count: 4)),
            header(#"{"x": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, body: [UInt8](repeating: 0, count: 4)),
            header(#"{"x": {"dtype": "F32", "shape": [1]}}"#, body: [UInt8](repeating: 0, count: 4)),
            header(#"{"x": 3}"#),
            header(#"{"__metadata__": {"a": 1}}"#),
            header(#"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, body: [UInt8](repeating: 0, count: 6)),
        ]
        for (i, m) in malformed.enumerated() {
            do { _ = try SafeTensorsFile.decode(m, path: "bad\(i)"); Issue.record("malformed file \(i) was accepted") } catch let e as PolychipError {
                guard case .malformedFile(let p, _, _) = e else { Issue.record("file \(i): \(e)"); continue }
                #expect(p == "bad\(i)")
            }
        }
        #expect(throws: PolychipError.self) { _ = try SafeTensorsFile.read(path: "/nonexistent/x.safetensors") }
    }
}
