import Foundation
import PolychipCore

/// The `--plot` figure: a roofline chart above a bar chart of measured vs modeled times,
/// in one plain SVG document (no scripts; hover titles give each mark's numbers).
public enum BenchPlot {
    /// The SVG document for `rows`, with one roof per entry of `roofs`.
    ///
    /// Marks carry machine-readable attributes: roofs are `polyline.roof[data-device]`,
    /// roofline points `.point[data-kernel][data-device][data-source]`, bars
    /// `rect.bar[data-kernel][data-device][data-source][data-seconds]`.
    public static func svg(rows: [BenchResult], roofs: [Roof], title: String = "polychip bench") -> String {
        var devices: [String] = []
        for d in rows.map(\.device) + roofs.map(\.device) where !devices.contains(d) { devices.append(d) }
        let barHeight = TimeBarChart.height(rows: rows)
        let total = RooflineChart.height + barHeight
        let body = [
            RooflineChart.group(rows: rows, roofs: roofs, devices: devices),
            TimeBarChart.group(rows: rows, devices: devices, offset: RooflineChart.height),
        ]
        return SVG.document(width: RooflineChart.width, height: total, title: title, body: body)
    }

    /// Writes the document to `path` (all-or-nothing, ``OutputFiles``).
    public static func write(rows: [BenchResult], roofs: [Roof], to path: String, title: String = "polychip bench") throws {
        try OutputFiles.write(Data(svg(rows: rows, roofs: roofs, title: title).utf8), to: path)
    }
}
