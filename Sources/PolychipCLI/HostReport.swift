import Foundation
import Polychip

/// The host as `polychip devices` reports it: the machine, and each backend's view of the
/// platform under it (drivers and their devices, from ``Backend/platformReport()``).
struct HostReport: Codable {
    var hostname: String
    var os: String
    var logicalCPUs: Int
    var memoryBytes: Int
    var cpuModel: String?
    /// Platform reports by backend name (`opencl`: the ICD loader's platforms and devices).
    var platforms: [String: PlatformReport]

    static func current() -> HostReport {
        let p = ProcessInfo.processInfo
        let reports = Polychip.registry.backends.compactMap { $0.platformReport() }
        return HostReport(hostname: p.hostName, os: p.operatingSystemVersionString, logicalCPUs: p.processorCount,
                          memoryBytes: Int(p.physicalMemory), cpuModel: cpuModelName,
                          platforms: Dictionary(reports.map { ($0.backend, $0) }, uniquingKeysWith: { a, _ in a }))
    }

    /// The CPU's model name from /proc/cpuinfo (nil where there is none).
    static var cpuModelName: String? {
        (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }

    var text: String {
        let lines = platforms.keys.sorted().compactMap { platforms[$0]?.text }
        return (lines + ["host \(hostname): \(cpuModel ?? "unknown CPU"), \(logicalCPUs) logical CPUs, \(String(format: "%.1f", Double(memoryBytes) / 1_073_741_824)) GiB"]).joined(separator: "\n")
    }
}
