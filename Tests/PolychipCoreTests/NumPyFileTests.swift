import Testing
@testable import PolychipCore

@Suite struct NumPyFileTests {
    @Test func roundTripsEveryDType() throws {
        let tensors = [
            try HostTensor([2, 3], .f32, floats: [1, -2, 3.5, 4, 5, 6]),
            try HostTensor([5], .f16, floats: [1, 2, 3, 4, 0.5]),
            try HostTensor([1, 2], .bf16, floats: [1.5, -8]),
            try HostTensor([4], int32s: [1, -2, 3, Int32.max]),
            try HostTensor([3], int8s: [1, -2, 7]),
            try HostTensor(TensorDesc([2, 4], .int4), bytes: [0x21, 0x43, 0x65, 0x87]),
        ]
        for t in tensors {
            #expect(try NumPyFile.decode(NumPyFile.encode(t)) == t)
        }
    }

    @Test func malformedHeadersAreTypedErrors() throws {
        let good = NumPyFile.encode(try HostTensor([2], .f32, floats: [1, 2]))
        var badMagic = good; badMagic[1] = 0
        var truncated = good; truncated.removeLast()
        func replacing(_ a: String, _ b: String) -> [UInt8] {
            let (x, y) = (Array(a.utf8), Array(b.utf8))
            var out = good
            if let i = (0...(out.count - x.count)).first(where: { Array(out[$0..<($0 + x.count)]) == x }) { out.replaceSubrange(i..<(i + x.count), with: y) }
            return out
        }
        let withF8 = replacing("<f4", "<f8")
        let fortran = replacing("False", "True ")
        for (bytes, field) in [(badMagic, "magic"), (truncated, "data"), (withF8, "data"), (fortran, "fortran_order"), (Array(good.prefix(5)), "magic")] {
            do {
                _ = try NumPyFile.decode(bytes, path: "x.npy")
                Issue.record("accepted a malformed file (\(field))")
            } catch let PolychipError.malformedFile(path, f, _) {
                #expect(path == "x.npy")
                #expect(f == field)
            }
        }
    }
}
