/// Storage data types a tensor can hold.
///
/// Float storage types (`f32`, `f16`, `bf16`) are computed in at least f32; `int4` is
/// the packed native INT4 layout described in docs/kernels.md (two values per byte).
public enum DType: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    /// IEEE binary32.
    case f32
    /// IEEE binary16.
    case f16
    /// bfloat16: the upper half of a binary32, rounded to nearest even.
    case bf16
    /// Signed 8-bit integer (zero points of asymmetric INT4).
    case i8
    /// Signed 32-bit integer (indices, ids, offsets, positions).
    case i32
    /// Packed unsigned nibbles, two per byte, low nibble first.
    case int4

    /// The float storage types, in the order conformance reports them.
    public static let floats: [DType] = [.f32, .f16, .bf16]

    /// Whether this is a float storage type.
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// Bits per element.
    public var bitWidth: Int {
        switch self {
        case .f32, .i32: return 32
        case .f16, .bf16: return 16
        case .i8: return 8
        case .int4: return 4
        }
    }

    /// The NumPy dtype string for this type (`int4` is stored as packed `|u1` bytes).
    public var numpyDescr: String {
        switch self {
        case .f32: return "<f4"
        case .f16: return "<f2"
        case .bf16: return "<u2"
        case .i8: return "|i1"
        case .i32: return "<i4"
        case .int4: return "|u1"
        }
    }

    public var description: String { rawValue }
}

/// Bit-exact conversions between f32 and the 16-bit float formats.
///
/// Implemented with integer operations so they are identical on every host and do not
/// depend on `Float16` availability.
public enum FloatBits {
    /// Rounds an f32 to the nearest binary16 (ties to even) and returns its bits.
    @inlinable
    public static func f16Bits(_ value: Float) -> UInt16 {
        let x = value.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exp = Int((x >> 23) & 0xFF)
        var mant = x & 0x7F_FFFF
        if exp == 0xFF {  // Inf or NaN (keep NaN quiet)
            return sign | 0x7C00 | (mant != 0 ? 0x200 | UInt16(mant >> 13) : 0)
        }
        let e = exp - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }  // overflow to infinity
        if e <= 0 {  // subnormal or zero in half
            if e < -10 { return sign }
            mant |= 0x80_0000
            let shift = UInt32(14 - e)
            var half = mant >> shift
            let rem = mant & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if rem > halfway || (rem == halfway && (half & 1) == 1) { half += 1 }
            return sign | UInt16(half)
        }
        var half = UInt32(e) << 10 | (mant >> 13)
        let rem = mant & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (half & 1) == 1) { half += 1 }  // may carry into exponent: correct
        return sign | UInt16(half)
    }

    /// Widens binary16 bits to f32 (exact).
    @inlinable
    public static func float(fromF16 h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        var mant = UInt32(h & 0x3FF)
        if exp == 0 {
            if mant == 0 { return Float(bitPattern: sign) }
            var e = -1
            repeat { e += 1; mant <<= 1 } while mant & 0x400 == 0
            mant &= 0x3FF
            return Float(bitPattern: sign | UInt32(127 - 15 - e) << 23 | mant << 13)
        }
        if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | mant << 13) }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | mant << 13)
    }

    /// Rounds an f32 to bfloat16 (ties to even; NaN stays a quiet NaN) and returns its bits.
    @inlinable
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let x = value.bitPattern
        if value.isNaN { return UInt16(x >> 16) | 0x40 }
        let rounding = 0x7FFF + ((x >> 16) & 1)
        return UInt16((x &+ rounding) >> 16)
    }

    /// Widens bfloat16 bits to f32 (exact).
    @inlinable
    public static func float(fromBF16 b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Rounds an f64 to the precision of `dtype` **once** (ties to even) and returns the result
    /// as the f32 that holds it exactly. Going through `Float(value)` first would round twice
    /// (f64 → f32 → f16), which differs when the f32 rounding lands on an f16 tie: the
    /// reference's results must be rounded once (docs/kernels.md).
    @inlinable
    public static func round(_ value: Double, to dtype: DType) -> Float {
        let (mantissaBits, minExponent, maxFinite): (Int, Int, Double)
        switch dtype {
        case .f16: (mantissaBits, minExponent, maxFinite) = (10, -14, 65504)
        case .bf16: (mantissaBits, minExponent, maxFinite) = (7, -126, Double(Float(bitPattern: 0x7F7F_0000)))
        default: return Float(value)
        }
        guard value.isFinite, value != 0 else { return value.isNaN ? round(Float.nan, to: dtype) : Float(value) }
        // The spacing of the target format at |value| (subnormal spacing below its normal range).
        let e = max(Int(value.exponent), minExponent)
        let quantum = Double(sign: .plus, exponent: e - mantissaBits, significand: 1)
        let r = (value / quantum).rounded(.toNearestOrEven) * quantum
        if abs(r) > maxFinite { return value < 0 ? -.infinity : .infinity }
        return Float(r)  // exact: r has at most mantissaBits + 1 significant bits
    }

    /// Rounds `value` to the precision of `dtype` and returns it as f32
    /// (identity for f32 and non-float types).
    @inlinable
    public static func round(_ value: Float, to dtype: DType) -> Float {
        switch dtype {
        case .f16: return float(fromF16: f16Bits(value))
        case .bf16: return float(fromBF16: bf16Bits(value))
        default: return value
        }
    }
}
