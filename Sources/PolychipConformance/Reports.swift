import Foundation
import PolychipCore

extension ConformanceReport {
    /// A kernel × dtype matrix per device: each cell `pass n/m`, `FAIL n/m`, `unsupp`,
    /// `xfail` or `XPASS`, plus a summary line.
    public func consoleMatrix() -> String {
        var out = ""
        let devices = results.reduce(into: [String]()) { if !$0.contains($1.device) { $0.append($1.device) } }
        let dtypes = ["f32", "f16", "bf16"]
        for dev in devices {
            let rows = results.filter { $0.device == dev }
            let kernels = rows.reduce(into: [String]()) { if !$0.contains($1.kernel) { $0.append($1.kernel) } }
            let w = max(22, (kernels.map(\.count).max() ?? 0) + 2)
            out += "\n\(dev)\n" + "kernel".padding(toLength: w, withPad: " ", startingAt: 0)
                + dtypes.map { $0.padding(toLength: 14, withPad: " ", startingAt: 0) }.joined() + "\n"
            for k in kernels {
                out += k.padding(toLength: w, withPad: " ", startingAt: 0)
                for dt in dtypes {
                    let cell = rows.filter { $0.kernel == k && $0.dtype == dt }
                    out += Self.cell(cell).padding(toLength: 14, withPad: " ", startingAt: 0)
                }
                out += "\n"
            }
        }
        for r in results where r.status.isFailure {
            out += "\n\(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) [\(r.shape)] on \(r.device) seed \(r.seed): \(r.message ?? "")"
        }
        out += "\n\n" + summary + "\n"
        return out
    }

    /// `N passed, N failed, …` for the whole run.
    public var summary: String {
        var s = "\(count(.pass)) passed, \(count(.fail)) failed, \(count(.unsupported)) unsupported, \(count(.xfail)) expected failures, \(count(.xpass)) unexpected passes"
        // The isolation and bundle statuses appear only when they occur.
        for st in [CaseStatus.crashed, .timeout, .missing, .invalid] where count(st) > 0 { s += ", \(count(st)) \(st.rawValue)" }
        return s
    }

    static func cell(_ rs: [CaseResult]) -> String {
        if rs.isEmpty { return "-" }
        let n = rs.count
        for (st, word) in [(CaseStatus.crashed, "CRASH"), (.timeout, "TIMEOUT"), (.invalid, "INVALID"), (.missing, "MISSING")] {
            if rs.contains(where: { $0.status == st }) { return "\(word) \(rs.filter { $0.status == st }.count)/\(n)" }
        }
        if rs.contains(where: { $0.status == .fail }) { return "FAIL \(rs.filter { $0.status == .fail }.count)/\(n)" }
        if rs.contains(where: { $0.status == .xpass }) { return "XPASS \(n)" }
        if rs.allSatisfy({ $0.status == .unsupported }) { return "unsupp" }
        if rs.contains(where: { $0.status == .xfail }) { return "xfail \(rs.filter { $0.status == .xfail }.count)/\(n)" }
        let emulated = rs.contains { $0.support?.hasPrefix("emulated") ?? false }
        return "pass \(rs.filter { $0.status == .pass }.count)/\(n)\(emulated ? " (em)" : "")"
    }

    /// One JSON object per case (kernel, device, dtype, shape, status, nmse, threshold, seed).
    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(results)
    }

    /// JUnit XML: one test suite per device, one test case per conformance case.
    public func junitXML() -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let devices = results.reduce(into: [String]()) { if !$0.contains($1.device) { $0.append($1.device) } }
        let allErrors = count(.crashed) + count(.timeout)
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"polychip-conformance\" tests=\"\(results.count)\" failures=\"\(count(.fail) + count(.xpass) + count(.missing) + count(.invalid))\" errors=\"\(allErrors)\">\n"
        for d in devices {
            let rs = results.filter { $0.device == d }
            let errors = rs.filter { $0.status == .crashed || $0.status == .timeout }.count
            let fails = rs.filter { $0.status.isFailure }.count - errors
            let skips = rs.filter { $0.status == .unsupported || $0.status == .xfail }.count
            x += "  <testsuite name=\"\(esc(d))\" tests=\"\(rs.count)\" failures=\"\(fails)\" errors=\"\(errors)\" skipped=\"\(skips)\">\n"
            for r in rs {
                x += "    <testcase classname=\"\(esc(d)).\(esc(r.kernel))\" name=\"\(esc(r.dtype)) \(esc(r.shape))\">"
                switch r.status {
                case .pass: break
                case .fail, .xpass, .missing, .invalid:
                    x += "<failure type=\"\(r.status.rawValue)\" message=\"\(esc(r.message ?? r.status.rawValue))\"/>"
                case .crashed, .timeout:
                    // The process died or hung: a JUnit error, not a wrong answer.
                    x += "<error type=\"\(r.status.rawValue)\" message=\"\(esc(r.message ?? r.status.rawValue))\"/>"
                case .unsupported, .xfail: x += "<skipped message=\"" + esc(r.status.rawValue + ": " + (r.message ?? "")) + "\"/>"
                }
                x += "</testcase>\n"
            }
            x += "  </testsuite>\n"
        }
        return x + "</testsuites>\n"
    }

    /// Markdown support matrix (kernel × dtype per device) for docs/support-matrix.md.
    public func markdownMatrix() -> String {
        var out = ""
        let devices = results.reduce(into: [String]()) { if !$0.contains($1.device) { $0.append($1.device) } }
        for d in devices {
            let rows = results.filter { $0.device == d }
            let kernels = rows.reduce(into: [String]()) { if !$0.contains($1.kernel) { $0.append($1.kernel) } }
            out += "\n### \(d)\n\n| kernel | f32 | f16 | bf16 |\n|---|---|---|---|\n"
            for k in kernels {
                out += "| \(k) | " + ["f32", "f16", "bf16"].map { dt in Self.cell(rows.filter { $0.kernel == k && $0.dtype == dt }) }.joined(separator: " | ") + " |\n"
            }
            let notes = Set(rows.filter { $0.status == .unsupported || $0.status == .xfail || ($0.support?.hasPrefix("emulated") ?? false) }
                .map { "- \($0.kernel) \($0.dtype): \($0.status == .pass ? ($0.support ?? "") : ($0.message ?? ""))" })
            if !notes.isEmpty { out += "\n" + notes.sorted().joined(separator: "\n") + "\n" }
        }
        return out
    }
}
