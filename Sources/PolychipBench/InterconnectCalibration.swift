import Foundation
import PolychipCore
import PolychipSimulated

/// The time model's view of measured collectives: modeled times on a profile, the fit of a
/// profile's interconnect to measured times (`polychip calibrate --interconnect`), and the
/// per-size comparison (`polychip bench --validate --collective …`).
///
/// The fit uses the model itself: for a profile of `p` devices on one switch running the
/// `direct` algorithms (those of `PolychipMPI`), every collective's modeled time is
/// `overhead + φ·latency + X / bandwidth`, where `φ` (latency terms on the critical path) and
/// `X` (bytes on the busiest port along it) depend only on the collective, its size and `p`.
/// They are read off the model with two probe profiles (unit latency and unbounded bandwidth;
/// zero latency and 1 B/s), so the fitted parameters mean exactly what the model does with
/// them. The parameters minimise the sum of |log(modeled/measured)| over every measured point —
/// over- and under-prediction weigh alike, and a few anomalous points (a noisy host's) cannot
/// drag the rest, as the median |error| reported afterwards asks — with none allowed below zero
/// (iteratively reweighted Gauss–Newton from a relative least-squares start).
public enum InterconnectModel {
    /// A fitted interconnect.
    public struct Fit: Sendable, Codable, Equatable {
        /// Per-collective overhead, seconds (`interconnect.collectiveOverhead`).
        public var overhead: Double
        /// Per-phase latency, seconds (`interconnect.link.latency`).
        public var latency: Double
        /// Achieved port bandwidth, bytes per second (`interconnect.link.bandwidth`, efficiency 1).
        public var bandwidth: Double
        /// Ranks the fit is for.
        public var ranks: Int
        /// Measured points and the median |modeled/measured − 1| over them (in sample).
        public var points: Int
        public var medianAbsoluteError: Double
    }

    /// One size of one collective: measured against modeled.
    public struct Point: Sendable, Codable, Equatable {
        public var collective: String
        public var size: Int
        public var measuredSeconds: Double
        public var modeledSeconds: Double
        /// `modeled / measured − 1`.
        public var error: Double
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
        var p = base
        if let name { p.name = name }
        func s<T>(_ v: T, _ why: String) -> Sourced<T> { Sourced(v, source: "\(source): \(why)") }
        p.interconnect = DeviceProfile.Interconnect(
            topology: s(.switch, "every rank reaches every other through its own port (MPI over the host's or network's fabric)"),
            devicesPerNode: s(max(1, ranks), "the ranks measured"),
            linksPerDevice: s(1, "one port per rank"),
            link: DeviceProfile.Link(bandwidth: s(bandwidth, "fitted port bandwidth"), latency: s(latency, "fitted per-phase latency"),
                                     efficiency: s(1.0, "the fitted bandwidth is the achieved one")),
            collectiveOverhead: s(overhead, "fitted per-collective overhead"),
            collectiveAlgorithms: s([.direct], "PolychipMPI's collectives are the direct algorithms"))
        do { try p.validate() } catch {
            throw PolychipError.malformedFile(path: "calibrate --interconnect", field: error.path ?? "", reason: error.description)
        }
        return p
    }

    /// Fits overhead, latency and bandwidth of a one-switch interconnect of `ranks` ports to
    /// `rows` (our measured collectives) over `base` (whose other sections are kept).
    public static func fit(_ rows: [CollectiveBenchRow], base: DeviceProfile, ranks: Int) throws -> Fit {
        let usable = rows.filter { $0.seconds > 0 && $0.seconds.isFinite && $0.ranks == ranks }
        guard ranks >= 2 else {
            throw PolychipError.invalidArgument(kernel: "calibrate --interconnect", argument: "ranks", reason: "one rank has no interconnect; start it with mpirun -np 2 or more")
        }
        guard usable.count >= 3 else {
            throw PolychipError.invalidArgument(kernel: "calibrate --interconnect", argument: "points", reason: "need at least 3 measured sizes, got \(usable.count)")
        }
        // φ and X of every point, from the probe profiles.
        let phaseProbe = try profile(base: base, ranks: ranks, overhead: 0, latency: 1, bandwidth: 1e30, source: "probe")
        let byteProbe = try profile(base: base, ranks: ranks, overhead: 0, latency: 0, bandwidth: 1, source: "probe")
        var design: [[Double]] = []
        for r in usable {
            guard let kind = CollectiveKind(rawValue: r.collective) else { continue }
            let phi = try modeledSeconds(phaseProbe, kind, size: r.size, ranks: ranks).rounded()
            let x = try modeledSeconds(byteProbe, kind, size: r.size, ranks: ranks)
            design.append([1, phi, x])
        }
        let t = usable.map(\.seconds)
        // Relative least squares: rows and targets divided by the measured time; coefficients ≥ 0.
        let a = zip(design, t).map { row, ti in row.map { $0 / ti } }
        let c = logLeastAbsolute(design, t, start: nonNegativeLeastSquares(a, Array(repeating: 1, count: a.count)))
        let bandwidth = c[2] > 0 ? 1 / c[2] : 1e30
        let fitted = try profile(base: base, ranks: ranks, overhead: c[0], latency: c[1], bandwidth: bandwidth, source: "fit")
        let errors = try usable.map { r -> Double in
            guard let kind = CollectiveKind(rawValue: r.collective) else { return 0 }
            return abs(try modeledSeconds(fitted, kind, size: r.size, ranks: ranks) / r.seconds - 1)
        }
        return Fit(overhead: c[0], latency: c[1], bandwidth: bandwidth, ranks: ranks, points: usable.count,
                   medianAbsoluteError: CollectiveBenchmark.median(errors))
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
