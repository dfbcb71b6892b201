import ArgumentParser
import Foundation
import Polychip

/// `polychip devices [--json]`.
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices", abstract: "List every device of every backend, the host topology and the OpenCL platforms.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Flag(help: "Also print each device's block sizes and path thresholds per kernel: what `conform` derives its boundary shapes from (always in --json).")
    var tiling = false

    struct BackendEntry: Codable {
        var name: String
        var status: String
        var devices: [DeviceEntry]
        var error: String?
    }

    struct DeviceEntry: Codable {
        var id: String
        var info: DeviceInfo
        var support: [String: String]
        var tiling: DeviceTiling
    }

    struct Listing: Codable {
        var backends: [BackendEntry]
        var host: HostReport
    }

    func run() throws {
        var entries: [BackendEntry] = []
        for b in Polychip.registry.backends {
            do {
                let devs = try b.devices().map { d in
                    DeviceEntry(id: d.id, info: d.info, support: Dictionary(uniqueKeysWithValues: OpKind.allCases.compactMap { k in
                        let s = d.supports(k, dtype: .f32)
                        return s == .native ? nil : (k.name, s.description)
                    }), tiling: d.tiling)
                }
                entries.append(BackendEntry(name: b.name, status: b.status, devices: devs))
            } catch {
                entries.append(BackendEntry(name: b.name, status: "error", devices: [], error: "\(error)"))
            }
        }
        let listing = Listing(backends: entries, host: HostReport.current())
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(listing), as: UTF8.self))
            return
        }
        for e in entries {
            print("\(e.name): \(e.status)\(e.error.map { " — \($0)" } ?? "")")
            for d in e.devices {
                let gib = Double(d.info.memoryBytes) / 1_073_741_824
                print("  \(d.id.padding(toLength: 24, withPad: " ", startingAt: 0)) \(d.info.kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(format: "%8.1f GiB", gib))  \(d.info.computeUnits) CU  \(d.info.name)")
                for (k, v) in d.info.details.sorted(by: { $0.key < $1.key }) { print("      \(k): \(v)") }
                for (k, v) in d.support.sorted(by: { $0.key < $1.key }) { print("      \(k): \(v)") }
                if tiling { print(Self.tilingText(d.tiling)) }
            }
        }
        print(listing.host.text)
    }

    /// The tiling report as indented lines: overrides, then per kernel its variant and boundaries.
    static func tilingText(_ t: DeviceTiling) -> String {
        guard !t.kernels.isEmpty else { return "      tiling: none reported (conform uses generic blocks of 16 and 64)" }
        var lines = ["      tiling (override: \(t.overrides ?? "none")):"]
        for k in t.kernels {
            lines.append("        \(k.kernel.name)\(k.variant.map { " — \($0)" } ?? "")")
            for b in k.boundaries { lines.append("          \(b)") }
        }
        return lines.joined(separator: "\n")
    }
}
