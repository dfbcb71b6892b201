// ChoiceAgreement.swift — the discrete choices of a model compared between two runs: which
// experts the router picked per token, and which keys the DSA top-k kept. A flip is classified
// by the reference's score gap on the closest swapped pair against the error that could
// reverse it (docs/model-diff.md, "Agreement").

import PolychipCore
import PolychipReference

/// The near-tie allowance of the catalog's integer comparison: reference scores within this
/// fraction of the row's score span may swap (docs/kernels.md, "Conformance tolerances").
let nearTieRelative = 1e-6

/// Set comparison of per-token choices.
enum ChoiceAgreement {
    /// Per token, the chosen ids (ignoring −1 padding) of a `[T, k]` i32 tensor.
    static func sets(_ ids: HostTensor) -> [[Int]] {
        let k = ids.desc.shape.last ?? 1, v = ids.ints
        return stride(from: 0, to: v.count, by: max(1, k)).map { Array(v[$0..<min(v.count, $0 + k)]).filter { $0 >= 0 } }
    }

    /// Pairs each reference-only choice (weakest first by `score`) with a device-only one
    /// (strongest first) and returns the pair whose gap exceeds its allowance the most, as
    /// `measure(a, b)` gives them: `(gap, allowance)` with the gap in the reference's scores.
    static func closestPair(refOnly: [Int], devOnly: [Int], score: (Int) -> Double,
                            measure: (Int, Int) -> (gap: Double, allowance: Double)) -> (gap: Double, allowance: Double) {
        let a = refOnly.sorted { score($0) < score($1) }, b = devOnly.sorted { score($0) > score($1) }
        var worst: (gap: Double, allowance: Double)? = nil
        for (x, y) in zip(a, b) {
            let m = measure(x, y)
            if worst == nil || m.gap - m.allowance > worst!.gap - worst!.allowance { worst = m }
        }
        return worst ?? (0, 0)
    }

    /// The cause of a flip with this gap and allowance; `inputOverBudget` says whether the
    /// scores feeding the choice were already over their budget (pipeline only).
    static func cause(gap: Double, allowance: Double, inputOverBudget: Bool, local: Bool) -> String {
        // Locally an exact tie must follow the tie rule (lower index first): equal inputs give
        // equal scores on any device.
        guard gap <= allowance * (1 + 1e-9) + 1e-300, !(local && gap == 0) else { return "selection kernel" }
        return inputOverBudget ? "over-budget input" : "near tie"
    }

    // MARK: Router

    /// Raw choice scores `s + bias` of every token (no group masking), `[T][E]`.
    static func choiceScores(_ logits: HostTensor, bias: [Double]?, _ p: RouterParams) -> [[Double]] {
        let e = logits.desc.shape[1], v = logits.doubles
        return stride(from: 0, to: v.count, by: e).map { r in
            Reference.routerScores(v[r..<(r + e)], p).enumerated().map { $0.element + (bias?[$0.offset] ?? 0) }
        }
    }

    /// The groups a token keeps under group-limited routing (all when `nGroup` is 1), and the group scores.
    static func groups(_ c: [Double], _ p: RouterParams) -> (kept: Set<Int>, scores: [Double]) {
        guard p.nGroup > 1 else { return (Set([0]), [0]) }
        let size = c.count / p.nGroup
        let scores = (0..<p.nGroup).map { g in c[(g * size)..<((g + 1) * size)].sorted(by: >).prefix(min(2, size)).reduce(0, +) }
        let kept = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(p.topkGroup)
        return (Set(kept), scores)
    }

    /// Compares two routings of the same tokens. `refLogits`/`gotLogits` are the logits each
    /// run routed (the same tensor for a local comparison, which then uses the near-tie
    /// allowance); `inputOverBudget` marks pipeline logits over their accumulated budget.
    static func router(_ p: RouterParams, bias: [Double]?, refLogits: HostTensor, gotLogits: HostTensor,
                       ref: (weights: HostTensor, ids: HostTensor), got: (weights: HostTensor, ids: HostTensor),
                       local: Bool, inputOverBudget: Bool) -> (agreement: Double, weightNMSE: Double?, flips: [ChoiceFlip]) {
        let rs = sets(ref.ids), gs = sets(got.ids)
        let cr = choiceScores(refLogits, bias: bias, p), cg = local ? cr : choiceScores(gotLogits, bias: bias, p)
        let k = p.topK
        let (rw, gw) = (ref.weights.floats, got.weights.floats)
        var same = 0, num = 0.0, den = 0.0
        var flips: [ChoiceFlip] = []
        let size = max(1, (cr.first?.count ?? 1) / max(1, p.nGroup))
        for t in rs.indices where t < gs.count {
            if Set(rs[t]) == Set(gs[t]) {
                same += 1
                for s in 0..<k {
                    guard let j = (0..<k).first(where: { got.ids.ints[t * k + $0] == rs[t][s] }) else { continue }
                    let d = Double(rw[t * k + s]) - Double(gw[t * k + j])
                    num += d * d
                    den += Double(rw[t * k + s]) * Double(rw[t * k + s])
                }
                continue
            }
            let refOnly = rs[t].filter { !gs[t].contains($0) }, devOnly = gs[t].filter { !rs[t].contains($0) }
            let (gr, gg) = (groups(cr[t], p), groups(cg[t], p))
            let span = cr[t].filter(\.isFinite).map(abs).max() ?? 1
            let pair = closestPair(refOnly: refOnly, devOnly: devOnly, score: { cr[t][$0] }, measure: { a, b in
                // The device kept b's group instead of one the reference kept: compare the group
                // scores (the weakest kept group against b's), not the experts'.
                if p.nGroup > 1, !gr.kept.contains(b / size), let weakest = gr.kept.min(by: { gr.scores[$0] < gr.scores[$1] }) {
                    let gap = gr.scores[weakest] - gr.scores[b / size]
                    let allowance = local ? nearTieRelative * span
                        : abs(gg.scores[weakest] - gr.scores[weakest]) + abs(gg.scores[b / size] - gr.scores[b / size])
                    return (gap, allowance)
                }
                return (cr[t][a] - cr[t][b], local ? nearTieRelative * span : abs(cg[t][a] - cr[t][a]) + abs(cg[t][b] - cr[t][b]))
            })
            flips.append(ChoiceFlip(token: t, referenceOnly: refOnly.sorted(), deviceOnly: devOnly.sorted(), gap: pair.gap, allowance: pair.allowance,
                                    cause: cause(gap: pair.gap, allowance: pair.allowance, inputOverBudget: inputOverBudget, local: local)))
        }
        let nmse: Double? = den > 0 ? num / den : (same > 0 ? num : nil)
        return (rs.isEmpty ? 1 : Double(same) / Double(rs.count), nmse, flips)
    }

    // MARK: DSA selection

    /// Compares two top-k selections of the same queries. `refScores`/`gotScores` are the
    /// scores each run selected from (the same tensor for a local comparison).
    static func selection(refScores: HostTensor, gotScores: HostTensor, ref: HostTensor, got: HostTensor, local: Bool,
                          inputOverBudget: Bool) -> (overlap: Double, agreement: Double, flips: [ChoiceFlip]) {
        let rs = sets(ref), gs = sets(got)
        let s = refScores.desc.shape[1]
        let (sr, sg) = (refScores.floats, local ? refScores.floats : gotScores.floats)
        var overlap = 0.0, same = 0
        var flips: [ChoiceFlip] = []
        for t in rs.indices where t < gs.count {
            let a = Set(rs[t]), b = Set(gs[t])
            overlap += a.isEmpty ? 1 : Double(a.intersection(b).count) / Double(a.count)
            if a == b { same += 1; continue }
            let row = sr[(t * s)..<((t + 1) * s)]
            let span = Double(row.filter(\.isFinite).map(abs).max() ?? 1)
            let refOnly = rs[t].filter { !b.contains($0) }, devOnly = gs[t].filter { !a.contains($0) }
            let pair = closestPair(refOnly: refOnly, devOnly: devOnly, score: { Double(sr[t * s + $0]) }, measure: { x, y in
                (Double(sr[t * s + x]) - Double(sr[t * s + y]),
                 local ? nearTieRelative * span : abs(Double(sg[t * s + x] - sr[t * s + x])) + abs(Double(sg[t * s + y] - sr[t * s + y])))
            })
            flips.append(ChoiceFlip(token: t, referenceOnly: refOnly.sorted(), deviceOnly: devOnly.sorted(), gap: pair.gap, allowance: pair.allowance,
                                    cause: cause(gap: pair.gap, allowance: pair.allowance, inputOverBudget: inputOverBudget, local: local)))
        }
        let n = Double(max(1, min(rs.count, gs.count)))
        return (overlap / n, Double(same) / n, flips)
    }
}
