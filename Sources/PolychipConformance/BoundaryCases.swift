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

    /// Blocks common accelerators use (16 and 64 along the main dimensions), for a device
    /// that reports no tiling of its own.
    static func generic(_ kind: OpKind) -> [TileBoundary] {
        let dims: [String]
        switch kind {
        case .matmul, .int4Matmul: dims = ["M", "N", "K"]
        case .groupedMatmul, .int4GroupedMatmul: dims = ["T", "N", "K"]
        case .rmsNorm, .addRmsNorm, .softmax, .silu, .scale, .swiglu, .add: dims = ["R", "D"]
        case .rope: dims = ["T", "D"]
        case .attention: dims = ["Lq", "Lk"]
        case .lightningIndexer: dims = ["T", "S"]
        case .topK: dims = ["S", "k"]
        case .sparseAttention: dims = ["k", "S"]
        case .moeRouter: dims = ["T", "E"]
        case .moePermute, .moeCombine: dims = ["T", "H"]
        case .moeLayer: dims = ["T"]
        case .quantizeInt4, .dequantizeInt4: dims = ["N", "K"]
        }
        return dims.flatMap { d in [16, 64].map { TileBoundary(d, $0, name: "generic \(d) block \($0)") } }
    }

    /// Small base shapes the boundaries are applied to (the first at standard, all at
    /// thorough). Head dims reuse those of the quick set, so no new OpenCL programs build.
    public static func baseSpecs(_ kind: OpKind) -> [CaseSpec] {
        switch kind {
        case .matmul:
            return [CaseSpec(.matmul(transposeB: true), ["M": 5, "K": 9, "N": 7]), CaseSpec(.matmul(transposeB: false), ["M": 5, "K": 9, "N": 7])]
        case .groupedMatmul:
            return [CaseSpec(.groupedMatmul(transposeB: true), ["T": 9, "K": 9, "N": 7, "E": 3]),
                    CaseSpec(.groupedMatmul(transposeB: false), ["T": 9, "K": 9, "N": 7, "E": 3])]
        case .rmsNorm: return [CaseSpec(.rmsNorm(eps: 1e-6), ["R": 3, "D": 9])]
        case .addRmsNorm: return [CaseSpec(.addRmsNorm(eps: 1e-6), ["R": 3, "D": 9])]
        case .softmax: return [CaseSpec(.softmax, ["R": 3, "D": 9])]
        case .silu: return [CaseSpec(.silu, ["R": 3, "D": 9])]
        case .scale: return [CaseSpec(.scale(alpha: 0.731), ["R": 3, "D": 9])]
        case .swiglu: return [CaseSpec(.swiglu, ["R": 3, "D": 9])]
        case .add: return [CaseSpec(.add, ["R": 3, "D": 9])]
        case .rope: return [CaseSpec(.rope(RopeParams()), ["T": 3, "H": 2, "D": 16]), CaseSpec(.rope(RopeParams(style: .gptj)), ["T": 3, "H": 2, "D": 16])]
        case .attention:
            let dims = ["B": 1, "Hq": 4, "Hkv": 2, "Lq": 5, "Lk": 9, "D": 16, "Dv": 16]
            return [CaseSpec(.attention(AttentionParams(causal: true, returnLSE: true)), dims),
                    CaseSpec(.attention(AttentionParams(causal: false, returnLSE: true)), dims)]
        case .lightningIndexer: return [CaseSpec(.lightningIndexer, ["T": 4, "Hi": 2, "D": 16, "S": 9])]
        case .topK: return [CaseSpec(.topK(k: 5), ["T": 3, "S": 20, "k": 5])]
        case .sparseAttention:
            return [CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)), ["T": 3, "H": 4, "Hkv": 2, "S": 12, "D": 16, "Dv": 16, "k": 5])]
        case .moeRouter:
            return [CaseSpec(.moeRouter(RouterParams(scoring: .sigmoid, topK: 4, nGroup: 4, topkGroup: 2, renormalize: true,
                                                     routedScale: 2.5, hasBias: true)), ["T": 5, "E": 16]),
                    CaseSpec(.moeRouter(RouterParams(scoring: .softmax, topK: 2)), ["T": 5, "E": 16])]
        case .moePermute: return [CaseSpec(.moePermute(numExperts: 4), ["T": 5, "H": 7, "k": 2, "E": 4])]
        case .moeCombine: return [CaseSpec(.moeCombine, ["T": 5, "H": 7, "k": 2])]
        case .moeLayer:
            let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2.5, hasBias: true)
            return [CaseSpec(.moeLayer(MoELayerParams(router: router, experts: .int4(Int4Format(groupSize: 16, symmetric: false)), hasShared: true)),
                             ["T": 5, "H": 32, "F": 16, "E": 4]),
                    CaseSpec(.moeLayer(MoELayerParams(router: router, experts: .float, hasShared: true)), ["T": 5, "H": 16, "F": 8, "E": 4])]
        case .quantizeInt4:
            return [CaseSpec(.quantizeInt4(Int4Format(groupSize: 32, symmetric: false)), ["N": 3, "K": 64]),
                    CaseSpec(.quantizeInt4(Int4Format(groupSize: 32, symmetric: true)), ["N": 3, "K": 64])]
        case .dequantizeInt4:
            return [CaseSpec(.dequantizeInt4(Int4Format(groupSize: 32, symmetric: false), output: .f32), ["N": 3, "K": 64])]
        case .int4Matmul:
            return [CaseSpec(.int4Matmul(Int4Format(groupSize: 32, symmetric: false)), ["M": 1, "N": 9, "K": 96]),
                    CaseSpec(.int4Matmul(Int4Format(groupSize: 64, symmetric: true)), ["M": 3, "N": 9, "K": 128])]
        case .int4GroupedMatmul:
            return [CaseSpec(.int4GroupedMatmul(Int4Format(groupSize: 32, symmetric: false)), ["T": 9, "N": 9, "K": 96, "E": 3])]
        }
    }
}
