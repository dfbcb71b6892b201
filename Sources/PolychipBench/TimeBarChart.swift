import Foundation

/// Horizontal bars of median time per kernel (log scale): one group per workload, one bar
/// per device row, solid for measured and translucent with a dashed outline for modeled;
/// measured bars carry their min–max as a whisker.
enum TimeBarChart {
    /// Chart width in pixels.
    static let width = RooflineChart.width
    static let barHeight = 9.0, barGap = 2.0, groupGap = 30.0, top = 70.0, left = 40.0, right = width - 240

    /// Height the chart needs for `rows`.
    static func height(rows: [BenchResult]) -> Double {
        let groups = RooflineChart.workloadKeys(rows).count
        return top + Double(rows.count) * (barHeight + barGap) + Double(groups) * groupGap + 40
    }

    /// The chart as an SVG group (`<g id="times">`) translated down by `offset`.
    static func group(rows: [BenchResult], devices: [String], offset: Double) -> String {
        let h = height(rows: rows)
        let bottom = h - 40
        let timed = rows.filter { $0.medianSeconds > 0 && $0.medianSeconds.isFinite }
        let x = LogScale(covering: timed.flatMap { [$0.medianSeconds, $0.minSeconds, $0.maxSeconds] }, p0: left, p1: right)
        var g: [String] = ["<g id=\"times\" transform=\"translate(0 \(SVG.n(offset)))\">"]
        g.append(SVG.text(width / 2, 24, "Median time per kernel: measured vs modeled (log scale)", size: 15, anchor: "middle", weight: "bold"))
        for d in x.decades {
            g.append(SVG.line(x(d), top - 8, x(d), bottom, stroke: "#e3e3e3"))
            g.append(SVG.text(x(d), bottom + 16, secondsLabel(d), size: 10, anchor: "middle"))
        }
        g.append(SVG.text((left + right) / 2, bottom + 34, "seconds", size: 12, anchor: "middle"))
        var yy = top
        for key in RooflineChart.workloadKeys(rows) {
            let members = rows.filter { RooflineChart.workloadKey($0) == key }
            g.append(SVG.text(left, yy - 5, key, size: 11, weight: "bold", cls: "workload-label"))
            for r in members {
                let c = SVG.color(devices.firstIndex(of: r.device) ?? devices.count)
                let w = max(1, x(r.medianSeconds) - left)
                let title = "\(key) on \(r.device) (\(r.source)): \(BenchReport.seconds(r.medianSeconds))"
                let data = "class=\"bar\" data-kernel=\"\(SVG.escape(r.kernel))\" data-device=\"\(SVG.escape(r.device))\" data-source=\"\(r.source)\" data-seconds=\"\(r.medianSeconds)\""
                if r.source == "measured" {
                    g.append("<rect \(data) x=\"\(SVG.n(left))\" y=\"\(SVG.n(yy))\" width=\"\(SVG.n(w))\" height=\"\(SVG.n(barHeight))\" fill=\"\(c)\"><title>\(SVG.escape(title))</title></rect>")
                    if r.maxSeconds > r.minSeconds {
                        let cy = yy + barHeight / 2
                        g.append(SVG.line(x(r.minSeconds), cy, x(r.maxSeconds), cy, stroke: "#000", width: 1))
                        g.append(SVG.line(x(r.maxSeconds), cy - 3, x(r.maxSeconds), cy + 3, stroke: "#000", width: 1))
                    }
                } else {
                    g.append("<rect \(data) x=\"\(SVG.n(left))\" y=\"\(SVG.n(yy))\" width=\"\(SVG.n(w))\" height=\"\(SVG.n(barHeight))\" fill=\"\(c)\" fill-opacity=\"0.45\" stroke=\"\(c)\" stroke-dasharray=\"3 2\"><title>\(SVG.escape(title))</title></rect>")
                }
                let end = r.source == "measured" ? max(left + w, x(r.maxSeconds)) : left + w
                g.append(SVG.text(end + 4, yy + barHeight - 1, BenchReport.seconds(r.medianSeconds), size: 8, fill: "#555"))
                yy += barHeight + barGap
            }
            yy += groupGap
        }
        // Legend.
        var ly = top
        let lx = right + 40
        for (i, d) in devices.enumerated() {
            g.append("<rect x=\"\(SVG.n(lx))\" y=\"\(SVG.n(ly - 8))\" width=\"12\" height=\"10\" fill=\"\(SVG.color(i))\"/>")
            g.append(SVG.text(lx + 16, ly + 1, d, size: 9))
            ly += 14
        }
        ly += 6
        g.append("<rect x=\"\(SVG.n(lx))\" y=\"\(SVG.n(ly - 8))\" width=\"12\" height=\"10\" fill=\"#777\"/>")
        g.append(SVG.text(lx + 16, ly + 1, "measured (line: min–max)", size: 9))
        ly += 14
        g.append("<rect x=\"\(SVG.n(lx))\" y=\"\(SVG.n(ly - 8))\" width=\"12\" height=\"10\" fill=\"#777\" fill-opacity=\"0.45\" stroke=\"#777\" stroke-dasharray=\"3 2\"/>")
        g.append(SVG.text(lx + 16, ly + 1, "modeled", size: 9))
        g.append("</g>")
        return g.joined(separator: "\n")
    }

    static func secondsLabel(_ s: Double) -> String {
        if s >= 1 { return "\(Int(s)) s" }
        if s >= 1e-3 { return "\(Int((s * 1e3).rounded())) ms" }
        if s >= 1e-6 { return "\(Int((s * 1e6).rounded())) µs" }
        return "\(Int((s * 1e9).rounded())) ns"
    }
}
