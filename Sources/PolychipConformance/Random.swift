import PolychipCore

/// A small seeded generator (SplitMix64): the same seed gives the same case on every host.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    /// Creates a generator from a seed.
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in ±[lo, hi]: never zero, random sign (conformance inputs are never zeros).
    /// One draw: the top 24 bits give the magnitude in 2⁻²⁴ steps, bit 0 the sign (no
    /// generic `random(in:)`, which is slow in the debug builds the tests run).
    @inline(__always)
    public mutating func nonZero(_ lo: Float = 0.05, _ hi: Float = 1) -> Float {
        let bits = next()
        let m = lo + (hi - lo) * (Float(bits >> 40) * 0x1p-24)
        return bits & 1 == 0 ? m : -m
    }

    /// `count` non-zero floats.
    public mutating func floats(_ count: Int, _ lo: Float = 0.05, _ hi: Float = 1) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(count)
        var i = 0
        while i < count { out.append(nonZero(lo, hi)); i += 1 }
        return out
    }

    /// Uniform integer in `range`.
    public mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
}

/// Derives a per-case seed from the run seed and the case's identity, so adding a case
/// never changes the inputs of another.
func caseSeed(_ base: UInt64, _ parts: String...) -> UInt64 {
    var h = fnv1a([], start: 0xCBF2_9CE4_8422_2325 ^ base)
    for p in parts { h = fnv1a(p.utf8, start: h) }
    return h
}

/// FNV-1a (64-bit) of `bytes`, continuing from `start`: a fast, stable fingerprint (not a
/// cryptographic hash).
public func fnv1a(_ bytes: some Sequence<UInt8>, start: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = start
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}
