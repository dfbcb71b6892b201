import Testing
@testable import PolychipCore

@Suite struct DTypeTests {
    @Test func f16RoundTripsEveryFiniteHalf() {
        for bits in UInt16(0)...UInt16.max where (bits & 0x7C00) != 0x7C00 {
            #expect(FloatBits.f16Bits(FloatBits.float(fromF16: bits)) == bits)
        }
    }

    @Test func f16RoundsToNearestEven() {
        #expect(FloatBits.f16Bits(1.0) == 0x3C00)
        #expect(FloatBits.f16Bits(65504) == 0x7BFF)
        #expect(FloatBits.f16Bits(65520) == 0x7C00)            // rounds up to infinity
        #expect(FloatBits.f16Bits(1 + 1.0 / 2048) == 0x3C00)   // tie → even
        #expect(FloatBits.f16Bits(1 + 3.0 / 2048) == 0x3C02)   // tie → even (up)
        #expect(FloatBits.f16Bits(5.960464477539063e-08) == 0x0001)  // smallest subnormal
        #expect(FloatBits.float(fromF16: FloatBits.f16Bits(.nan)).isNaN)
        #expect(FloatBits.f16Bits(-.infinity) == 0xFC00)
    }

    @Test func bf16RoundsToNearestEvenAndKeepsNaN() {
        #expect(FloatBits.bf16Bits(1.0) == 0x3F80)
        #expect(FloatBits.bf16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
        #expect(FloatBits.bf16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(FloatBits.float(fromBF16: FloatBits.bf16Bits(.nan)).isNaN)
        #expect(FloatBits.bf16Bits(.infinity) == 0x7F80)
    }

    @Test func byteCountsAndOverflow() throws {
        #expect(try TensorDesc([3, 4], .f16).checkedByteCount() == 24)
        #expect(try TensorDesc([3, 4], .int4).checkedByteCount() == 6)
        #expect(throws: PolychipError.self) { try TensorDesc([Int.max, 4], .f32).checkedByteCount() }
        #expect(throws: PolychipError.self) { try TensorDesc([-1, 4], .f32).checkedByteCount() }
    }

    @Test func hostTensorRejectsWrongSizes() {
        #expect(throws: PolychipError.self) { try HostTensor([2, 2], .f32, floats: [1, 2, 3]) }
        #expect(throws: PolychipError.self) { try HostTensor(TensorDesc([2], .i32), bytes: [1, 2, 3]) }
    }
}

@Suite struct SelectorTests {
    @Test func parsesTheGrammar() throws {
        let a = try DeviceSelector(parsing: "cpu")
        #expect(a.backend == "cpu" && a.profile == nil && a.index == nil)
        let b = try DeviceSelector(parsing: "opencl:1")
        #expect(b.backend == "opencl" && b.profile == nil && b.index == 1)
        let c = try DeviceSelector(parsing: "sim:ascend-910b:3")
        #expect(c.backend == "sim" && c.profile == "ascend-910b" && c.index == 3)
        let d = try DeviceSelector(parsing: "sim:/tmp/my chip.json")
        #expect(d.profile == "/tmp/my chip.json" && d.index == nil)
    }

    @Test(arguments: ["", ":1", "sim:a:b:c", "cpu:-1", "c p u", "sim::2"])
    func rejectsMalformed(_ s: String) {
        #expect(throws: PolychipError.self) { try DeviceSelector(parsing: s) }
    }
}
