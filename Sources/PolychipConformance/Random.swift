import PolychipCore

/// The conformance inputs' generator: core's ``SplitMix64`` with the draws cases need; the
/// same seed gives the same case on every host.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var base: SplitMix64
    /// Creates a generator from a seed.
    public init(seed: UInt64) { base = SplitMix64(seed: seed) }
    /// The next 64 random bits (core's ``SplitMix64``).
    @inline(__always)
    public mutating func next() -> UInt64 { base.next() }

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
