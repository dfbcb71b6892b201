import Foundation
import PolychipCore

extension Reference {
    /// Softmax-weighted sum of `values` rows over `logits` (already scaled), with the
    /// masked-row rule: no logits → zeros and lse = −inf.
    static func attend(_ logits: [Double], _ rows: [Int], _ v: [Double], dv: Int, rowStride: Int, base: Int) -> (out: [Double], lse: Double) {
        guard let m = logits.max() else { return ([Double](repeating: 0, count: dv), -.infinity) }
        let e = logits.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        var o = [Double](repeating: 0, count: dv)
        for (p, j) in zip(e, rows) {
            for c in 0..<dv { o[c] += p * v[base + j * rowStride + c] }
        }
        return (o.map { $0 / s }, m + Foundation.log(s))
    }

    static func attention(_ a: Args, _ p: AttentionParams, _ outs: [TensorDesc]) throws -> [HostTensor] {
        let q = a["q"], k = a["k"], v = a["v"]
        let (b, hq, lq, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2], q.desc.shape[3])
        let (hkv, lk, dv) = (k.desc.shape[1], k.desc.shape[2], v.desc.shape[3])
        let scale = p.scale ?? 1 / Double(d).squareRoot()
        let qv = q.doubles, kv = k.doubles, vv = v.doubles
        var o = [Double](), lse = [Double]()
        for bi in 0..<b {
            for h in 0..<hq {
                let g = h / (hq / hkv)
                let kBase = (bi * hkv + g) * lk * d, vBase = (bi * hkv + g) * lk * dv
                for i in 0..<lq {
                    let qBase = ((bi * hq + h) * lq + i) * d
                    let visible = p.causal ? max(0, min(lk, i + lk - lq + 1)) : lk
                    var logits: [Double] = []
                    for j in 0..<visible {
                        var dot = 0.0
                        for c in 0..<d { dot += qv[qBase + c] * kv[kBase + j * d + c] }
                        logits.append(dot * scale)
                    }
                    let r = attend(logits, Array(0..<visible), vv, dv: dv, rowStride: dv, base: vBase)
                    o += r.out
                    lse.append(r.lse)
                }
            }
        }
        var result = [try output(outs[0].shape, outs[0].dtype, o)]
        if p.returnLSE { result.append(try output(outs[1].shape, .f32, lse)) }
        return result
    }

    static func lightningIndexer(_ a: Args) throws -> HostTensor {
        let q = a["q"], k = a["k"], w = a["w"]
        let (t, hi, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2])
        let s = k.desc.shape[0]
        let qv = q.doubles, kv = k.doubles, wv = w.doubles
        var out = [Double](repeating: -.infinity, count: t * s)
        for ti in 0..<t {
            for si in 0..<s where si <= ti + s - t {
                var acc = 0.0
                for j in 0..<hi {
                    var dot = 0.0
                    for c in 0..<d { dot += qv[(ti * hi + j) * d + c] * kv[si * d + c] }
                    acc += wv[ti * hi + j] * max(dot, 0)
                }
                out[ti * s + si] = acc
            }
        }
        return try output([t, s], .f32, out)
    }

    /// Indices of the `k` largest selectable entries of `row` (descending, lower index
    /// first on ties; −inf and NaN never selected), padded with −1.
    static func topKRow(_ row: ArraySlice<Double>, _ k: Int) -> [Int] {
        let base = row.startIndex
        let candidates = row.indices.filter { !row[$0].isNaN && row[$0] != -.infinity }
        let sorted = candidates.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
        let chosen = sorted.prefix(k).map { $0 - base }
        return chosen + [Int](repeating: -1, count: k - chosen.count)
    }

    static func topK(_ scores: HostTensor, _ k: Int) throws -> [HostTensor] {
        let (t, s) = (scores.desc.shape[0], scores.desc.shape[1])
        let v = scores.doubles
        var idx: [Int32] = [], vals: [Double] = []
        for r in 0..<t {
            let row = v[(r * s)..<((r + 1) * s)]
            for i in topKRow(row, k) {
                idx.append(Int32(i))
                vals.append(i >= 0 ? row[row.startIndex + i] : -.infinity)
            }
        }
        return [try HostTensor([t, k], int32s: idx), try output([t, k], .f32, vals)]
    }

    static func sparseAttention(_ a: Args, _ p: SparseAttentionParams, _ outs: [TensorDesc]) throws -> [HostTensor] {
        let q = a["q"], k = a["k"], v = a["v"]
        let (t, h, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2])
        let (s, hkv, dv) = (k.desc.shape[0], k.desc.shape[1], v.desc.shape[2])
        let topk = a["indices"].desc.shape[1]
        let ix = a["indices"].ints
        if let bad = ix.first(where: { $0 < -1 || $0 >= s }) {
            throw PolychipError.invalidArgument(kernel: OpKind.sparseAttention.name, argument: "indices",
                                                reason: "index \(bad) is outside 0..<\(s) (−1 marks padding)")
        }
        let scale = p.scale ?? 1 / Double(d).squareRoot()
        let qv = q.doubles, kv = k.doubles, vv = v.doubles
        var o = [Double](), lse = [Double]()
        for ti in 0..<t {
            // A repeated index is one key (DeepSeek's mask is a set): first occurrences only.
            var seen = Set<Int>()
            let rows = ix[(ti * topk)..<((ti + 1) * topk)].filter { $0 >= 0 && seen.insert($0).inserted }
            for hi in 0..<h {
                let g = hi / (h / hkv)
                let qBase = (ti * h + hi) * d
                let logits = rows.map { j -> Double in
                    var dot = 0.0
                    for c in 0..<d { dot += qv[qBase + c] * kv[(j * hkv + g) * d + c] }
                    return dot * scale
                }
                let r = attend(logits, rows, vv, dv: dv, rowStride: hkv * dv, base: g * dv)
                o += r.out
                lse.append(r.lse)
            }
        }
        var result = [try output(outs[0].shape, outs[0].dtype, o)]
        if p.returnLSE { result.append(try output(outs[1].shape, .f32, lse)) }
        return result
    }
}
