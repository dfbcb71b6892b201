import Foundation
import Polychip

/// The host as `polychip devices` reports it.
struct HostReport: Codable {
    var hostname: String
    var os: String
    var logicalCPUs: Int
    var memoryBytes: Int
    var cpuModel: String?

    static func current() -> HostReport {
        let p = ProcessInfo.processInfo
        let model = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        return HostReport(hostname: p.hostName, os: p.operatingSystemVersionString, logicalCPUs: p.processorCount,
                          memoryBytes: Int(p.physicalMemory), cpuModel: model)
    }

    var text: String {
        "host \(hostname): \(cpuModel ?? "unknown CPU"), \(logicalCPUs) logical CPUs, \(String(format: "%.1f", Double(memoryBytes) / 1_073_741_824)) GiB"
    }
}
