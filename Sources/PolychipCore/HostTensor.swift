/// A tensor value in host memory: a descriptor and its bytes (little-endian).
///
/// This is the currency of uploads, downloads, the reference backend, conformance
/// and `.npy` files. Float conversions go through ``FloatBits`` so they are exact.
public struct HostTensor: Sendable, Equatable {
    /// Shape and dtype.
    public var desc: TensorDesc
    /// Raw storage, exactly `desc.byteCount` bytes.
    public var bytes: [UInt8]

    /// Wraps existing bytes; throws when the byte count does not match the descriptor.
    public init(_ desc: TensorDesc, bytes: [UInt8]) throws {
        let n = try desc.checkedByteCount()
        guard bytes.count == n else {
            throw PolychipError.invalidTensor(reason: "\(desc) needs \(n) bytes, got \(bytes.count)")
        }
        self.desc = desc
        self.bytes = bytes
    }

    /// A zero-filled tensor.
    public init(zeros desc: TensorDesc) throws {
        self.desc = desc
        self.bytes = [UInt8](repeating: 0, count: try desc.checkedByteCount())
    }

    /// A float tensor from f32 values, rounded to `dtype` (f32, f16 or bf16).
    public init(_ shape: [Int], _ dtype: DType = .f32, floats: [Float]) throws {
        let desc = TensorDesc(shape, dtype)
        guard dtype.isFloat else {
            throw PolychipError.invalidTensor(reason: "float data for non-float dtype \(dtype)")
        }
        guard desc.checkedElementCount == floats.count else {
            throw PolychipError.invalidTensor(reason: "\(floats.count) values for shape \(shapeString(shape))")
        }
        self.desc = desc
        var out = [UInt8](repeating: 0, count: try desc.checkedByteCount())
        // Index loops over raw pointers: conformance and bench inputs reach millions of
        // elements, and generic iteration is slow in debug builds (the tests).
        floats.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { raw in
                let n = src.count
                var i = 0
                switch dtype {
                case .f32:
                    while i < n { raw.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self); i += 1 }
                case .f16:
                    while i < n { raw.storeBytes(of: FloatBits.f16Bits(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self); i += 1 }
                default:
                    while i < n { raw.storeBytes(of: FloatBits.bf16Bits(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self); i += 1 }
                }
            }
        }
        self.bytes = out
    }

    /// An i32 tensor.
    public init(_ shape: [Int], int32s: [Int32]) throws {
        let desc = TensorDesc(shape, .i32)
        guard desc.checkedElementCount == int32s.count else {
            throw PolychipError.invalidTensor(reason: "\(int32s.count) values for shape \(shapeString(shape))")
        }
        self.desc = desc
        var out = [UInt8](repeating: 0, count: 4 * int32s.count)
        out.withUnsafeMutableBytes { raw in
            for (i, v) in int32s.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: 4 * i, as: Int32.self) }
        }
        self.bytes = out
    }

    /// An i8 tensor.
    public init(_ shape: [Int], int8s: [Int8]) throws {
        try self.init(TensorDesc(shape, .i8), bytes: int8s.map { UInt8(bitPattern: $0) })
    }

    /// Float values widened to f32 (exact). Empty for non-float dtypes.
    public var floats: [Float] {
        let n = desc.elementCount
        guard desc.dtype.isFloat else { return [] }
        return bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: n) { out, count in
                var i = 0
                switch desc.dtype {
                case .f32:
                    while i < n { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))); i += 1 }
                case .f16:
                    while i < n { out[i] = FloatBits.float(fromF16: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))); i += 1 }
                default:
                    while i < n { out[i] = FloatBits.float(fromBF16: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))); i += 1 }
                }
                count = n
            }
        }
    }

    /// Float values widened to f64 (exact), for the reference backend.
    public var doubles: [Double] { floats.map(Double.init) }

    /// Integer values (i32 and i8 widened; int4 as unsigned nibbles in element order).
    public var ints: [Int] {
        let n = desc.elementCount
        switch desc.dtype {
        case .i32:
            return bytes.withUnsafeBytes { raw in (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) } }
        case .i8: return bytes.map { Int(Int8(bitPattern: $0)) }
        case .int4: return (0..<n).map { Int(Int4Packing.nibble(bytes, $0)) }
        default: return floats.map { Int($0) }
        }
    }

    /// i32 values.
    public var int32s: [Int32] { ints.map { Int32(truncatingIfNeeded: $0) } }
}

/// Reading and writing the native INT4 packing: element `i` lives in byte `i/2`,
/// low nibble for even `i`, high nibble for odd `i`.
public enum Int4Packing {
    /// The unsigned nibble of element `index`.
    @inlinable
    public static func nibble(_ bytes: [UInt8], _ index: Int) -> UInt8 {
        let b = bytes[index >> 1]
        return index & 1 == 0 ? b & 0x0F : b >> 4
    }

    /// Packs unsigned nibbles (0…15) two per byte.
    public static func pack(_ nibbles: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (nibbles.count + 1) / 2)
        for (i, u) in nibbles.enumerated() {
            out[i >> 1] |= (u & 0x0F) << (i & 1 == 0 ? 0 : 4)
        }
        return out
    }
}
