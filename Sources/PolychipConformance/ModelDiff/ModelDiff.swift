// ModelDiff.swift — layer-level differential conformance (`polychip diff`): a decoder stack run
// on a device and on the reference from the same inputs, compared op by op against error
// budgets, with router and DSA selection agreement, and (optionally) a bisection that finds the
// ops whose substitution by the reference brings the output back within budget.

import PolychipCore
import PolychipModels
import PolychipReference

/// Runs differential comparisons of decoder stacks.
public enum ModelDiff {
    /// Compares `stack` on `device` with the reference; with `bisect`, also searches for the
    /// culprit ops (at most `maxBisectRuns` stack runs).
    public static func run(_ stack: DecoderStack, device: any Device, bisect: Bool = false, maxBisectRuns: Int = 400) throws -> ModelDiffReport {
        let exec = StackExecution(stack: stack, device: device)
        let ref = try exec.runReference()
        let dev = try exec.run()
        var ops: [OpDiff] = []
        var routers: [RouterAgreement] = [], selections: [SelectionAgreement] = []
        var accBudget = 0.0
        var permutes: [Int: StackCall] = [:]
        for call in stack.calls {
            let refIns = try call.args.map { try stack.value($0, in: ref.values) }
            let devIns = try call.args.map { try stack.value($0, in: dev.values) }
            let local = try exec.onDevice(call, refIns)
            let refOuts = try call.results.map { try stack.value($0, in: ref.values) }
            let devOuts = try call.results.map { try stack.value($0, in: dev.values) }
            let budget = ErrorBudget.nmse(call.op, refIns.map(\.desc))
            let inputOverBudget = zip(call.args, zip(refIns, devIns)).contains { arg, pair in
                !arg.hasPrefix("@") && pair.0.desc.dtype.isFloat && !(nmse(pair.0, pair.1) <= accBudget)
            }
            accBudget += budget
            var d = OpDiff(index: call.index, layer: call.layer, name: call.name, kernel: call.kind.name, local: nil, accumulated: nil,
                           budget: budget, accumulatedBudget: accBudget, reduction: ErrorBudget.reductionLength(call.op, refIns.map(\.desc)),
                           localWithinBudget: true, accumulatedWithinBudget: true, note: nil)
            var notes: [String] = []
            if let why = exec.unsupported[call.index] { notes.append("unsupported on the device (reference used): \(why)") }
            if call.kind == .moePermute { permutes[call.layer] = call }
            switch call.op {
            case .moeRouter(let p):
                let bias = p.hasBias ? refIns[1].doubles : nil
                let l = ChoiceAgreement.router(p, bias: bias, refLogits: refIns[0], gotLogits: refIns[0], ref: (refOuts[0], refOuts[1]),
                                               got: (local[0], local[1]), local: true, inputOverBudget: false)
                let a = ChoiceAgreement.router(p, bias: bias, refLogits: refIns[0], gotLogits: devIns[0], ref: (refOuts[0], refOuts[1]),
                                               got: (devOuts[0], devOuts[1]), local: false, inputOverBudget: inputOverBudget)
                routers.append(RouterAgreement(layer: call.layer, tokens: refIns[0].desc.shape[0], agreement: a.agreement, weightNMSE: a.weightNMSE,
                                               flips: a.flips, localAgreement: l.agreement, localWeightNMSE: l.weightNMSE, localFlips: l.flips))
                d.local = l.weightNMSE
                d.accumulated = a.weightNMSE
                d.localWithinBudget = l.flips.allSatisfy { $0.cause == "near tie" } && (l.weightNMSE ?? 0) <= budget
                if !a.flips.isEmpty { notes.append("\(a.flips.count) token\(a.flips.count == 1 ? " routes" : "s route") differently") }
            case .topK:
                let l = ChoiceAgreement.selection(refScores: refIns[0], gotScores: refIns[0], ref: refOuts[0], got: local[0], local: true,
                                                  inputOverBudget: false)
                let a = ChoiceAgreement.selection(refScores: refIns[0], gotScores: devIns[0], ref: refOuts[0], got: devOuts[0], local: false,
                                                  inputOverBudget: inputOverBudget)
                selections.append(SelectionAgreement(layer: call.layer, tokens: refIns[0].desc.shape[0], overlap: a.overlap, agreement: a.agreement,
                                                     flips: a.flips, localOverlap: l.overlap, localAgreement: l.agreement, localFlips: l.flips))
                d.local = l.agreement == 1 ? nmse(refOuts[1], local[1]) : nil
                d.accumulated = a.agreement == 1 ? nmse(refOuts[1], devOuts[1]) : nil
                d.localWithinBudget = l.flips.allSatisfy { $0.cause == "near tie" } && (d.local ?? 0) <= budget
                if !a.flips.isEmpty { notes.append(String(format: "selection overlap %.1f%%", 100 * a.overlap)) }
            default:
                let keys = call.layout == .expertRows ? permutes[call.layer].flatMap { try? rowKeys($0, stack, ref, dev) } : nil
                for (j, name) in call.op.outputNames.enumerated() {
                    if refOuts[j].desc.dtype.isFloat {
                        let lv = nmse(refOuts[j], local[j])
                        d.local = max(d.local ?? 0, lv)
                        let av: Double
                        if let keys, call.layout == .expertRows, refOuts[j].desc.shape.first == keys.ref.count {
                            let (v, matched) = alignedNMSE(refOuts[j], devOuts[j], keys.ref, keys.dev)
                            av = v
                            if matched < keys.ref.count { notes.append("\(name): \(matched)/\(keys.ref.count) rows routed alike, compared") }
                        } else {
                            av = nmse(refOuts[j], devOuts[j])
                        }
                        d.accumulated = max(d.accumulated ?? 0, av)
                    } else {
                        if refOuts[j].bytes != local[j].bytes {
                            d.localWithinBudget = false
                            notes.append("\(name): differs on the reference's inputs")
                        } else if refOuts[j].bytes != devOuts[j].bytes {
                            notes.append("\(name): differs in the pipeline (routing differs)")
                        }
                    }
                }
                if let v = d.local, !(v <= budget) { d.localWithinBudget = false }
            }
            if let v = d.accumulated, !(v <= accBudget) { d.accumulatedWithinBudget = false }
            d.note = notes.isEmpty ? nil : notes.joined(separator: "; ")
            ops.append(d)
        }
        let finalNMSE = nmse(ref.output, dev.output)
        let final = FinalError(nmse: finalNMSE, budget: accBudget, withinBudget: finalNMSE <= accBudget)
        var report = ModelDiffReport(device: device.id, model: stack.config.model.name, layers: stack.config.layers, tokens: stack.config.tokens,
                                     dtype: stack.config.dtype.rawValue, weights: stack.config.weights.rawValue, seed: stack.config.seed,
                                     ops: ops, routers: routers, selections: selections, final: final,
                                     unsupported: exec.unsupported.keys.sorted().map { "\(stack.calls[$0].id): \(exec.unsupported[$0] ?? "")" },
                                     bisection: nil, deviceCalls: 0, referenceCalls: 0)
        if bisect {
            var b = Bisection(exec: exec, reference: ref, budget: accBudget, maxRuns: maxBisectRuns)
            report.bisection = try b.search(stack.calls, ops: ops)
        }
        report.deviceCalls = exec.deviceCalls
        report.referenceCalls = exec.referenceCalls
        return report
    }

    /// NMSE of `got` against `ref` (float values); `.infinity` where non-finite values disagree.
    static func nmse(_ ref: HostTensor, _ got: HostTensor) -> Double {
        guard ref.desc.shape == got.desc.shape else { return .infinity }
        switch Comparison.floatNMSE(ref.floats, got.floats) {
        case .value(let v): return v
        case .failure: return .infinity
        }
    }

    /// Row keys `token · E + expert` of a layer's expert-ordered rows in both runs, from its
    /// permute's ids and source map.
    static func rowKeys(_ permute: StackCall, _ stack: DecoderStack, _ ref: StackRun, _ dev: StackRun) throws -> (ref: [Int], dev: [Int]) {
        guard case .moePermute(let e) = permute.op else { return ([], []) }
        func keys(_ run: StackRun) throws -> [Int] {
            let ids = try stack.value(permute.args[1], in: run.values)
            let map = try stack.value(permute.results[2], in: run.values).ints
            let k = ids.desc.shape[1], idv = ids.ints
            return map.map { ($0 / k) * e + idv[$0] }
        }
        return (try keys(ref), try keys(dev))
    }

    /// NMSE over the rows present in both runs (matched by key), and how many matched.
    static func alignedNMSE(_ ref: HostTensor, _ got: HostTensor, _ refKeys: [Int], _ gotKeys: [Int]) -> (Double, Int) {
        let rows = refKeys.count, width = ref.desc.elementCount / max(1, rows)
        var where_: [Int: Int] = [:]
        for (i, k) in gotKeys.enumerated() { where_[k] = i }
        let (a, b) = (ref.floats, got.floats)
        var x: [Float] = [], y: [Float] = []
        var matched = 0
        for (i, k) in refKeys.enumerated() {
            guard let j = where_[k] else { continue }
            matched += 1
            x += a[(i * width)..<((i + 1) * width)]
            y += b[(j * width)..<((j + 1) * width)]
        }
        switch Comparison.floatNMSE(x, y) {
        case .value(let v): return (v, matched)
        case .failure: return (.infinity, matched)
        }
    }
}
