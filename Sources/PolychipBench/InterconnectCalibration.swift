import Foundation
import PolychipCore
import PolychipSimulated

/// The time model's view of measured collectives: modeled times on a profile, the fit of a
/// profile's interconnect to measured times (`polychip calibrate --interconnect`), and the
/// per-size comparison (`polychip bench --validate --collective …`).
///
/// The fit uses the model itself, level by level. A job of `hosts` hosts with `k` ranks each is
/// modeled as the profile's interconnect has it: one switch of `k` ports (`link`) on one host;
/// on several, `twoLevel` — that switch inside each host and a network between hosts
/// (`interNode`, one NIC per host shared by its ranks). A collective on a sub-communicator that
/// stays in one level — the ranks of one host, or one rank per host — with the `direct`
/// algorithms (those of `PolychipMPI`) takes `overhead + φ·latency + X / bandwidth` of that
/// level, where `φ` (latency terms on the critical path) and `X` (bytes on the busiest port or
/// NIC along it) depend only on the collective, its size and the group. They are read off the
/// model with probe profiles (one parameter at 1, a bandwidth at 1 B/s, the rest at nothing),
/// so the fitted parameters mean exactly what the model does with them. The parameters
/// minimise the sum of |log(modeled/measured)| over every measured point — over- and
/// under-prediction weigh alike, and a few anomalous points (a noisy host's) cannot drag the
/// rest, as the median |error| reported afterwards asks — with none allowed below zero
/// (iteratively reweighted Gauss–Newton from a relative least-squares start).
public enum InterconnectModel {
    /// One size of one collective: measured against modeled.
    public struct Point: Sendable, Codable, Equatable {
        /// The collective (`all-reduce`, …).
        public var collective: String
        /// Bytes per rank.
        public var size: Int
        /// Measured time, seconds.
        public var measuredSeconds: Double
        /// The model's time, seconds.
        public var modeledSeconds: Double
        /// `modeled / measured − 1`.
        public var error: Double
    }

    /// One level's latency (seconds per phase) and achieved bandwidth (bytes per second).
    public struct Figures: Sendable, Codable, Equatable {
        /// Seconds per phase.
        public var latency: Double
        /// Bytes per second.
        public var bandwidth: Double
        /// Creates the figures.
        public init(latency: Double, bandwidth: Double) {
            self.latency = latency
            self.bandwidth = bandwidth
        }
    }

    /// The two levels of a job's interconnect.
    public enum Level: String, Sendable, Codable, CaseIterable {
        /// Between the ranks of one host (shared memory or the host's fabric): `interconnect.link`.
        case intraHost = "intra-host"
        /// Between hosts (the network): `interconnect.interNode`.
        case interHost = "inter-host"
    }

    /// Where the ranks are: `hosts` hosts of `ranksPerHost` ranks each. Host `h`'s local rank
    /// `i` is the model's device `h·ranksPerHost + i`.
    public struct Layout: Sendable, Codable, Equatable, CustomStringConvertible {
        /// Hosts in the job.
        public var hosts: Int
        /// Ranks on each host.
        public var ranksPerHost: Int
        /// Creates a layout.
        public init(hosts: Int, ranksPerHost: Int) {
            self.hosts = hosts
            self.ranksPerHost = ranksPerHost
        }
        /// The model's devices of the sub-communicator that measures `level`: host 0's ranks
        /// (intra-host), or local rank 0 of every host (inter-host).
        public func devices(_ level: Level) -> [Int] {
            switch level {
            case .intraHost: return Array(0..<ranksPerHost)
            case .interHost: return (0..<hosts).map { $0 * ranksPerHost }
            }
        }
        public var description: String { "\(hosts) host\(hosts == 1 ? "" : "s") × \(ranksPerHost) rank\(ranksPerHost == 1 ? "" : "s")" }
    }

    /// One level's fitted figures and its in-sample error.
    public struct LevelFit: Sendable, Codable, Equatable {
        /// The level.
        public var level: Level
        /// Ranks of the sub-communicator that measured it.
        public var ranks: Int
        /// Per-phase latency, seconds.
        public var latency: Double
        /// Achieved bandwidth, bytes per second.
        public var bandwidth: Double
        /// Measured points.
        public var points: Int
        /// The median |modeled/measured − 1| over them.
        public var medianAbsoluteError: Double
    }

    /// The fit of every measured level of a layout.
    public struct LevelsFit: Sendable, Codable, Equatable {
        /// Where the ranks were.
        public var layout: Layout
        /// Per-collective overhead, seconds (shared by the levels: the profile has one).
        public var overhead: Double
        /// The intra-host level (nil: not measured, see `notMeasured`).
        public var intraHost: LevelFit?
        /// The inter-host level (nil: not measured, see `notMeasured`).
        public var interHost: LevelFit?
        /// One line per level that was not measured, saying why and what the profile holds instead.
        public var notMeasured: [String]
    }

    /// The model's time for `kind` at nccl-tests size `size` (the `CollectiveBenchRow.size`
    /// semantics) over `devices` (global device indices; default `0 ..< ranks`), with the
    /// `direct` algorithm when the profile offers it, else the fastest it offers.
    public static func modeledSeconds(_ profile: DeviceProfile, _ kind: CollectiveKind, size: Int, ranks: Int, devices: [Int]? = nil) throws -> Double {
        let model = TimeModel(profile: profile)
        let group = devices ?? Array(0..<ranks)
        let algorithm: CollectiveAlgorithm? = profile.interconnect.collectiveAlgorithms.value.contains(.direct) ? .direct : nil
        let bytes = Double(size)
        do {
            switch kind {
            case .allReduce: return try model.collective(.allReduce, bytes: bytes, group: group, algorithm: algorithm).total
            case .allGather: return try model.collective(.allGather, bytes: bytes, group: group, algorithm: algorithm).total
            case .reduceScatter: return try model.collective(.reduceScatter, bytes: bytes, group: group, algorithm: algorithm).total
            case .allToAll:
                let q = group.count
                let m = (0..<q).map { i in (0..<q).map { j in i == j ? 0 : bytes / Double(q) } }
                return try model.allToAll(bytes: m, group: group, algorithm: algorithm).total
            }
        } catch {
            throw PolychipError.invalidArgument(kernel: "\(kind)", argument: "profile \(profile.name)", reason: "\(error)")
        }
    }

    /// `base` with its interconnect replaced by a single switch of `ranks` ports running the
    /// direct algorithms with the given figures, each sourced with `source`.
    public static func profile(base: DeviceProfile, ranks: Int, overhead: Double, latency: Double, bandwidth: Double,
                               name: String? = nil, source: String) throws -> DeviceProfile {
        try profile(base: base, layout: Layout(hosts: 1, ranksPerHost: ranks), overhead: overhead,
                    intraHost: Figures(latency: latency, bandwidth: bandwidth), interHost: nil, name: name, source: source)
    }

    /// `base` with its interconnect replaced by the one of `layout` running the direct
    /// algorithms: on one host a switch of `ranksPerHost` ports (`link` = `intraHost`); on
    /// several, `twoLevel` — a switch per host (`link` = `intraHost`, or the base's link, marked
    /// not measured, where it is nil) and a network with one NIC per host shared by its ranks
    /// (`interNode` = `interHost`).
    public static func profile(base: DeviceProfile, layout: Layout, overhead: Double, intraHost: Figures?, interHost: Figures?,
                               name: String? = nil, source: String) throws -> DeviceProfile {
        var p = base
        if let name { p.name = name }
        func s<T>(_ v: T, _ why: String) -> Sourced<T> { Sourced(v, source: "\(source): \(why)") }
        func invalid(_ why: String) -> PolychipError {
            PolychipError.invalidArgument(kernel: "calibrate --interconnect", argument: "levels", reason: why)
        }
        guard layout.hosts >= 1, layout.ranksPerHost >= 1 else { throw invalid("a layout needs ≥ 1 host and ≥ 1 rank per host, got \(layout)") }
        let link: DeviceProfile.Link
        if let f = intraHost {
            link = DeviceProfile.Link(bandwidth: s(f.bandwidth, "fitted intra-host port bandwidth"), latency: s(f.latency, "fitted intra-host per-phase latency"),
                                      efficiency: s(1.0, "the fitted bandwidth is the achieved one"))
        } else if layout.hosts >= 2 {
            // Not invented: the base's own figures, each marked as not measured here.
            func kept<T>(_ v: Sourced<T>) -> Sourced<T> {
                Sourced(v.value, source: "not measured (one rank per host): kept from the base profile — \(v.source)", note: v.note, confidence: v.confidence)
            }
            link = DeviceProfile.Link(bandwidth: kept(base.interconnect.link.bandwidth), latency: kept(base.interconnect.link.latency),
                                      efficiency: kept(base.interconnect.link.efficiency))
        } else {
            throw invalid("ranks on one host need the intra-host figures")
        }
        var interNode: DeviceProfile.InterNode? = nil
        if layout.hosts >= 2 {
            guard let f = interHost else { throw invalid("ranks on \(layout.hosts) hosts need the inter-host figures") }
            interNode = DeviceProfile.InterNode(bandwidth: s(f.bandwidth, "fitted inter-host bandwidth (one rank per host sending)"),
                                                latency: s(f.latency, "fitted inter-host per-phase latency"),
                                                efficiency: s(1.0, "the fitted bandwidth is the achieved one"),
                                                nicsPerNode: s(1, "one network interface per host, shared by its ranks"))
        }
        p.interconnect = DeviceProfile.Interconnect(
            topology: layout.hosts >= 2 ? s(.twoLevel, "ranks on \(layout.hosts) hosts: a fabric inside each host, a network between them")
                                        : s(.switch, "every rank reaches every other through its own port (MPI over the host's fabric)"),
            nodeTopology: layout.hosts >= 2 ? s(.switch, "every rank of a host reaches the others through its own port") : nil,
            devicesPerNode: s(layout.ranksPerHost, "the ranks per host measured"),
            linksPerDevice: s(1, "one port per rank"),
            link: link, interNode: interNode,
            collectiveOverhead: s(overhead, "fitted per-collective overhead"),
            collectiveAlgorithms: s([.direct], "PolychipMPI's collectives are the direct algorithms"))
        do { try p.validate() } catch {
            throw PolychipError.malformedFile(path: "calibrate --interconnect", field: error.path ?? "", reason: error.description)
        }
        return p
    }

    /// `base` with the interconnect of `fit` (its measured levels; see
    /// ``profile(base:layout:overhead:intraHost:interHost:name:source:)``).
    public static func profile(base: DeviceProfile, fit: LevelsFit, name: String? = nil, source: String) throws -> DeviceProfile {
        try profile(base: base, layout: fit.layout, overhead: fit.overhead,
                    intraHost: fit.intraHost.map { Figures(latency: $0.latency, bandwidth: $0.bandwidth) },
                    interHost: fit.interHost.map { Figures(latency: $0.latency, bandwidth: $0.bandwidth) }, name: name, source: source)
    }

    /// One line per level of `fit` (figures and in-sample error, or why it was not measured).
    public static func summary(_ fit: LevelsFit) -> [String] {
        var lines = [String(format: "%@: overhead %.2f us per collective", fit.layout.description, fit.overhead * 1e6)]
        for l in [fit.intraHost, fit.interHost].compactMap({ $0 }) {
            lines.append(String(format: "%@ (%d ranks): latency %.2f us per phase, bandwidth %.4g GB/s per %@; in-sample median |error| %.1f%% over %d points",
                                l.level.rawValue, l.ranks, l.latency * 1e6, l.bandwidth / 1e9, l.level == .intraHost ? "port" : "host",
                                l.medianAbsoluteError * 100, l.points))
        }
        return lines + fit.notMeasured
    }

    /// Fits the interconnect of `layout` level by level: `intraHost` measured on the ranks of one
    /// host (`ranksPerHost` of them), `interHost` on one rank per host (`hosts` of them). Each
    /// level's latency and bandwidth come from its own points; the per-collective overhead is
    /// shared (the profile has one). A level with no points is not fitted (`LevelsFit.notMeasured`
    /// says why), and needs none where the layout has no such level.
    public static func fit(intraHost: [CollectiveBenchRow], interHost: [CollectiveBenchRow], base: DeviceProfile, layout: Layout) throws -> LevelsFit {
        func invalid(_ argument: String, _ why: String) -> PolychipError {
            PolychipError.invalidArgument(kernel: "calibrate --interconnect", argument: argument, reason: why)
        }
        let k = layout.ranksPerHost, h = layout.hosts
        guard k >= 1, h >= 1, k * h >= 2 else { throw invalid("ranks", "one rank has no interconnect; start it with mpirun -np 2 or more") }
        func usable(_ rows: [CollectiveBenchRow], ranks: Int) -> [CollectiveBenchRow] {
            rows.filter { $0.seconds > 0 && $0.seconds.isFinite && $0.ranks == ranks && CollectiveKind(rawValue: $0.collective) != nil }
        }
        let intra = k >= 2 ? usable(intraHost, ranks: k) : [], inter = h >= 2 ? usable(interHost, ranks: h) : []
        if !intraHost.isEmpty && k < 2 { throw invalid("intra-host points", "one rank per host has no intra-host level to measure") }
        if !interHost.isEmpty && h < 2 { throw invalid("inter-host points", "one host has no inter-host level to measure") }
        for (name, rows, all) in [("intra-host", intra, intraHost), ("inter-host", inter, interHost)] where !all.isEmpty && rows.count < 3 {
            throw invalid("points", "need at least 3 measured sizes of the \(name) level, got \(rows.count)")
        }
        guard !intra.isEmpty || !inter.isEmpty else { throw invalid("points", "need at least 3 measured sizes, got 0") }
        guard h == 1 || !inter.isEmpty else { throw invalid("inter-host points", "ranks on \(h) hosts: the inter-host level must be measured") }

        // The model is linear in (overhead, α_intra, 1/B_intra, α_inter, 1/B_inter) for a group
        // that uses one level only; each coefficient is read off a probe profile that sets that
        // parameter to 1 (a bandwidth to 1 B/s) and the others to nothing.
        let none = Figures(latency: 0, bandwidth: 1e30)
        let probes = try [(Figures(latency: 1, bandwidth: 1e30), none), (Figures(latency: 0, bandwidth: 1), none),
                          (none, Figures(latency: 1, bandwidth: 1e30)), (none, Figures(latency: 0, bandwidth: 1))].map {
            try profile(base: base, layout: layout, overhead: 0, intraHost: $0.0, interHost: h >= 2 ? $0.1 : nil, source: "probe")
        }
        let points = intra.map { ($0, Level.intraHost) } + inter.map { ($0, Level.interHost) }
        var design: [[Double]] = []
        for (r, level) in points {
            guard let kind = CollectiveKind(rawValue: r.collective) else { continue }
            let devices = layout.devices(level)
            var row = [1.0]
            for (j, probe) in probes.enumerated() {
                let v = try modeledSeconds(probe, kind, size: r.size, ranks: devices.count, devices: devices)
                row.append(j % 2 == 0 ? v.rounded() : v)  // latency terms count phases
            }
            design.append(row)
        }
        let t = points.map(\.0.seconds)
        // Only the measured levels' columns take part; the others stay zero.
        let columns = [0] + (intra.isEmpty ? [] : [1, 2]) + (inter.isEmpty ? [] : [3, 4])
        let a = design.map { row in columns.map { row[$0] } }
        // Relative least squares (rows and targets over the measured time, coefficients ≥ 0) as
        // the start of the log-L1 fit.
        let relative = zip(a, t).map { row, ti in row.map { $0 / ti } }
        let solved = logLeastAbsolute(a, t, start: nonNegativeLeastSquares(relative, Array(repeating: 1, count: a.count)))
        var c = [Double](repeating: 0, count: 5)
        for (k, j) in columns.enumerated() { c[j] = solved[k] }
        let intraFigures = intra.isEmpty ? nil : Figures(latency: c[1], bandwidth: c[2] > 0 ? 1 / c[2] : 1e30)
        let interFigures = inter.isEmpty ? nil : Figures(latency: c[3], bandwidth: c[4] > 0 ? 1 / c[4] : 1e30)
        let fitted = try profile(base: base, layout: layout, overhead: c[0], intraHost: intraFigures, interHost: interFigures, source: "fit")
        func level(_ l: Level, _ rows: [CollectiveBenchRow], _ f: Figures?) throws -> LevelFit? {
            guard let f, !rows.isEmpty else { return nil }
            let errors = try compare(rows, profile: fitted, devices: layout.devices(l)).map { abs($0.error) }
            return LevelFit(level: l, ranks: layout.devices(l).count, latency: f.latency, bandwidth: f.bandwidth, points: rows.count,
                            medianAbsoluteError: CollectiveBenchmark.median(errors))
        }
        var notMeasured: [String] = []
        if intra.isEmpty {
            notMeasured.append("intra-host: not measured (one rank per host)" + (h >= 2 ? "; the profile keeps the base's link figures, marked so" : ""))
        }
        if inter.isEmpty { notMeasured.append("inter-host: not measured (all \(k) ranks on one host); the profile has no inter-node level") }
        return LevelsFit(layout: layout, overhead: c[0], intraHost: try level(.intraHost, intra, intraFigures),
                         interHost: try level(.interHost, inter, interFigures), notMeasured: notMeasured)
    }

    /// Modeled against measured for every row (`devices`: the ranks' global device indices).
    public static func compare(_ rows: [CollectiveBenchRow], profile: DeviceProfile, devices: [Int]? = nil) throws -> [Point] {
        try rows.compactMap { r in
            guard let kind = CollectiveKind(rawValue: r.collective) else { return nil }
            let m = try modeledSeconds(profile, kind, size: r.size, ranks: r.ranks, devices: devices)
            return Point(collective: r.collective, size: r.size, measuredSeconds: r.seconds, modeledSeconds: m, error: m / r.seconds - 1)
        }
    }

    /// The per-size table of `compare` with each collective's and the overall median |error|
    /// (over the points whose size lies in `window`, when given).
    public static func table(_ points: [Point], profile: String, window: ClosedRange<Int>? = nil) -> String {
        var out = "# modeled (\(profile)) vs measured; error = modeled/measured − 1\n"
        out += "#" + ["collective", "size", "measured(us)", "modeled(us)", "error"].enumerated()
            .map { CollectiveBenchmark.pad($0.element, [15, 10, 14, 14, 9][$0.offset]) }.joined(separator: " ") + "\n"
        for p in points {
            out += " " + [CollectiveBenchmark.pad(p.collective, 15), CollectiveBenchmark.pad(CollectiveBenchmark.byteLabel(p.size), 10),
                          CollectiveBenchmark.pad(String(format: "%.1f", p.measuredSeconds * 1e6), 14),
                          CollectiveBenchmark.pad(String(format: "%.1f", p.modeledSeconds * 1e6), 14),
                          CollectiveBenchmark.pad(String(format: "%+.1f%%", p.error * 100), 9)].joined(separator: " ") + "\n"
        }
        let inWindow = points.filter { window?.contains($0.size) ?? true }
        let scope = window.map { " over \(CollectiveBenchmark.byteLabel($0.lowerBound))–\(CollectiveBenchmark.byteLabel($0.upperBound))" } ?? ""
        for k in inWindow.reduce(into: [String](), { if !$0.contains($1.collective) { $0.append($1.collective) } }) {
            let e = inWindow.filter { $0.collective == k }.map { abs($0.error) }
            out += String(format: "# %@: median |error| %.1f%% over %d sizes%@\n", k, CollectiveBenchmark.median(e) * 100, e.count, scope)
        }
        if !inWindow.isEmpty {
            out += String(format: "# median |error| %.1f%% over %d points%@\n", medianAbsoluteError(inWindow) * 100, inWindow.count, scope)
        }
        return out
    }

    /// Median |error| of `points`.
    public static func medianAbsoluteError(_ points: [Point]) -> Double {
        CollectiveBenchmark.median(points.map { abs($0.error) })
    }

    /// `min Σ |log(aᵢ·c) − log tᵢ|` over `c ≥ 0`: iteratively reweighted (weights `1/|rᵢ|`)
    /// projected Gauss–Newton with step halving, from `start`.
    static func logLeastAbsolute(_ a: [[Double]], _ t: [Double], start: [Double]) -> [Double] {
        let n = start.count
        func objective(_ c: [Double]) -> Double? {
            var sum = 0.0
            for (row, ti) in zip(a, t) {
                let pred = zip(row, c).reduce(0.0) { $0 + $1.0 * $1.1 }
                guard pred > 0, pred.isFinite else { return nil }
                sum += abs(log(pred / ti))
            }
            return sum
        }
        var c = start
        // Every prediction must be positive to take its log: give a zero fit a small bandwidth term.
        if objective(c) == nil, let k = (0..<n).last { c[k] = max(c[k], 1e-12) }
        guard var best = objective(c) else { return start }
        for _ in 0..<200 {
            var jac: [[Double]] = [], res: [Double] = []
            for (row, ti) in zip(a, t) {
                let pred = zip(row, c).reduce(0.0) { $0 + $1.0 * $1.1 }
                let r = log(pred / ti)
                let w = 1 / max(abs(r), 1e-6).squareRoot()  // √(1/|r|): the L1 reweighting
                jac.append(row.map { w * $0 / pred })
                res.append(-w * r)
            }
            // Columns pinned at zero whose gradient points below zero stay out of the step.
            let grad = (0..<n).map { j in zip(jac, res).reduce(0.0) { $0 - $1.0[j] * $1.1 } }
            let free = (0..<n).filter { c[$0] > 0 || grad[$0] < 0 }
            guard !free.isEmpty, let d = solveNormal(jac.map { row in free.map { row[$0] } }, res) else { break }
            var step = 1.0, improved = false
            while step > 1e-6 {
                var trial = c
                for (k, j) in free.enumerated() { trial[j] = max(0, c[j] + step * d[k]) }
                if let f = objective(trial), f < best - 1e-15 * max(1, best) {
                    c = trial
                    best = f
                    improved = true
                    break
                }
                step /= 2
            }
            if !improved { break }
        }
        return c
    }

    /// Least squares `min ‖A c − b‖` with `c ≥ 0`, for a few columns: the best unconstrained
    /// solution over every subset of columns whose solution is non-negative.
    static func nonNegativeLeastSquares(_ a: [[Double]], _ b: [Double]) -> [Double] {
        let n = a.first?.count ?? 0
        var best: (residual: Double, c: [Double])? = nil
        for mask in 1..<(1 << n) {
            let cols = (0..<n).filter { mask & (1 << $0) != 0 }
            guard let sub = solveNormal(a.map { row in cols.map { row[$0] } }, b), sub.allSatisfy({ $0 >= 0 }) else { continue }
            var c = [Double](repeating: 0, count: n)
            for (k, j) in cols.enumerated() { c[j] = sub[k] }
            let res = zip(a, b).reduce(0.0) { acc, rb in
                let pred = zip(rb.0, c).reduce(0.0) { $0 + $1.0 * $1.1 }
                return acc + (pred - rb.1) * (pred - rb.1)
            }
            if best == nil || res < best!.residual { best = (res, c) }
        }
        return best?.c ?? [Double](repeating: 0, count: n)
    }

    /// Solves the normal equations `AᵀA c = Aᵀb` by Gaussian elimination with partial pivoting.
    static func solveNormal(_ a: [[Double]], _ b: [Double]) -> [Double]? {
        let n = a.first?.count ?? 0
        guard n > 0, a.count >= n else { return nil }
        var m = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
        for i in 0..<n {
            for j in 0..<n { m[i][j] = zip(a, a).reduce(0.0) { $0 + $1.0[i] * $1.1[j] } }
            m[i][n] = zip(a, b).reduce(0.0) { $0 + $1.0[i] * $1.1 }
        }
        for col in 0..<n {
            guard let piv = (col..<n).max(by: { abs(m[$0][col]) < abs(m[$1][col]) }), abs(m[piv][col]) > 1e-300 else { return nil }
            m.swapAt(col, piv)
            for r in 0..<n where r != col {
                let f = m[r][col] / m[col][col]
                for c in col...n { m[r][c] -= f * m[col][c] }
            }
        }
        let x = (0..<n).map { m[$0][n] / m[$0][$0] }
        return x.allSatisfy(\.isFinite) ? x : nil
    }
}
