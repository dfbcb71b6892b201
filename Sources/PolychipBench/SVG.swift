import Foundation

/// Small helpers to write plain SVG (no scripts, no external resources) that browsers render.
enum SVG {
    /// Escapes text for XML content and attribute values.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters other than tab/newline are not allowed in XML 1.0.
                if ch.value < 0x20 && ch != "\t" && ch != "\n" { out += " " } else { out.unicodeScalars.append(ch) }
            }
        }
        return out
    }

    /// A coordinate with at most two decimals.
    static func n(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(format: "%.2f", r)
    }

    /// `<text>` at a point.
    static func text(_ x: Double, _ y: Double, _ s: String, size: Double = 11, anchor: String = "start",
                     weight: String? = nil, fill: String = "#222", rotate: Double? = nil, cls: String? = nil) -> String {
        var attrs = "x=\"\(n(x))\" y=\"\(n(y))\" font-size=\"\(n(size))\" text-anchor=\"\(anchor)\" fill=\"\(fill)\""
        if let weight { attrs += " font-weight=\"\(weight)\"" }
        if let rotate { attrs += " transform=\"rotate(\(n(rotate)) \(n(x)) \(n(y)))\"" }
        if let cls { attrs += " class=\"\(cls)\"" }
        return "<text \(attrs)>\(escape(s))</text>"
    }

    /// `<line>`.
    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String = "#999", width: Double = 1,
                     dash: String? = nil) -> String {
        "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(n(width))\"" +
            (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>"
    }

    /// Light grid lines at every decade of two log axes, labelled below and to the left.
    static func logLogGrid(x: LogScale, y: LogScale, left: Double, right: Double, top: Double, bottom: Double) -> [String] {
        var g: [String] = []
        for d in x.decades {
            g.append(line(x(d), top, x(d), bottom, stroke: "#e3e3e3"))
            g.append(text(x(d), bottom + 16, LogScale.label(d), size: 10, anchor: "middle"))
        }
        for d in y.decades {
            g.append(line(left, y(d), right, y(d), stroke: "#e3e3e3"))
            g.append(text(left - 6, y(d) + 4, LogScale.label(d), size: 10, anchor: "end"))
        }
        return g
    }

    /// A distinct color per series index (colour-blind-friendly first eight, then a hue walk).
    static func color(_ i: Int) -> String {
        let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
                       "#8C564B", "#7F7F7F", "#17BECF", "#BCBD22"]
        if i < palette.count { return palette[i] }
        let hue = Double((i * 47) % 360)
        return "hsl(\(Int(hue)), 60%, 40%)"
    }

    /// A complete document from a body.
    static func document(width: Double, height: Double, title: String, body: [String]) -> String {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(height))\" "
        s += "viewBox=\"0 0 \(n(width)) \(n(height))\" font-family=\"Helvetica, Arial, sans-serif\">\n"
        s += "<title>\(escape(title))</title>\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(n(width))\" height=\"\(n(height))\" fill=\"#ffffff\"/>\n"
        s += body.joined(separator: "\n")
        s += "\n</svg>\n"
        return s
    }
}

/// A base-10 logarithmic axis mapping a value range onto a pixel range.
struct LogScale {
    /// Decade-aligned value range.
    let lo: Double, hi: Double
    /// Pixel range (`p0` for `lo`).
    let p0: Double, p1: Double

    /// A scale covering `values` (positive, finite ones), widened to whole decades.
    init(covering values: [Double], p0: Double, p1: Double) {
        let v = values.filter { $0 > 0 && $0.isFinite }
        var lo = pow(10, (log10(v.min() ?? 1)).rounded(.down))
        var hi = pow(10, (log10(v.max() ?? 10)).rounded(.up))
        if hi <= lo { hi = lo * 10 }
        if !lo.isFinite || lo <= 0 { lo = 1 }
        if !hi.isFinite || hi <= lo { hi = lo * 10 }
        self.lo = lo; self.hi = hi; self.p0 = p0; self.p1 = p1
    }

    /// Pixel position of `v` (clamped to the range).
    func callAsFunction(_ v: Double) -> Double {
        let c = min(max(v, lo), hi)
        let t = (log10(c) - log10(lo)) / (log10(hi) - log10(lo))
        return p0 + t * (p1 - p0)
    }

    /// The decades inside the range.
    var decades: [Double] {
        var out: [Double] = []
        var d = lo
        while d <= hi * 1.0001 { out.append(d); d *= 10 }
        return out
    }

    /// A short label for a decade value (`1e-3`, `10`, `1e6`).
    static func label(_ v: Double) -> String {
        let e = Int(log10(v).rounded())
        if e >= 0 && e <= 3 { return String(Int(pow(10, Double(e)))) }
        return "1e\(e)"
    }
}
