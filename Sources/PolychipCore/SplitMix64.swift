import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): the one seeded generator of the project. Conformance
/// inputs, routing samples, decoder-stack weights and fault schedules all draw from it, so the
/// same seed gives the same numbers on every host.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's state (the seed before the first draw).
    public var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    /// A fixed bijective mix of 64 bits: the first output of a generator seeded with `v`
    /// (for hashing an event's coordinates into a reproducible draw).
    @inline(__always)
    public static func mix(_ v: UInt64) -> UInt64 {
        var g = SplitMix64(seed: v)
        return g.next()
    }
}

/// FNV-1a (64-bit) of `bytes`, continuing from `start`: a fast, stable fingerprint (not a
/// cryptographic hash) for per-case seeds and output digests.
public func fnv1a(_ bytes: some Sequence<UInt8>, start: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = start
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}
