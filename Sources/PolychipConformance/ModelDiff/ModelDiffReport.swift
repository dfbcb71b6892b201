// ModelDiffReport.swift — what `polychip diff` reports: per op its local and accumulated error
// against its budget, router and DSA selection agreement per layer, the final output, and the
// bisection's culprits; as JSON (Codable) and as a table.

import Foundation

/// One kernel call of the stack compared with the reference.
public struct OpDiff: Sendable, Codable, Hashable {
    /// Position in the stack's call order.
    public var index: Int
    /// Layer (0-based).
    public var layer: Int
    /// Step name (`moe.router_topk`).
    public var name: String
    /// Kernel (`moe-router`).
    public var kernel: String
    /// NMSE of the device op on the reference's inputs to it (worst float output); nil when
    /// the op has no float output compared this way.
    public var local: Double?
    /// NMSE of the device pipeline against the reference pipeline at this op's output.
    public var accumulated: Double?
    /// The op's NMSE budget (``ErrorBudget/nmse(_:_:)``).
    public var budget: Double
    /// The sum of the budgets of every op up to and including this one.
    public var accumulatedBudget: Double
    /// Reduction length the budget was widened for.
    public var reduction: Int
    /// Whether the op, run on the reference's inputs, stays within its budget (float NMSE,
    /// exact integers, selections equal up to documented near ties).
    public var localWithinBudget: Bool
    /// Whether the pipeline's accumulated error at this op is within the accumulated budget.
    public var accumulatedWithinBudget: Bool
    /// Integer outputs, row alignment, substitutions, unsupported kernels.
    public var note: String?

    /// `L<layer>.<name>`.
    public var id: String { "L\(layer).\(name)" }
}

/// Why two runs chose differently for one token.
public struct ChoiceFlip: Sendable, Codable, Hashable {
    /// Token.
    public var token: Int
    /// Chosen by the reference only (experts or keys).
    public var referenceOnly: [Int]
    /// Chosen by the device only.
    public var deviceOnly: [Int]
    /// The reference's score gap between the closest swapped pair (expert choice scores,
    /// group scores where the kept groups differ, or indexer scores).
    public var gap: Double
    /// The error that could reverse it: the two runs' score difference on that pair (pipeline),
    /// or the catalog's near-tie allowance (local: 1e-6 of the row's score span).
    public var allowance: Double
    /// `near tie` (the gap is within the allowance and the scores within their budget),
    /// `over-budget input` (within the allowance, but the scores feeding the choice are over
    /// budget: the cause is upstream) or `selection kernel` (the gap exceeds the allowance).
    public var cause: String
}

/// Router choices of one MoE layer: device vs reference.
public struct RouterAgreement: Sendable, Codable, Hashable {
    /// Layer.
    public var layer: Int
    /// Tokens routed.
    public var tokens: Int
    /// Pipeline: fraction of tokens with the same expert set.
    public var agreement: Double
    /// Pipeline: NMSE of the routing weights on agreeing tokens (matched by expert id).
    public var weightNMSE: Double?
    /// Pipeline flips.
    public var flips: [ChoiceFlip]
    /// Local (the device router on the reference's logits): fraction with the same expert set.
    public var localAgreement: Double
    /// Local weight NMSE on agreeing tokens.
    public var localWeightNMSE: Double?
    /// Local flips.
    public var localFlips: [ChoiceFlip]
}

/// DSA top-k selections of one layer: device vs reference.
public struct SelectionAgreement: Sendable, Codable, Hashable {
    /// Layer.
    public var layer: Int
    /// Query tokens.
    public var tokens: Int
    /// Pipeline: mean overlap `|A ∩ B| / |A|` of the selected key sets.
    public var overlap: Double
    /// Pipeline: fraction of tokens with identical key sets.
    public var agreement: Double
    /// Pipeline flips.
    public var flips: [ChoiceFlip]
    /// Local (the device top-k on the reference's scores): mean overlap.
    public var localOverlap: Double
    /// Local: fraction of identical sets.
    public var localAgreement: Double
    /// Local flips.
    public var localFlips: [ChoiceFlip]
}

/// The stack's final output against the reference.
public struct FinalError: Sendable, Codable, Hashable {
    /// NMSE of the last layer's output.
    public var nmse: Double
    /// The sum of every op's budget.
    public var budget: Double
    /// `nmse ≤ budget` (and finite).
    public var withinBudget: Bool
}

/// A culprit of a bisection.
public struct Culprit: Sendable, Codable, Hashable {
    /// Call index.
    public var index: Int
    /// `L<layer>.<name>`.
    public var op: String
    /// Kernel.
    public var kernel: String
    /// Its local NMSE and budget.
    public var local: Double?
    /// Its budget.
    public var budget: Double
    /// Whether it stays within its own budget on the reference's inputs.
    public var localWithinBudget: Bool
}

/// What substituting the reference for device ops found.
public struct BisectionResult: Sendable, Codable, Hashable {
    /// The smallest set of ops found whose substitution brings the final output within
    /// budget, in call order (empty when the output is within budget already).
    public var culprits: [Culprit]
    /// Kernels such that substituting every op of that kernel alone brings the output within budget.
    public var culpritKernels: [String]
    /// Final NMSE with the culprits substituted.
    public var nmseWithCulprits: Double
    /// Final NMSE with every op of ``culpritKernels`` substituted, per kernel.
    public var nmseWithKernels: [String: Double]
    /// Stack runs the search took.
    public var runs: Int
    /// How the search ended (`within budget already`, `found`, `inconclusive: …`).
    public var outcome: String
}

/// The whole differential run.
public struct ModelDiffReport: Sendable, Codable, Hashable {
    /// The device's id.
    public var device: String
    /// The model.
    public var model: String
    /// Stack size.
    public var layers: Int, tokens: Int
    /// Activation dtype and weight scheme.
    public var dtype: String, weights: String
    /// Seed.
    public var seed: UInt64
    /// Every kernel call, in order.
    public var ops: [OpDiff]
    /// Router agreement per MoE layer.
    public var routers: [RouterAgreement]
    /// DSA selection agreement per layer.
    public var selections: [SelectionAgreement]
    /// The final output.
    public var final: FinalError
    /// Calls the device reported unsupported (the reference ran them; listed as `L<l>.<name>: reason`).
    public var unsupported: [String]
    /// The bisection, with `--bisect`.
    public var bisection: BisectionResult?
    /// Kernel calls executed on the device and on the reference (memoized repeats not counted).
    public var deviceCalls: Int, referenceCalls: Int

    /// Pretty, sorted-key JSON.
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }

    /// The table: per op local and accumulated NMSE against the budgets (`!` local over budget,
    /// `^` accumulated over budget), agreement per layer, the final output and the culprits.
    public func text() -> String {
        func e(_ v: Double?) -> String { v.map { $0 == 0 ? "0" : String(format: "%.2e", $0) } ?? "–" }
        func pct(_ v: Double) -> String { String(format: "%.1f%%", 100 * v) }
        var out = "polychip diff: \(device) vs reference · \(model) · \(layers) layer\(layers == 1 ? "" : "s") · \(tokens) tokens · \(dtype) · weights \(weights) · seed \(seed)\n\n"
        out += "  #  op                            kernel               local     budget    accumulated  acc.budget\n"
        for o in ops {
            let name = o.id.count > 29 ? String(o.id.prefix(28)) + "…" : o.id
            out += String(format: "%3d  %@%@ %@ %@%@ %@ %@%@ %@", o.index, name.padding(toLength: 29, withPad: " ", startingAt: 0),
                          "", o.kernel.padding(toLength: 20, withPad: " ", startingAt: 0),
                          e(o.local).padding(toLength: 9, withPad: " ", startingAt: 0), o.localWithinBudget ? " " : "!",
                          e(o.budget).padding(toLength: 9, withPad: " ", startingAt: 0),
                          e(o.accumulated).padding(toLength: 11, withPad: " ", startingAt: 0), o.accumulatedWithinBudget ? " " : "^",
                          e(o.accumulatedBudget))
            if let n = o.note { out += "  " + n }
            out += "\n"
        }
        out += "  (! local error over the op's budget; ^ accumulated error over the sum of budgets so far)\n"
        out += agreementSection("Router agreement (same expert set; weight NMSE on agreeing tokens)", "logits", routers.map { r in
            ("\(Int((r.agreement * Double(r.tokens)).rounded()))/\(r.tokens) \(pct(r.agreement)) w \(e(r.weightNMSE))",
             "\(Int((r.localAgreement * Double(r.tokens)).rounded()))/\(r.tokens) \(pct(r.localAgreement)) w \(e(r.localWeightNMSE))",
             r.layer, r.flips, r.localFlips)
        })
        out += agreementSection("DSA selection agreement (overlap of the top-k key sets; identical sets)", "scores", selections.map { s in
            ("\(pct(s.overlap)) overlap, \(pct(s.agreement)) identical", "\(pct(s.localOverlap)) overlap, \(pct(s.localAgreement)) identical",
             s.layer, s.flips, s.localFlips)
        })
        if !unsupported.isEmpty { out += "\nUnsupported on the device (the reference ran them): " + unsupported.joined(separator: "; ") + "\n" }
        out += String(format: "\nFinal output: NMSE %@ against a budget of %@: %@\n", e(final.nmse), e(final.budget),
                      final.withinBudget ? "within budget" : "OVER BUDGET")
        // Without a bisection, the first op over its own budget is the first place to look.
        if let first = ops.first(where: { !$0.localWithinBudget }) {
            out += "First op over its own budget (on the reference's inputs): \(first.id) (\(first.kernel)), local \(e(first.local)) vs \(e(first.budget))\n"
        }
        if let b = bisection {
            out += "\nBisection (\(b.runs) stack runs): \(b.outcome)\n"
            for c in b.culprits {
                out += "  culprit \(c.op) (\(c.kernel)): local NMSE \(e(c.local)), budget \(e(c.budget))\(c.localWithinBudget ? "" : " — over its own budget")\n"
            }
            if !b.culprits.isEmpty { out += "  with these on the reference: final NMSE \(e(b.nmseWithCulprits))\n" }
            for k in b.culpritKernels {
                out += "  culprit kernel \(k): every \(k) on the reference gives final NMSE \(e(b.nmseWithKernels[k]))\n"
            }
        }
        return out
    }

    /// One agreement table: per layer the pipeline and local summaries, then their flips.
    private func agreementSection(_ title: String, _ localInput: String,
                                  _ rows: [(pipeline: String, local: String, layer: Int, flips: [ChoiceFlip], localFlips: [ChoiceFlip])]) -> String {
        guard !rows.isEmpty else { return "" }
        var out = "\n\(title)\n  layer  pipeline                            local (on the reference's \(localInput))\n"
        for r in rows {
            out += "  L\(r.layer)".padding(toLength: 9, withPad: " ", startingAt: 0) + r.pipeline.padding(toLength: 36, withPad: " ", startingAt: 0) + r.local + "\n"
            out += flipLines(r.flips, "pipeline") + flipLines(r.localFlips, "local")
        }
        return out
    }

    private func flipLines(_ flips: [ChoiceFlip], _ side: String) -> String {
        guard !flips.isEmpty else { return "" }
        var causes: [String: Int] = [:]
        for f in flips { causes[f.cause, default: 0] += 1 }
        var s = "         \(side): \(flips.count) token\(flips.count == 1 ? " differs" : "s differ") (" + causes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
        if let f = flips.first {
            s += String(format: "; e.g. token %d: %@ → %@, gap %.2e vs %.2e", f.token, "\(f.referenceOnly)", "\(f.deviceOnly)", f.gap, f.allowance)
        }
        return s + "\n"
    }
}
