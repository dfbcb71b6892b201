import Foundation
import PolychipCore

/// A device's roofline: its peak arithmetic rate and memory bandwidth.
public struct Roof: Sendable, Hashable, Codable {
    /// Device id.
    public var device: String
    /// Peak FLOP/s for the plotted dtype (`nil` when unknown).
    public var peakFlops: Double?
    /// Memory bandwidth, B/s (`nil` when unknown).
    public var bandwidth: Double?

    /// Creates a roof.
    public init(device: String, peakFlops: Double?, bandwidth: Double?) {
        self.device = device; self.peakFlops = peakFlops; self.bandwidth = bandwidth
    }

    /// The roof a device reports in its ``DeviceInfo`` for `dtype` (f32's rate when the
    /// dtype has none).
    public static func of(_ device: any Device, dtype: DType) -> Roof {
        let peak = device.info.peakFlops[dtype.rawValue] ?? device.info.peakFlops["f32"]
        return Roof(device: device.id, peakFlops: peak.flatMap { $0 > 0 ? $0 : nil },
                    bandwidth: device.info.memoryBandwidth.flatMap { $0 > 0 ? $0 : nil })
    }

    /// Intensity (FLOP/byte) where the bandwidth slope meets the compute ceiling.
    public var ridge: Double? {
        guard let p = peakFlops, let b = bandwidth else { return nil }
        return p / b
    }
}

/// The log-log roofline chart: arithmetic intensity (FLOP/byte) against attained GFLOP/s,
/// one roof per device (bandwidth slope up to the compute ceiling), one point per bench row
/// (circle = measured, square = modeled), coloured by device.
enum RooflineChart {
    /// Pixel size of the chart.
    static let width = 1100.0, height = 560.0

    /// The chart as an SVG group (`<g id="roofline">`) placed at the origin.
    static func group(rows: [BenchResult], roofs: [Roof], devices: [String]) -> String {
        let plotted = rows.filter { $0.flops > 0 && $0.bytes > 0 && $0.medianSeconds > 0 }
        let left = 80.0, top = 40.0, right = width - 370, bottom = height - 60
        let xs = plotted.map(\.intensity) + roofs.compactMap(\.ridge)
        let ys = plotted.map(\.gflops) + roofs.compactMap { $0.peakFlops.map { $0 / 1e9 } }
        let x = LogScale(covering: xs.isEmpty ? [0.1, 100] : xs + [(xs.min() ?? 1) / 2, (xs.max() ?? 1) * 2], p0: left, p1: right)
        let y = LogScale(covering: ys.isEmpty ? [1, 1000] : ys + [(ys.min() ?? 1) / 2, (ys.max() ?? 1) * 2], p0: bottom, p1: top)
        var g: [String] = ["<g id=\"roofline\">"]
        g.append(SVG.text(width / 2, 22, "Roofline: attained GFLOP/s vs arithmetic intensity (log-log)", size: 15, anchor: "middle", weight: "bold"))
        g.append("<clipPath id=\"roofline-area\"><rect x=\"\(SVG.n(left))\" y=\"\(SVG.n(top))\" width=\"\(SVG.n(right - left))\" height=\"\(SVG.n(bottom - top))\"/></clipPath>")
        g.append("<rect x=\"\(SVG.n(left))\" y=\"\(SVG.n(top))\" width=\"\(SVG.n(right - left))\" height=\"\(SVG.n(bottom - top))\" fill=\"none\" stroke=\"#444\"/>")
        g += SVG.logLogGrid(x: x, y: y, left: left, right: right, top: top, bottom: bottom)
        g.append(SVG.text((left + right) / 2, bottom + 38, "arithmetic intensity (FLOP/byte)", size: 12, anchor: "middle"))
        g.append(SVG.text(22, (top + bottom) / 2, "attained GFLOP/s", size: 12, anchor: "middle", rotate: -90))

        // Roofs.
        g.append("<g clip-path=\"url(#roofline-area)\">")
        for roof in roofs {
            let c = SVG.color(devices.firstIndex(of: roof.device) ?? devices.count)
            var pts: [(Double, Double)] = []
            if let peak = roof.peakFlops.map({ $0 / 1e9 }), let bw = roof.bandwidth.map({ $0 / 1e9 }) {
                let ridge = peak / bw
                pts = [(x.lo, bw * x.lo), (ridge, peak), (x.hi, peak)]
                if ridge <= x.lo { pts = [(x.lo, peak), (x.hi, peak)] }
            } else if let peak = roof.peakFlops.map({ $0 / 1e9 }) {
                pts = [(x.lo, peak), (x.hi, peak)]
            } else if let bw = roof.bandwidth.map({ $0 / 1e9 }) {
                pts = [(x.lo, bw * x.lo), (x.hi, bw * x.hi)]
            }
            guard !pts.isEmpty else { continue }
            let path = pts.map { "\(SVG.n(x($0.0))),\(SVG.n(y($0.1)))" }.joined(separator: " ")
            g.append("<polyline class=\"roof\" data-device=\"\(SVG.escape(roof.device))\" points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.6\" stroke-dasharray=\"6 3\"><title>\(SVG.escape(roofTitle(roof)))</title></polyline>")
        }
        g.append("</g>")

        // Points, and one number per workload above its highest point (key on the right).
        let workloads = workloadKeys(plotted)
        for r in plotted {
            let c = SVG.color(devices.firstIndex(of: r.device) ?? devices.count)
            let px = x(r.intensity), py = y(r.gflops)
            let title = "\(r.kernel) \(r.shape) \(r.dtype) on \(r.device) (\(r.source)): \(String(format: "%.1f", r.gflops)) GFLOP/s at \(String(format: "%.3g", r.intensity)) FLOP/B"
            let data = "class=\"point\" data-kernel=\"\(SVG.escape(r.kernel))\" data-device=\"\(SVG.escape(r.device))\" data-source=\"\(r.source)\""
            if r.source == "measured" {
                g.append("<circle \(data) cx=\"\(SVG.n(px))\" cy=\"\(SVG.n(py))\" r=\"5\" fill=\"\(c)\" stroke=\"#000\" stroke-width=\"0.6\"><title>\(SVG.escape(title))</title></circle>")
            } else {
                g.append("<rect \(data) x=\"\(SVG.n(px - 4))\" y=\"\(SVG.n(py - 4))\" width=\"8\" height=\"8\" fill=\"\(c)\" fill-opacity=\"0.75\" stroke=\"\(c)\"><title>\(SVG.escape(title))</title></rect>")
            }
        }
        for (i, key) in workloads.enumerated() {
            let members = plotted.filter { workloadKey($0) == key }
            guard let top = members.max(by: { $0.gflops < $1.gflops }) else { continue }
            g.append(SVG.text(x(top.intensity) + 7, y(top.gflops) - 7, "\(i + 1)", size: 10, weight: "bold", cls: "workload-label"))
        }

        // Legend: devices, markers, workload key.
        var ly = top + 4
        let lx = right + 18
        g.append(SVG.text(lx, ly + 8, "devices (dashed: roof)", size: 11, weight: "bold"))
        ly += 20
        for (i, d) in devices.enumerated() {
            g.append("<g class=\"legend-entry\" data-device=\"\(SVG.escape(d))\">" +
                     "<rect x=\"\(SVG.n(lx))\" y=\"\(SVG.n(ly - 8))\" width=\"12\" height=\"10\" fill=\"\(SVG.color(i))\"/>" +
                     SVG.text(lx + 18, ly + 1, d, size: 10) + "</g>")
            ly += 15
        }
        ly += 6
        g.append("<circle cx=\"\(SVG.n(lx + 6))\" cy=\"\(SVG.n(ly - 3))\" r=\"5\" fill=\"#bbb\" stroke=\"#000\" stroke-width=\"0.6\"/>")
        g.append(SVG.text(lx + 18, ly + 1, "measured", size: 10))
        ly += 15
        g.append("<rect x=\"\(SVG.n(lx + 2))\" y=\"\(SVG.n(ly - 7))\" width=\"8\" height=\"8\" fill=\"#bbb\"/>")
        g.append(SVG.text(lx + 18, ly + 1, "modeled", size: 10))
        ly += 22
        g.append(SVG.text(lx, ly, "workloads", size: 11, weight: "bold"))
        ly += 15
        for (i, key) in workloads.enumerated() where ly < height - 10 {
            g.append(SVG.text(lx, ly, "\(i + 1)  \(key)", size: 9))
            ly += 12
        }
        g.append("</g>")
        return g.joined(separator: "\n")
    }

    /// `kernel shape dtype`: one workload across devices.
    static func workloadKey(_ r: BenchResult) -> String { "\(r.kernel) \(r.shape) \(r.dtype)" }

    /// Distinct workloads in first-seen order.
    static func workloadKeys(_ rows: [BenchResult]) -> [String] {
        var seen = Set<String>(), out: [String] = []
        for r in rows where seen.insert(workloadKey(r)).inserted { out.append(workloadKey(r)) }
        return out
    }

    static func roofTitle(_ r: Roof) -> String {
        let p = r.peakFlops.map { String(format: "%.4g GFLOP/s", $0 / 1e9) } ?? "peak unknown"
        let b = r.bandwidth.map { String(format: "%.4g GB/s", $0 / 1e9) } ?? "bandwidth unknown"
        return "\(r.device): \(p), \(b)"
    }
}
