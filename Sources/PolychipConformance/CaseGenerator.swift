import PolychipCore
import PolychipReference

/// One conformance case: a kernel call with concrete inputs.
public struct ConformanceCase: Sendable {
    /// The kernel and its parameters.
    public var op: Op
    /// Inputs, already in the case's dtype.
    public var inputs: [HostTensor]
    /// The activation dtype under test.
    public var dtype: DType
    /// Short shape/parameter label for reports.
    public var label: String
    /// The seed the inputs came from.
    public var seed: UInt64

    /// Creates a case.
    public init(op: Op, inputs: [HostTensor], dtype: DType, label: String, seed: UInt64) {
        self.op = op; self.inputs = inputs; self.dtype = dtype; self.label = label; self.seed = seed
    }
}

/// Generates seeded random cases per kernel and dtype: never zeros; edge shapes (1, odd
/// sizes, sizes that are not multiples of common tile sizes, long rows).
public enum CaseGenerator {
    /// The dtypes a kernel is checked with (its activation dtype).
    public static func dtypes(for kind: OpKind) -> [DType] {
        kind == .topK ? [.f32] : DType.floats
    }

    /// Every case for `kind` in `dtype`.
    public static func cases(_ kind: OpKind, dtype: DType, seed: UInt64) throws -> [ConformanceCase] {
        var out: [ConformanceCase] = []
        func add(_ op: Op, _ label: String, _ make: (inout SeededRandom) throws -> [HostTensor]) throws {
            let s = caseSeed(seed, kind.name, dtype.rawValue, label)
            var rng = SeededRandom(seed: s)
            out.append(ConformanceCase(op: op, inputs: try make(&rng), dtype: dtype, label: label, seed: s))
        }
        func f(_ shape: [Int], _ rng: inout SeededRandom, _ lo: Float = 0.05, _ hi: Float = 1) throws -> HostTensor {
            try HostTensor(shape, dtype, floats: rng.floats(shape.reduce(1, *), lo, hi))
        }
        switch kind {
        case .matmul:
            for (m, k, n, tb) in [(1, 1, 1, false), (7, 13, 5, false), (33, 65, 17, true), (64, 96, 80, false), (1, 300, 129, true), (70, 9, 130, true)] {
                try add(.matmul(transposeB: tb), "M\(m) K\(k) N\(n)\(tb ? " Bᵀ" : "")") { r in
                    [try f([m, k], &r), try f(tb ? [n, k] : [k, n], &r)]
                }
            }
        case .groupedMatmul:
            for (t, k, n, e, tb) in [(1, 8, 4, 1, false), (37, 24, 19, 4, true), (64, 33, 40, 6, false)] {
                try add(.groupedMatmul(transposeB: tb), "T\(t) K\(k) N\(n) E\(e)\(tb ? " Bᵀ" : "")") { r in
                    [try f([t, k], &r), try f(tb ? [e, n, k] : [e, k, n], &r), try offsets(t, e, &r)]
                }
            }
        case .rmsNorm:
            for shape in [[1], [3, 7], [2, 5, 64], [4, 4099]] {
                try add(.rmsNorm(eps: 1e-6), "\(shape)") { r in [try f(shape, &r), try f([shape.last!], &r, 0.5, 1.5)] }
            }
        case .softmax, .silu, .scale:
            let op: Op = kind == .softmax ? .softmax : kind == .silu ? .silu : .scale(alpha: 0.731)
            for shape in [[1], [5, 33], [3, 2, 129], [2, 5000]] {
                try add(op, "\(shape)") { r in [try f(shape, &r, 0.05, kind == .softmax ? 8 : 4)] }
            }
        case .swiglu, .add:
            let op: Op = kind == .swiglu ? .swiglu : .add
            for shape in [[1], [7, 31], [2, 3, 257], [1, 4100]] {
                try add(op, "\(shape)") { r in [try f(shape, &r, 0.05, 4), try f(shape, &r, 0.05, 4)] }
            }
        case .rope:
            for (t, h, d, style, rd) in [(1, 1, 2, RopeStyle.neox, nil as Int?), (5, 3, 64, .neox, nil), (7, 2, 64, .gptj, nil), (4, 2, 96, .neox, 64), (3, 1, 34, .gptj, 18)] {
                let p = RopeParams(style: style, base: 10000, rotaryDim: rd)
                try add(.rope(p), "T\(t) H\(h) D\(d) \(style)\(rd.map { " R\($0)" } ?? "")") { r in
                    [try f([t, h, d], &r), try HostTensor([t], int32s: (0..<t).map { _ in Int32(r.int(0..<4096)) })]
                }
            }
        case .attention:
            let shapes: [(Int, Int, Int, Int, Int, Int, Int, Bool, Bool)] = [
                (1, 1, 1, 1, 1, 8, 8, false, false),      // one key: output is V
                (2, 4, 2, 7, 7, 16, 16, true, true),      // GQA 2:1, causal square
                (1, 8, 2, 1, 37, 32, 32, true, true),     // decode Lq = 1
                (1, 2, 2, 9, 5, 8, 12, true, true),       // Lq > Lk: fully masked rows
                (1, 3, 1, 5, 70, 24, 16, true, false),    // MQA, Lq < Lk causal
                (2, 2, 1, 13, 13, 64, 64, false, false),
                // GPU register-tiled prefill (64-row/64-key tiles): partial tiles, bottom-right
                // causal diagonal across tile edges, GQA, Dv ≠ D
                (1, 4, 2, 70, 100, 128, 128, true, true),
                (1, 2, 1, 33, 129, 128, 64, true, true),
            ]
            for (b, hq, hkv, lq, lk, d, dv, causal, lse) in shapes {
                let p = AttentionParams(causal: causal, scale: nil, returnLSE: lse)
                try add(.attention(p), "B\(b) Hq\(hq) Hkv\(hkv) Lq\(lq) Lk\(lk) D\(d) Dv\(dv)\(causal ? " causal" : "")") { r in
                    [try f([b, hq, lq, d], &r), try f([b, hkv, lk, d], &r), try f([b, hkv, lk, dv], &r)]
                }
            }
        case .lightningIndexer:
            for (t, hi, d, s) in [(1, 1, 4, 1), (5, 4, 16, 9), (16, 8, 32, 40), (3, 2, 128, 3), (21, 3, 64, 300)] {
                try add(.lightningIndexer, "T\(t) Hi\(hi) D\(d) S\(s)") { r in
                    [try f([t, hi, d], &r), try f([s, d], &r), try f([t, hi], &r)]
                }
            }
        case .topK:
            for (t, s, k, ties) in [(1, 1, 1, false), (4, 50, 8, false), (3, 20, 25, false), (6, 64, 16, true), (2, 1000, 33, false)] {
                try add(.topK(k: k), "T\(t) S\(s) k\(k)\(ties ? " ties" : "")") { r in
                    // Ties and masked (−inf) entries exercise the tie and padding rules.
                    var v = r.floats(t * s)
                    if ties { v = v.map { ($0 * 4).rounded() / 4 + 0.01 } }
                    for i in v.indices where r.int(0..<7) == 0 { v[i] = -.infinity }
                    return [try HostTensor([t, s], .f32, floats: v)]
                }
            }
        case .sparseAttention:
            for (t, h, hkv, s, d, dv, k) in [(1, 1, 1, 1, 8, 8, 1), (6, 4, 1, 20, 16, 16, 8), (9, 4, 2, 9, 32, 24, 12), (4, 2, 1, 64, 64, 64, 40)] {
                try add(.sparseAttention(SparseAttentionParams(returnLSE: true)), "T\(t) H\(h) Hkv\(hkv) S\(s) D\(d) k\(k)") { r in
                    // Indices as the indexer + top-k make them: causal, distinct, −1 padded.
                    var idx: [Int32] = []
                    for ti in 0..<t {
                        let visible = Array(0...(ti + s - t)).shuffled(using: &r)
                        let chosen = visible.prefix(k)
                        idx += chosen.map { Int32($0) } + [Int32](repeating: -1, count: k - chosen.count)
                    }
                    return [try f([t, h, d], &r), try f([s, hkv, d], &r), try f([s, hkv, dv], &r), try HostTensor([t, k], int32s: idx)]
                }
            }
        case .moeRouter:
            let configs: [(Int, Int, RouterParams)] = [
                (1, 1, RouterParams(scoring: .softmax, topK: 1, renormalize: false)),
                (9, 16, RouterParams(scoring: .softmax, topK: 4, renormalize: true)),
                (7, 64, RouterParams(scoring: .sigmoid, topK: 8, nGroup: 8, topkGroup: 4, renormalize: true, routedScale: 2.5, hasBias: true)),
                (5, 12, RouterParams(scoring: .sigmoid, topK: 3, nGroup: 4, topkGroup: 2, renormalize: false, routedScale: 1.5, hasBias: true)),
            ]
            for (t, e, p) in configs {
                try add(.moeRouter(p), "T\(t) E\(e) k\(p.topK) \(p.scoring) g\(p.nGroup)/\(p.topkGroup)") { r in
                    var ins = [try f([t, e], &r, 0.05, 3)]
                    if p.hasBias { ins.append(try HostTensor([e], .f32, floats: r.floats(e, 0.001, 0.1))) }
                    return ins
                }
            }
        case .moePermute:
            for (t, h, k, e) in [(1, 1, 1, 1), (9, 7, 2, 4), (33, 16, 8, 64)] {
                try add(.moePermute(numExperts: e), "T\(t) H\(h) k\(k) E\(e)") { r in
                    [try f([t, h], &r), try HostTensor([t, k], int32s: distinctIDs(t, k, e, &r))]
                }
            }
        case .moeCombine:
            for (t, h, k) in [(1, 1, 1), (9, 7, 2), (20, 33, 8)] {
                try add(.moeCombine, "T\(t) H\(h) k\(k)") { r in
                    let perm = Array(0..<(t * k)).shuffled(using: &r).map { Int32($0) }
                    return [try f([t * k, h], &r), try HostTensor([t * k], int32s: perm),
                            try HostTensor([t, k], .f32, floats: r.floats(t * k, 0.05, 1))]
                }
            }
        case .moeLayer:
            let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2.5, hasBias: true)
            let configs: [(Int, Int, Int, Int, ExpertFormat, Bool, RouterParams)] = [
                (1, 8, 4, 1, .float, false, RouterParams(scoring: .softmax, topK: 1)),
                (11, 16, 8, 4, .float, true, router),
                (6, 32, 16, 4, .int4(Int4Format(groupSize: 16, symmetric: true)), true, router),
                (5, 32, 8, 4, .int4(Int4Format(groupSize: 8, symmetric: false)), false, RouterParams(scoring: .softmax, topK: 2)),
            ]
            for (t, h, ff, e, fmt, shared, rp) in configs {
                let p = MoELayerParams(router: rp, experts: fmt, hasShared: shared)
                let fmtName: String = { if case .int4(let x) = fmt { return " int4 \(x)" }; return "" }()
                try add(.moeLayer(p), "T\(t) H\(h) F\(ff) E\(e) k\(rp.topK)\(shared ? " shared" : "")\(fmtName)") { r in
                    var ins = [try f([t, h], &r), try f([e, h], &r)]
                    if rp.hasBias { ins.append(try HostTensor([e], .f32, floats: r.floats(e, 0.001, 0.1))) }
                    for (n, k) in [(ff, h), (ff, h), (h, ff)] {
                        switch fmt {
                        case .float: ins.append(try f([e, n, k], &r, 0.05, 0.5))
                        case .int4(let x): ins += try int4Weights([e], n, k, x, &r)
                        }
                    }
                    if shared { ins += [try f([ff, h], &r, 0.05, 0.5), try f([ff, h], &r, 0.05, 0.5), try f([h, ff], &r, 0.05, 0.5)] }
                    return ins
                }
            }
        case .quantizeInt4:
            for (n, k, g, sym) in [(1, 2, 2, true), (5, 64, 32, true), (7, 96, 32, false), (3, 256, 128, false), (4, 48, 16, true)] {
                try add(.quantizeInt4(Int4Format(groupSize: g, symmetric: sym)), "N\(n) K\(k) g\(g) \(sym ? "sym" : "asym")") { r in
                    [try f([n, k], &r, 0.01, 3)]
                }
            }
            // One-sided groups: the asymmetric range must still include 0.
            try add(.quantizeInt4(Int4Format(groupSize: 32, symmetric: false)), "N3 K64 g32 asym positive") { r in
                [try HostTensor([3, 64], dtype, floats: r.floats(192, 0.5, 3).map { abs($0) + 1 })]
            }
        case .dequantizeInt4:
            for (n, k, g, sym) in [(1, 2, 2, true), (5, 64, 32, false), (9, 384, 128, true)] {
                let fmt = Int4Format(groupSize: g, symmetric: sym)
                try add(.dequantizeInt4(fmt, output: dtype), "N\(n) K\(k) g\(g) \(sym ? "sym" : "asym")") { r in
                    try int4Weights([], n, k, fmt, &r)
                }
            }
        case .int4Matmul:
            for (m, n, k, g, sym) in [(1, 1, 2, 2, true), (1, 33, 256, 32, true), (2, 21, 192, 64, false), (3, 17, 128, 64, false), (8, 40, 96, 32, true), (37, 24, 256, 128, false)] {
                let fmt = Int4Format(groupSize: g, symmetric: sym)
                try add(.int4Matmul(fmt), "M\(m) N\(n) K\(k) g\(g) \(sym ? "sym" : "asym")") { r in
                    [try f([m, k], &r)] + (try int4Weights([], n, k, fmt, &r))
                }
            }
        case .int4GroupedMatmul:
            for (t, n, k, e, g, sym) in [(1, 4, 32, 1, 32, true), (29, 20, 64, 4, 32, false), (40, 16, 128, 8, 64, true)] {
                let fmt = Int4Format(groupSize: g, symmetric: sym)
                try add(.int4GroupedMatmul(fmt), "T\(t) N\(n) K\(k) E\(e) g\(g) \(sym ? "sym" : "asym")") { r in
                    [try f([t, k], &r)] + (try int4Weights([e], n, k, fmt, &r)) + [try offsets(t, e, &r)]
                }
            }
        }
        return out
    }

    /// Random segment offsets for `rows` rows over `experts` experts, some segments empty.
    public static func offsets(_ rows: Int, _ experts: Int, _ r: inout SeededRandom) throws -> HostTensor {
        var cuts = (0..<(experts - 1)).map { _ in r.int(0..<(rows + 1)) }.sorted()
        cuts = [0] + cuts + [rows]
        return try HostTensor([experts + 1], int32s: cuts.map { Int32($0) })
    }

    /// `k` distinct expert ids per token, as a router produces them.
    public static func distinctIDs(_ t: Int, _ k: Int, _ e: Int, _ r: inout SeededRandom) -> [Int32] {
        (0..<t).flatMap { _ in Array(0..<e).shuffled(using: &r).prefix(k).map { Int32($0) } }
    }

    /// Random INT4 weights `[lead..., n, k]`: every nibble value, positive scales, valid zero points.
    public static func int4Weights(_ lead: [Int], _ n: Int, _ k: Int, _ f: Int4Format, _ r: inout SeededRandom) throws -> [HostTensor] {
        let count = lead.reduce(1, *) * n * k
        let groups = lead.reduce(1, *) * n * (k / f.groupSize)
        let nibbles = (0..<count).map { _ in UInt8(r.int(0..<16)) }
        var out = [try HostTensor(TensorDesc(lead + [n, k], .int4), bytes: Int4Packing.pack(nibbles)),
                   try HostTensor(lead + [n, k / f.groupSize], .f32, floats: (0..<groups).map { _ in Float.random(in: 0.005...0.05, using: &r) })]
        if !f.symmetric { out.append(try HostTensor(lead + [n, k / f.groupSize], int8s: (0..<groups).map { _ in Int8(r.int(0..<16)) })) }
        return out
    }
}
