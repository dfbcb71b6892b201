import PolychipCore

/// Boundary shapes derived from a device's tiling: for each block size `b` of a kernel
/// dimension, shapes one below, one above and several blocks with a remainder (more at
/// `thorough`); for each path threshold, shapes on both sides. The other dimensions come from
/// a small base shape, raised to the boundary's context so the call takes the path the
/// boundary belongs to. A device that reports no tiling gets generic blocks of 16 and 64.
public enum BoundaryCases {
    /// The boundary specs of `kind` for a device with `tiling`.
    public static func specs(_ kind: OpKind, tiling: DeviceTiling, level: ConformanceLevel) -> [CaseSpec] {
        guard level != .quick else { return [] }
        var boundaries = tiling.boundaries(kind)
        if boundaries.isEmpty { boundaries = generic(kind) }
        let bases = baseSpecs(kind)
        guard let first = bases.first else { return [] }
        var out: [CaseSpec] = []
        for b in boundaries {
            for base in level == .thorough ? bases : [first] {
                for (value, tag) in values(b, level) {
                    var s = base
                    for (k, v) in b.context { s.dims[k] = max(s.dims[k] ?? 0, v) }
                    s.dims[b.dim] = value
                    // A grouped kernel's row boundary is per expert segment; random offsets
                    // would split T among the experts and no segment would cross it.
                    if b.dim == "T" && (kind == .groupedMatmul || kind == .int4GroupedMatmul) { s.dims["E"] = 1 }
                    s.note = "\(b.name): \(tag)"
                    out.append(s)
                }
            }
        }
        if level == .thorough {
            // Pairs: one above the block on two dimensions at once (a remainder tile in both).
            let blocks = boundaries.filter { $0.role == .block && $0.context.isEmpty }
            for (i, a) in blocks.enumerated() {
                for b in blocks.dropFirst(i + 1) where b.dim != a.dim {
                    var s = first
                    s.dims[a.dim] = a.size + 1
                    s.dims[b.dim] = b.size + 1
                    s.note = "\(a.name) × \(b.name): b+1"
                    out.append(s)
                }
            }
        }
        return out
    }

    /// The values of a boundary's dimension at `level`, with a tag for the label.
    static func values(_ b: TileBoundary, _ level: ConformanceLevel) -> [(Int, String)] {
        let s = b.size
        let r = max(1, s / 3) | 1  // an odd remainder, not a multiple of anything small
        let list: [(Int, String)]
        switch (b.role, level) {
        case (.block, .standard): list = [(s - 1, "b−1"), (s + 1, "b+1"), (2 * s + r, "2b+\(r)")]
        case (.block, _): list = [(1, "1"), (s - 1, "b−1"), (s, "b"), (s + 1, "b+1"), (2 * s, "2b"), (3 * s + r, "3b+\(r)")]
        case (.threshold, .standard): list = [(s - 1, "below"), (s, "at")]
        case (.threshold, _): list = [(s - 1, "below"), (s, "at"), (s + 1, "above"), (2 * s, "2×")]
        }
        var seen = Set<Int>()
        return list.filter { $0.0 >= 1 && seen.insert($0.0).inserted }
    }

    /// Blocks common accelerators use (16 and 64 along the kernel's main dimensions), for a
    /// device that reports no tiling of its own.
    static func generic(_ kind: OpKind) -> [TileBoundary] {
        kind.descriptor.blockedDimensions.flatMap { d in [16, 64].map { TileBoundary(d, $0, name: "generic \(d) block \($0)") } }
    }

    /// Small base shapes the boundaries are applied to (the first at standard, all at
    /// thorough), from the kernel's descriptor. Head dims reuse those of the quick set, so no
    /// new OpenCL programs build.
    public static func baseSpecs(_ kind: OpKind) -> [CaseSpec] { kind.descriptor.baseCases }
}
