// Bisection.swift — finds the ops that break a model on a device: reference results are
// substituted for device ops until the final output is within budget.
//
// 1. Binary search over the op sequence: the smallest p such that running ops 0..<p on the
//    reference (and the rest on the device) is within budget; op p−1 is the last culprit.
//    Fix it on the reference and search again below it, until the culprits alone suffice.
// 2. Each culprit is dropped again if the others suffice without it (one-minimal set).
// 3. Per kernel: for every kernel among the culprits, all of its ops on the reference at once;
//    kernels that bring the output within budget alone are reported.
// Monotonicity (more reference ops never make the output worse) is assumed by step 1 and
// checked: the final set is always verified, and a failed check says "inconclusive".

import PolychipCore
import PolychipModels

struct Bisection {
    let exec: StackExecution
    let reference: StackRun
    let budget: Double
    let maxRuns: Int
    var runs = 0

    init(exec: StackExecution, reference: StackRun, budget: Double, maxRuns: Int) {
        self.exec = exec; self.reference = reference; self.budget = budget; self.maxRuns = maxRuns
    }

    struct OutOfRuns: Error {}

    /// The final NMSE with `substituted` calls on the reference.
    mutating func final(_ substituted: Set<Int>) throws -> Double {
        guard runs < maxRuns else { throw OutOfRuns() }
        runs += 1
        return ModelDiff.nmse(reference.output, try exec.run(substituting: substituted).output)
    }

    func good(_ v: Double) -> Bool { v <= budget }

    mutating func search(_ calls: [StackCall], ops: [OpDiff]) throws -> BisectionResult {
        func culprit(_ i: Int) -> Culprit {
            Culprit(index: i, op: calls[i].id, kernel: calls[i].kind.name, local: ops[i].local, budget: ops[i].budget,
                    localWithinBudget: ops[i].localWithinBudget)
        }
        var result = BisectionResult(culprits: [], culpritKernels: [], nmseWithCulprits: 0, nmseWithKernels: [:], runs: 0, outcome: "")
        do {
            let start = try final([])
            if good(start) {
                result.nmseWithCulprits = start
                result.outcome = "the final output is within budget already: nothing to bisect"
                result.runs = runs
                return result
            }
            var culprits = Set<Int>()
            var upper = calls.count
            while true {
                let now = try final(culprits)
                if good(now) { result.nmseWithCulprits = now; break }
                // good(culprits ∪ 0..<upper) holds (all ops at first, then the last step's hi).
                var lo = 0, hi = upper
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2
                    if good(try final(culprits.union(0..<mid))) { hi = mid } else { lo = mid }
                }
                culprits.insert(hi - 1)
                upper = hi - 1
                if try upper == 0 && !good(final(culprits)) {
                    result.outcome = "inconclusive: substituting ops does not bring the output within budget monotonically"
                    break
                }
            }
            for c in culprits.sorted() where culprits.count > 1 {
                let v = try final(culprits.subtracting([c]))
                if good(v) { culprits.remove(c); result.nmseWithCulprits = v }
            }
            result.culprits = culprits.sorted().map(culprit)
            for kind in Set(culprits.map { calls[$0].kind }).sorted(by: { $0.name < $1.name }) {
                let v = try final(Set(calls.filter { $0.kind == kind }.map(\.index)))
                result.nmseWithKernels[kind.name] = v
                if good(v) { result.culpritKernels.append(kind.name) }
            }
            if result.outcome.isEmpty {
                result.outcome = "\(result.culprits.count) op\(result.culprits.count == 1 ? "" : "s") on the reference bring\(result.culprits.count == 1 ? "s" : "") the final output within budget"
            }
        } catch is OutOfRuns {
            result.culprits = []
            result.outcome = "inconclusive: stopped after \(maxRuns) stack runs"
        }
        result.runs = runs
        return result
    }
}
