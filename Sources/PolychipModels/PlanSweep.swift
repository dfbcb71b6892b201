import Foundation
import PolychipCore

/// Sweeps of parallel plans and side-by-side comparisons of reports.
public enum PlanSweep {
    /// One evaluated plan.
    public struct Entry: Sendable, Codable {
        /// The plan.
        public var plan: ParallelPlan
        /// Its report, or nil when the plan was rejected.
        public var report: SimulationReport?
        /// Why the plan was rejected.
        public var rejected: String?
    }

    /// The result of a sweep on one profile.
    public struct Result: Sendable, Codable {
        /// Profile name.
        public var profile: String
        /// Every plan tried, in sweep order.
        public var entries: [Entry]
        /// The best plan: highest tokens/s among those that fit in memory (nil when none fits).
        public var best: Entry? {
            entries.filter { $0.report?.memory.fits == true }.max { ($0.report?.tokensPerSecond ?? 0) < ($1.report?.tokensPerSecond ?? 0) }
        }
    }

    /// Parses `ep=1,2,4,8` (also `tp`, `dp`, `pp`) into an axis.
    public static func parseAxis(_ s: String) throws -> (String, [Int]) {
        let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["tp", "dp", "ep", "pp"].contains(parts[0]) else {
            throw PolychipError.invalidArgument(kernel: "simulate", argument: "--sweep", reason: "expected tp|dp|ep|pp=V1,V2,…, got \(Quoted(s))")
        }
        let values = try parts[1].split(separator: ",").map { v -> Int in
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)), n >= 1, n <= SimulationLimits.maxWorld else {
                throw PolychipError.invalidArgument(kernel: "simulate", argument: "--sweep", reason: "\(Quoted(v)) is not a whole number in 1…\(SimulationLimits.maxWorld)")
            }
            return n
        }
        guard !values.isEmpty else { throw PolychipError.invalidArgument(kernel: "simulate", argument: "--sweep", reason: "no values in \(Quoted(s))") }
        return (parts[0], values)
    }

    /// Runs `base` for every combination of `axes` (other degrees from `fixed`, resolved as
    /// ``ParallelPlan/resolve(world:model:tp:dp:ep:pp:)`` does). Plans that do not resolve are
    /// listed as rejected.
    public static func run(base: SimulationRequest, axes: [(String, [Int])], fixed: [String: Int]) -> Result {
        let planCount = axes.reduce(1.0) { $0 * Double($1.1.count) }
        guard planCount <= Double(SimulationLimits.maxSweepPlans) else {
            let e = SimulationLimits.bad("--sweep", "the axes give more than the \(SimulationLimits.maxSweepPlans) plans a sweep tries")
            return Result(profile: base.profile.name, entries: [Entry(plan: ParallelPlan(tp: 0, dp: 0, ep: 0, pp: 0), report: nil, rejected: "\(e)")])
        }
        var combos: [[String: Int]] = [fixed]
        for (name, values) in axes {
            combos = combos.flatMap { c in values.map { v in var d = c; d[name] = v; return d } }
        }
        var entries: [Entry] = []
        var seen = Set<ParallelPlan>()
        let world = base.devicesPerNode.multipliedReportingOverflow(by: base.nodes).partialValue
        for c in combos {
            do {
                let plan = try ParallelPlan.resolve(world: world, model: base.model, tp: c["tp"], dp: c["dp"], ep: c["ep"], pp: c["pp"],
                                                  devicesPerNode: base.devicesPerNode)
                guard seen.insert(plan).inserted else { continue }
                var req = base
                req.plan = plan
                req.recordTrace = false
                entries.append(Entry(plan: plan, report: try ModelSimulator.run(req), rejected: nil))
            } catch {
                let p = ParallelPlan(tp: c["tp"] ?? 0, dp: c["dp"] ?? 0, ep: c["ep"] ?? 0, pp: c["pp"] ?? 0)
                entries.append(Entry(plan: p, report: nil, rejected: "\(error)"))
            }
        }
        return Result(profile: base.profile.name, entries: entries)
    }

    /// The sweep as a table with the best plan marked.
    public static func table(_ r: Result) -> String {
        var out = "\(r.profile): plans\n"
        out += "  plan                               step ms   tokens/s   mem/device GiB   fits\n"
        let best = r.best?.plan
        for e in r.entries {
            if let rep = e.report {
                out += "  " + (e.plan.description + (e.plan == best ? "  ← best" : "")).padding(toLength: 34, withPad: " ", startingAt: 0)
                out += String(format: "%9.3f  %9.1f  %15.2f   %@\n", rep.stepSeconds * 1e3, rep.tokensPerSecond, rep.memory.total / gib, rep.memory.fits ? "yes" : "NO")
            } else {
                let requested = ["tp": e.plan.tp, "dp": e.plan.dp, "ep": e.plan.ep, "pp": e.plan.pp].filter { $0.value > 0 }
                    .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                out += "  " + requested.padding(toLength: 34, withPad: " ", startingAt: 0) + "rejected: \(e.rejected ?? "")\n"
            }
        }
        if let b = r.best, let rep = b.report {
            out += String(format: "  best plan on %@: %@ — %.1f tokens/s, step %.3f ms, %.2f GiB per device\n", r.profile, b.plan.description,
                          rep.tokensPerSecond, rep.stepSeconds * 1e3, rep.memory.total / gib)
        } else {
            out += "  best plan on \(r.profile): none fits in memory\n"
        }
        return out
    }

    /// Reports side by side (the comparison table of docs/scenarios.md), one row per report.
    public static func comparison(_ reports: [SimulationReport]) -> String {
        func group(_ r: SimulationReport, _ prefix: String) -> Double { r.layerTypes.filter { $0.name.hasPrefix(prefix) }.reduce(0) { $0 + $1.seconds } }
        func op(_ r: SimulationReport, _ prefix: String) -> Double { r.operations.filter { $0.name.hasPrefix(prefix) }.reduce(0) { $0 + $1.seconds } }
        var out = "| profile | plan | step ms | tokens/s | attention ms | MoE experts ms | EP all-to-all ms | TP all-reduce ms | compute / memory / launch / comm / wait | mem/device GiB | fits | profile figures |\n"
        out += "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|\n"
        for r in reports {
            let b = r.breakdown, t = max(r.stepSeconds, 1e-30)
            let shares = ["compute", "memory", "launch", "communication", "wait"].map { String(format: "%.0f", 100 * (b[$0] ?? 0) / t) }.joined(separator: " / ")
            out += String(format: "| %@ | %@ | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %@ %% | %.1f | %@ | %@ |\n",
                          r.profile, r.plan.description, r.stepSeconds * 1e3, r.tokensPerSecond, group(r, "attention") * 1e3,
                          op(r, "moe.experts") * 1e3, (op(r, "moe.dispatch") + op(r, "moe.combine")) * 1e3,
                          r.operations.filter { $0.name.contains("all_reduce") }.reduce(0) { $0 + $1.seconds } * 1e3, shares,
                          r.memory.total / gib, r.memory.fits ? "yes" : "**no**", r.profileBasis ?? "–")
        }
        return out
    }
}
