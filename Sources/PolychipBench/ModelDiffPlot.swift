import Foundation
import PolychipConformance

// ModelDiffPlot.swift — the SVG of `polychip diff --plot`: error growth across the ops and
// layers of a decoder stack (accumulated and local NMSE on a log axis, against the budgets).

/// Plots a ``ModelDiffReport``.
public enum ModelDiffPlot {
    /// The plot: x = op in call order (layers shaded alternately), y = NMSE (log). Lines: the
    /// pipeline's accumulated error and the accumulated budget; dots: each op's local error
    /// (red when over its own budget); bisection culprits marked ▲.
    public static func svg(_ r: ModelDiffReport) -> String {
        let width = 1000.0, height = 460.0, left = 70.0, right = width - 160, top = 50.0, bottom = height - 60
        let floor = 1e-18
        func pos(_ v: Double?) -> Double? { v.map { $0 > 0 && $0.isFinite ? $0 : floor } }
        let values = r.ops.flatMap { [pos($0.local), pos($0.accumulated), $0.budget, $0.accumulatedBudget].compactMap { $0 } } + [r.final.nmse]
        let y = LogScale(covering: values.filter { $0 > floor } + [values.contains(floor) ? floor : values.min() ?? 1], p0: bottom, p1: top)
        let n = max(1, r.ops.count)
        func x(_ i: Int) -> Double { left + (right - left) * (Double(i) + 0.5) / Double(n) }
        var body: [String] = []
        body.append(SVG.text(left, 22, "\(r.model) on \(r.device) vs reference: error growth across ops and layers", size: 14, weight: "bold"))
        body.append(SVG.text(left, 40, "\(r.layers) layers · \(r.tokens) tokens · \(r.dtype) · weights \(r.weights) · final NMSE "
                             + String(format: "%.2e (budget %.2e)", r.final.nmse, r.final.budget), size: 11))
        // Layer bands.
        for layer in Set(r.ops.map(\.layer)).sorted() {
            let idx = r.ops.filter { $0.layer == layer }.map(\.index)
            guard let a = idx.min(), let b = idx.max() else { continue }
            let x0 = left + (right - left) * Double(a) / Double(n), x1 = left + (right - left) * Double(b + 1) / Double(n)
            if layer % 2 == 1 {
                body.append("<rect x=\"\(SVG.n(x0))\" y=\"\(SVG.n(top))\" width=\"\(SVG.n(x1 - x0))\" height=\"\(SVG.n(bottom - top))\" fill=\"#f4f4f8\"/>")
            }
            body.append(SVG.text((x0 + x1) / 2, bottom + 18, "L\(layer)", size: 11, anchor: "middle"))
        }
        for d in y.decades {
            body.append(SVG.line(left, y(d), right, y(d), stroke: "#e3e3e3"))
            body.append(SVG.text(left - 6, y(d) + 4, LogScale.label(d), size: 10, anchor: "end"))
        }
        body.append(SVG.text(18, (top + bottom) / 2, "NMSE vs reference", size: 11, anchor: "middle", rotate: -90))
        body.append(SVG.text((left + right) / 2, bottom + 40, "op (call order)", size: 11, anchor: "middle"))
        func polyline(_ pts: [(Double, Double)], _ color: String, dash: String? = nil) -> String {
            "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\"" + (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")
                + " points=\"" + pts.map { "\(SVG.n($0.0)),\(SVG.n($0.1))" }.joined(separator: " ") + "\"/>"
        }
        body.append(polyline(r.ops.map { (x($0.index), y($0.accumulatedBudget)) }, "#7F7F7F", dash: "5,4"))
        body.append(polyline(r.ops.compactMap { o in pos(o.accumulated).map { (x(o.index), y($0)) } }, SVG.color(0)))
        for o in r.ops {
            guard let v = pos(o.local) else { continue }
            let over = !o.localWithinBudget
            body.append("<circle cx=\"\(SVG.n(x(o.index)))\" cy=\"\(SVG.n(y(v)))\" r=\"\(over ? 3.5 : 2.2)\" fill=\"\(over ? "#D7191C" : SVG.color(1))\">"
                        + "<title>\(SVG.escape(o.id)) (\(o.kernel)): local \(String(format: "%.2e", v)), budget \(String(format: "%.2e", o.budget))</title></circle>")
        }
        for c in r.bisection?.culprits ?? [] {
            let cx = x(c.index)
            body.append("<path d=\"M\(SVG.n(cx - 5)),\(SVG.n(top - 2)) L\(SVG.n(cx + 5)),\(SVG.n(top - 2)) L\(SVG.n(cx)),\(SVG.n(top + 8)) Z\" fill=\"#D7191C\"><title>culprit \(SVG.escape(c.op))</title></path>")
        }
        body.append(SVG.line(left, bottom, right, bottom, stroke: "#444"))
        body.append(SVG.line(left, top, left, bottom, stroke: "#444"))
        let legend: [(String, String, String?)] = [("accumulated error", SVG.color(0), nil), ("accumulated budget", "#7F7F7F", "5,4"),
                                                    ("local error", SVG.color(1), nil), ("local over budget", "#D7191C", nil)]
        for (i, (label, color, dash)) in legend.enumerated() {
            let ly = top + 10 + Double(i) * 20
            if i < 2 {
                body.append(SVG.line(right + 12, ly, right + 34, ly, stroke: color, width: 2, dash: dash))
            } else {
                body.append("<circle cx=\"\(SVG.n(right + 23))\" cy=\"\(SVG.n(ly))\" r=\"3\" fill=\"\(color)\"/>")
            }
            body.append(SVG.text(right + 40, ly + 4, label, size: 10))
        }
        if !(r.bisection?.culprits.isEmpty ?? true) { body.append(SVG.text(right + 12, top + 94, "▲ bisection culprit", size: 10, fill: "#D7191C")) }
        return SVG.document(width: width, height: height, title: "polychip diff \(r.device)", body: body)
    }
}
