// PublishedFit.swift — `polychip simulate --validate --fit`: the profile figures that the
// records marked `fit` determine, computed from those records only (held-out and context
// records never enter). What it fits, per profile:
//
// - `compute.matrix.efficiency.max` from compute-bound GEMM records and
//   `memory.efficiency.max` from memory-bound streaming records — the kernels that define the
//   peaks, as `polychip calibrate` does for measured devices (a memory-bound GEMM fits
//   neither);
// - `kernelEfficiency.CLASS.compute` / `.memory` from records of other kernel classes, relative
//   to the fitted unit curves (≤ 1);
// - `interconnect.allToAllTuning.dispatch` / `.combine` from expert all-to-all records of each
//   phase (one message per expert or per rank): a call and a per-message overhead and the
//   intra-node and inter-node bandwidth efficiencies (a grid search minimising the squared log
//   error) — at most four numbers per phase.
//
// Time terms scale as 1/efficiency, so a required efficiency is the current one times
// (modeled term) / (published time − launch); the geometric mean over records is the fit.
// Which records a term sees depends on the bound the model assigns them, which depends on the
// efficiencies: the fit iterates until the values stop moving (a fixed point), so fitting an
// already-fitted profile returns its own figures.

import Foundation
import PolychipCore
import PolychipSimulated

/// One fitted figure.
public struct PublishedFitValue: Codable, Sendable, Equatable {
    /// Profile name.
    public var profile: String
    /// JSON path in the profile (`compute.matrix.efficiency.max`,
    /// `interconnect.allToAllTuning.combine.efficiency[devices=16]`).
    public var path: String
    /// The fitted value.
    public var value: Double
    /// The value the bundled profile has now (nil if absent).
    public var current: Double?
    /// The fit records it comes from (`source/record`).
    public var records: [String]
}

/// The fit.
public enum PublishedFit {
    /// Fits every profile that has fit records. `overrides`/`settings` as for the validation.
    public static func fit(sources: [PublishedSource], overrides: [String: String] = [:], settings: [String] = []) throws -> [PublishedFitValue] {
        var out: [PublishedFitValue] = []
        for name in Array(Set(sources.map(\.profile))).sorted() {
            let srcs = sources.filter { $0.profile == name }
            // The figures as the bundled profile (or its --profile replacement) has them now.
            let current = try SimulatedBackend.loadProfile(overrides[name] ?? name, settings: settings)
            var work = current
            var values: [PublishedFitValue] = []
            for _ in 0..<12 {
                let next = try fitOnce(name, srcs, base: work, current: current)
                let moved = zip(next, values).contains { abs($0.value - $1.value) > 1e-4 * max(abs($1.value), 1e-9) } || next.count != values.count
                values = next
                work = applying(values, to: work)
                if !moved { break }
            }
            out += values
        }
        return out
    }

    /// One pass over a profile's fit records, priced with `base` (plus each source's settings).
    static func fitOnce(_ name: String, _ srcs: [PublishedSource], base: DeviceProfile, current: DeviceProfile) throws -> [PublishedFitValue] {
        var matrix: [(Double, String)] = [], memory: [(Double, String)] = []
        var classes: [String: (compute: [(Double, String)], memory: [(Double, String)])] = [:]
        var exchanges: [ExpertPhase: [AllToAllPoint]] = [:]
        for src in srcs {
            let prof = try base.applying(settings: src.settings ?? [])
            let model = TimeModel(profile: prof)
            var untuned = prof
            untuned.interconnect.allToAllTuning = nil
            let bare = TimeModel(profile: untuned)
            for r in src.records where r.split == .fit {
                let tag = "\(src.id)/\(r.id)", sd = PublishedValidation.seed(src.id, r.id)
                let traffic = PublishedPricing.traffic(r, profile: prof, seed: sd)
                guard let pub = PublishedPricing.publishedSeconds(r, profile: prof, traffic: traffic) else { continue }
                if let q = PublishedPricing.query(r.setting) {
                    let t = try model.kernelTime(q)
                    let busy = pub - t.launch
                    guard busy > 0 else { continue }
                    let cls = q.kernelClass ?? .gemm
                    let k = prof.efficiency(of: cls)
                    if t.bound == .compute {
                        if cls == .gemm { matrix.append((prof.compute.matrix.efficiency.max.value * t.compute / busy, tag)) }
                        else { classes[cls.rawValue, default: ([], [])].compute.append(((k?.compute?.value ?? 1) * t.compute / busy, tag)) }
                    } else if t.bound == .memory {
                        // Streams define the memory curve; a memory-bound GEMM is neither a
                        // clean stream nor compute-bound, so it fits nothing.
                        if cls == .elementwise { memory.append((prof.memory.efficiency.max.value * t.memory / busy, tag)) }
                        else if cls != .gemm { classes[cls.rawValue, default: ([], [])].memory.append(((k?.memory?.value ?? 1) * t.memory / busy, tag)) }
                    }
                } else if case .expertAllToAll(let e) = r.setting, e.scheme != ExpertExchangeScheme.perNode.rawValue, let traffic {
                    let phase: ExpertPhase = e.phase == "combine" ? .combine : .dispatch
                    let scheme = ExpertExchangeScheme(rawValue: e.scheme) ?? .perExpert
                    let c = try bare.expertExchange(traffic, scheme: scheme, phase: phase, balanced: true)
                    var m = bare.expertMatrices(traffic, scheme: scheme, group: Array(0..<e.epSize), balanced: true)[0]
                    if phase == .combine { m = m.indices.map { i in m.indices.map { j in m[j][i] } } }
                    // The transfer term of the intra-node and of the cross-node traffic alone.
                    let per = prof.interconnect.devicesPerNode.value
                    func part(_ sameNode: Bool) throws -> Double {
                        let sub = m.indices.map { i in m.indices.map { j in (i / per == j / per) == sameNode ? m[i][j] : 0 } }
                        guard sub.contains(where: { $0.contains { $0 > 0 } }) else { return 0 }
                        return try bare.allToAll(bytes: sub).transfer
                    }
                    exchanges[phase, default: []].append(AllToAllPoint(
                        tag: tag, published: pub, fixed: c.total - c.transfer, intra: try part(true), inter: try part(false),
                        messages: TimeModel.messages(m, messageBytes: traffic.bytesPerMessage).max() ?? 0))
                }
            }
        }
        var out: [PublishedFitValue] = []
        func add(_ path: String, _ pts: [(Double, String)], current: Double?) {
            guard !pts.isEmpty else { return }
            let g = exp(pts.map { log(max($0.0, 1e-6)) }.reduce(0, +) / Double(pts.count))
            out.append(PublishedFitValue(profile: name, path: path, value: min(g, 1), current: current, records: pts.map(\.1)))
        }
        add("compute.matrix.efficiency.max", matrix, current: current.compute.matrix.efficiency.max.value)
        add("memory.efficiency.max", memory, current: current.memory.efficiency.max.value)
        for (cls, v) in classes.sorted(by: { $0.key < $1.key }) {
            add("kernelEfficiency.\(cls).compute", v.compute, current: current.kernelEfficiency?[cls]?.compute?.value)
            add("kernelEfficiency.\(cls).memory", v.memory, current: current.kernelEfficiency?[cls]?.memory?.value)
        }
        for phase in ExpertPhase.allCases {
            guard let pts = exchanges[phase], !pts.isEmpty else { continue }
            out += fitAllToAll(name, phase, pts, current: current.interconnect.allToAllTuning?.terms(for: phase))
        }
        return out
    }

    /// The profile with fitted values written in (for the next pass of the fixed point).
    static func applying(_ values: [PublishedFitValue], to p: DeviceProfile) -> DeviceProfile {
        var q = p
        var terms: [ExpertPhase: DeviceProfile.AllToAllTerms] = [:]
        for v in values {
            let parts = v.path.split(separator: ".").map(String.init)
            switch v.path {
            case "compute.matrix.efficiency.max": q.compute.matrix.efficiency.max.value = v.value
            case "memory.efficiency.max": q.memory.efficiency.max.value = v.value
            default:
                if parts.first == "kernelEfficiency", parts.count == 3 {
                    var e = q.kernelEfficiency?[parts[1]] ?? DeviceProfile.KernelEfficiency()
                    let f = Sourced(v.value, source: "fit in progress")
                    if parts[2] == "compute" { e.compute = f } else { e.memory = f }
                    q.kernelEfficiency = (q.kernelEfficiency ?? [:]).merging([parts[1]: e]) { $1 }
                } else if parts.count >= 4, parts[0] == "interconnect", let phase = ExpertPhase(rawValue: parts[2]) {
                    var t = terms[phase] ?? DeviceProfile.AllToAllTerms()
                    let f = Sourced(v.value, source: "fit in progress")
                    switch parts[3] {
                    case "callOverhead": t.callOverhead = f
                    case "perMessageOverhead": t.perMessageOverhead = f
                    case "intraNodeEfficiency": t.intraNodeEfficiency = f
                    case "interNodeEfficiency": t.interNodeEfficiency = f
                    default: break
                    }
                    terms[phase] = t
                }
            }
        }
        if !terms.isEmpty {
            q.interconnect.allToAllTuning = DeviceProfile.AllToAllTuning(dispatch: terms[.dispatch], combine: terms[.combine])
        }
        return q
    }

    /// One fit record of an expert all-to-all, priced without tuning.
    struct AllToAllPoint {
        var tag: String
        var published: Double
        /// Everything but the transfer term (fixed overhead and latencies).
        var fixed: Double
        /// Transfer terms of the intra-node and the cross-node traffic alone.
        var intra: Double
        var inter: Double
        /// Messages of the busiest rank.
        var messages: Double

        /// The tuned model: the slower of the two parts at their efficiencies, plus overheads.
        func model(_ call: Double, _ msg: Double, _ ei: Double, _ ex: Double) -> Double {
            fixed + call + msg * messages + max(intra / ei, inter / ex)
        }
    }

    /// Least squared log error over the phase's fit records, searched on a coarse grid of the
    /// call overhead, per-message overhead, intra-node and inter-node efficiencies, then on a
    /// finer grid around the best point. An efficiency no record exercises is not fitted.
    static func fitAllToAll(_ name: String, _ phase: ExpertPhase, _ pts: [AllToAllPoint], current: DeviceProfile.AllToAllTerms?) -> [PublishedFitValue] {
        let hasIntra = pts.contains { $0.intra > 0 }, hasInter = pts.contains { $0.inter > 0 }
        func err(_ c: Double, _ m: Double, _ ei: Double, _ ex: Double) -> Double {
            pts.reduce(0) { acc, p in let l = log(p.model(c, m, ei, ex) / p.published); return acc + l * l }
        }
        func grid(_ lo: Double, _ hi: Double, _ step: Double) -> [Double] {
            stride(from: max(lo, 0), through: hi + step / 2, by: step).map { $0 }
        }
        var best = (e: err(0, 0, 1, 1), c: 0.0, m: 0.0, ei: 1.0, ex: 1.0)
        func search(_ cs: [Double], _ ms: [Double], _ eis: [Double], _ exs: [Double]) {
            for c in cs { for m in ms { for ei in eis { for ex in exs {
                let e = err(c, m, ei, ex)
                if e < best.e - 1e-12 { best = (e, c, m, ei, ex) }
            } } } }
        }
        let effs = grid(0.1, 1, 0.05)
        search(grid(0, 100e-6, 4e-6), grid(0, 200e-9, 8e-9), hasIntra ? effs : [1], hasInter ? effs : [1])
        search(grid(best.c - 4e-6, best.c + 4e-6, 0.5e-6), grid(best.m - 8e-9, best.m + 8e-9, 1e-9),
               hasIntra ? grid(best.ei - 0.05, min(best.ei + 0.05, 1), 0.005).filter { $0 > 0 && $0 <= 1 } : [1],
               hasInter ? grid(best.ex - 0.05, min(best.ex + 0.05, 1), 0.005).filter { $0 > 0 && $0 <= 1 } : [1])
        let tags = pts.map(\.tag), p = "interconnect.allToAllTuning.\(phase.rawValue)"
        var out = [
            PublishedFitValue(profile: name, path: "\(p).callOverhead", value: best.c, current: current?.callOverhead?.value, records: tags),
            PublishedFitValue(profile: name, path: "\(p).perMessageOverhead", value: best.m, current: current?.perMessageOverhead?.value, records: tags),
        ]
        if hasIntra {
            out.append(PublishedFitValue(profile: name, path: "\(p).intraNodeEfficiency", value: best.ei, current: current?.intraNodeEfficiency?.value,
                                         records: pts.filter { $0.intra > 0 }.map(\.tag)))
        }
        if hasInter {
            out.append(PublishedFitValue(profile: name, path: "\(p).interNodeEfficiency", value: best.ex, current: current?.interNodeEfficiency?.value,
                                         records: pts.filter { $0.inter > 0 }.map(\.tag)))
        }
        return out
    }

    /// The fitted values as a table.
    public static func table(_ values: [PublishedFitValue]) -> String {
        var out = "Figures fitted on the records marked fit (polychip simulate --validate --fit); held-out records never enter\n"
        for v in values {
            let cur = v.current.map { String(format: "%.4g", $0) } ?? "–"
            out += "  \(v.profile)  \(v.path) = \(String(format: "%.4g", v.value))  (profile now: \(cur); \(v.records.count) records: \(v.records.joined(separator: ", ")))\n"
        }
        return out
    }
}
