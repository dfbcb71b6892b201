import Foundation

/// Renders bench results as a table, JSON or CSV.
public enum BenchReport {
    /// Human-readable side-by-side table.
    public static func table(_ rows: [BenchResult]) -> String {
        let header = ["kernel", "shape", "dtype", "device", "source", "median", "min–max", "GFLOP/s", "GB/s", "%roof", "bound", "verified"]
        let body = rows.map { r -> [String] in
            [r.kernel, r.shape, r.dtype, r.device, r.source, seconds(r.medianSeconds),
             r.source == "measured" ? "\(seconds(r.minSeconds))–\(seconds(r.maxSeconds))" : "-",
             String(format: "%.1f", r.gflops), String(format: "%.1f", r.gbps),
             r.rooflinePercent.map { String(format: "%.0f%%", $0) } ?? "-", r.bound, r.verified]
        }
        let widths = header.indices.map { i in max(header[i].count, body.map { $0[i].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + body.map(line)).joined(separator: "\n")
    }

    /// Seconds with a readable unit.
    public static func seconds(_ s: Double) -> String {
        if s >= 1 { return String(format: "%.3f s", s) }
        if s >= 1e-3 { return String(format: "%.3f ms", s * 1e3) }
        return String(format: "%.1f µs", s * 1e6)
    }

    /// JSON array of rows.
    public static func json(_ rows: [BenchResult]) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(rows)
    }

    /// CSV with a header line.
    public static func csv(_ rows: [BenchResult]) -> String {
        func q(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        var out = "kernel,shape,dtype,device,source,median_s,min_s,max_s,repetitions,flops,bytes,gflops,gbps,roofline_pct,bound,verified\n"
        for r in rows {
            let cells: [String] = [r.kernel, r.shape, r.dtype, r.device, r.source, "\(r.medianSeconds)", "\(r.minSeconds)", "\(r.maxSeconds)",
                                   "\(r.repetitions)", "\(r.flops)", "\(r.bytes)", "\(r.gflops)", "\(r.gbps)",
                                   r.rooflinePercent.map { "\($0)" } ?? "", r.bound, r.verified]
            out += cells.map(q).joined(separator: ",") + "\n"
        }
        return out
    }
}
