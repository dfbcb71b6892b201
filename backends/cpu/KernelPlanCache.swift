// KernelPlanCache.swift — the probed kernel choices remembered per machine, so every process
// on a machine runs the same kernels (and gives the same bits) whatever the load was when a
// later process started: probes compare paths within a few percent, and on a shared host the
// winner can flip between processes (seen on a loaded Zen 4 guest: the expert GEMM on
// `avx512 14x32` in one process, `avx2 6x16` in the next).

import CPolychipKernels
import Foundation

/// The per-machine record of probed choices: `$POLYCHIP_CPU_PLAN_CACHE`, else
/// `~/.cache/polychip/cpu-plan.json`; `off` (or empty) turns it off. Entries are keyed by the
/// CPU (model name and feature bits) and by the candidate tables of this build, so another
/// machine, another CPU or a build with other kernels probes afresh. `POLYCHIP_CPU_REPROBE=1`
/// probes again and replaces the entry. Written all-or-nothing (temporary file, then rename);
/// an unreadable or unwritable file only means the probes run, never an error.
enum KernelPlanCache {
    /// One family's remembered choice: the table's name and the probe's words.
    struct Entry: Codable, Equatable {
        var gemmShape: String
        var reason: String
    }

    private struct File: Codable {
        var version = 1
        var machines: [String: [String: Entry]] = [:]
    }

    /// The cache file, or nil when turned off.
    static var path: URL? {
        let env = ProcessInfo.processInfo.environment
        if let p = env["POLYCHIP_CPU_PLAN_CACHE"] {
            return p.isEmpty || p == "off" ? nil : URL(fileURLWithPath: p)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/polychip/cpu-plan.json")
    }

    /// Whether the user asked to probe again.
    static var reprobe: Bool { ProcessInfo.processInfo.environment["POLYCHIP_CPU_REPROBE"] == "1" }

    /// This machine and build: CPU model, feature bits and the candidate tables' names.
    static func key(candidates: [String]) -> String {
        "\(cpuModel()) | features \(String(pck_cpu_features(), radix: 16)) | \(candidates.joined(separator: ","))"
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown cpu" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// The remembered choices for `key` (family name → entry), or nil.
    static func load(key: String, at file: URL? = path) -> [String: Entry]? {
        guard !reprobe, let url = file, let data = try? Data(contentsOf: url),
              let file = try? JSONDecoder().decode(File.self, from: data), file.version == 1 else { return nil }
        return file.machines[key]
    }

    /// Remembers `entries` for `key` (other machines' entries kept).
    static func store(key: String, _ entries: [String: Entry], at file: URL? = path) {
        guard let url = file else { return }
        var file = (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(File.self, from: $0) } ?? File()
        if file.version != 1 { file = File() }
        file.machines[key] = entries
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? enc.encode(file) else { return }
        let dir = url.deletingLastPathComponent()
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        guard (try? data.write(to: tmp)) != nil else { return }
        if rename(tmp.path, url.path) != 0 { try? FileManager.default.removeItem(at: tmp) }
    }
}
