import PolychipCore

extension Reference {
    /// Quantizes one group per docs/kernels.md in f32 arithmetic with IEEE division and
    /// round-half-away-from-zero. Returns (nibbles, scale, zero point).
    public static func quantizeGroup(_ x: ArraySlice<Float>, symmetric: Bool) -> (nibbles: [UInt8], scale: Float, zero: Int) {
        func rnd(_ v: Float) -> Float { v.rounded(.toNearestOrAwayFromZero) }
        // NaN (from a non-finite group: docs/kernels.md leaves its encoding unspecified but
        // in range) clamps to the lower bound instead of trapping in the UInt8 conversion.
        func clamp(_ v: Float, _ lo: Float, _ hi: Float) -> Float { v.isNaN ? lo : min(max(v, lo), hi) }
        if symmetric {
            let amax = x.reduce(Float(0)) { max($0, abs($1)) }
            let s = amax / 7
            if s == 0 { return (x.map { _ in 8 }, 0, 8) }
            return (x.map { UInt8(clamp(rnd($0 / s), -8, 7) + 8) }, s, 8)
        }
        // The range always includes 0 so the zero point lands in 0…15.
        let mn = min(x.min() ?? 0, 0), mx = max(x.max() ?? 0, 0)
        if mn == mx { return (x.map { _ in 0 }, 0, 0) }  // all-zero group
        let s = (mx - mn) / 15
        let z = clamp(rnd(-mn / s), 0, 15)
        return (x.map { UInt8(clamp(rnd($0 / s) + z, 0, 15)) }, s, Int(z))
    }

    static func quantizeInt4(_ x: HostTensor, _ f: Int4Format) throws -> [HostTensor] {
        let (n, k) = (x.desc.shape[0], x.desc.shape[1])
        let v = x.floats
        var nibbles: [UInt8] = [], scales: [Float] = [], zeros: [Int8] = []
        for r in 0..<n {
            for g in 0..<(k / f.groupSize) {
                let start = r * k + g * f.groupSize
                let q = quantizeGroup(v[start..<(start + f.groupSize)], symmetric: f.symmetric)
                nibbles += q.nibbles; scales.append(q.scale); zeros.append(Int8(q.zero))
            }
        }
        var out = [try HostTensor(TensorDesc([n, k], .int4), bytes: Int4Packing.pack(nibbles)),
                   try HostTensor([n, k / f.groupSize], .f32, floats: scales)]
        if !f.symmetric { out.append(try HostTensor([n, k / f.groupSize], int8s: zeros)) }
        return out
    }

    static func dequantizeInt4(_ a: Args, _ f: Int4Format, _ out: DType) throws -> HostTensor {
        let q = a["q"]
        return try output(q.desc.shape, out, dequantized(q, a["scales"], a.has("zeros") ? a["zeros"] : nil, f))
    }
}
