import Foundation

/// The saturation curve of the time model fitted to measurements.
///
/// The model's compute (or memory) time for work `W` is `(W + h) / R` once the launch cost is
/// taken off (``docs/device-profiles.md``: `W / (R · e(W))` with `e(W) = W / (W + h)` and
/// `max = 1`). Given samples `(W_i, t_i)` and the launch cost `L`, ``fit(_:launch:)`` finds the
/// rate `R` and the half-saturation work `h ≥ 0` minimising the squared *relative* error of
/// `L + (W + h)/R` against `t_i` (weighted least squares of `t − L = a + b·W` with weights
/// `1/t²`, `R = 1/b`, `h = a·R`).
public struct SaturationFit: Sendable, Hashable, Codable {
    /// Asymptotic rate, work units per second (FLOP/s or B/s).
    public var rate: Double
    /// Work at which the attained rate is half of `rate`.
    public var halfSaturation: Double
    /// Median absolute relative error of the fit over its samples.
    public var medianAbsError: Double
    /// Samples used.
    public var samples: Int

    /// Fits `samples` (work, seconds); `nil` with fewer than one usable sample.
    ///
    /// - Parameter throughOrigin: fit `t − L = W / R` (h = 0): for curves whose ramp-up is not
    ///   resolved by the samples (an intercept extrapolated far below the smallest sample).
    public static func fit(_ samples: [(work: Double, seconds: Double)], launch: Double, throughOrigin: Bool = false) -> SaturationFit? {
        let pts = samples.filter { $0.work > 0 && $0.seconds > 0 && $0.work.isFinite && $0.seconds.isFinite }
        guard !pts.isEmpty else { return nil }
        // y = t − L (never below a tenth of t: the launch estimate is itself noisy).
        let ys = pts.map { max($0.seconds - launch, 0.1 * $0.seconds) }
        let ws = pts.map(\.work)
        let weights = pts.map { 1 / ($0.seconds * $0.seconds) }
        var a = 0.0, b = 0.0
        if pts.count >= 2 && !throughOrigin {
            var sw = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
            for i in pts.indices {
                sw += weights[i]; sx += weights[i] * ws[i]; sy += weights[i] * ys[i]
                sxx += weights[i] * ws[i] * ws[i]; sxy += weights[i] * ws[i] * ys[i]
            }
            let det = sw * sxx - sx * sx
            if det > 0 {
                b = (sw * sxy - sx * sy) / det
                a = (sy - b * sx) / sw
            }
        }
        if b <= 0 || a < 0 || !b.isFinite || !a.isFinite {
            // Through the origin: y = b·W.
            var num = 0.0, den = 0.0
            for i in pts.indices { num += weights[i] * ws[i] * ys[i]; den += weights[i] * ws[i] * ws[i] }
            a = 0
            b = den > 0 ? num / den : 0
        }
        guard b > 0, b.isFinite else { return nil }
        let rate = 1 / b, h = a * rate
        var errors = pts.indices.map { i in abs((launch + (ws[i] + h) / rate) / pts[i].seconds - 1) }
        errors.sort()
        return SaturationFit(rate: rate, halfSaturation: h, medianAbsError: median(errors), samples: pts.count)
    }

    /// Median of a sorted or unsorted list (0 when empty).
    static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
