import ArgumentParser
import Foundation
import Polychip

/// Options of every command that opens devices: extra profile files and profile overrides
/// for the simulated devices.
///
/// `--profile FILE` adds the device `sim:FILE` (a profile file anywhere on disk);
/// `--set PATH=VALUE` overrides a profile field on every simulated device the command opens
/// (after `POLYCHIP_SIM_SET`), e.g. `--set memory.bandwidth=2.0e12` or
/// `--set faults.kernelLaunchFailure.atEvent=3`.
struct SimulationOptions: ParsableArguments {
    @Option(name: .customLong("profile"), help: ArgumentHelp("A device profile JSON file; adds the device sim:FILE (repeatable).", valueName: "file"))
    var profiles: [String] = []

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a field of every simulated device's profile (repeatable), e.g. memory.bandwidth=2.0e12.", valueName: "path=value"))
    var settings: [String] = []

    func validate() throws {
        for s in settings {
            do { _ = try DeviceProfile.parseSetting(s) } catch { throw ValidationError("--set \(s): \(error)") }
        }
        for p in profiles where !FileManager.default.fileExists(atPath: p) {
            throw ValidationError("--profile \(p): no such file")
        }
    }

    @OptionGroup(title: "Plugins") var plugins: PluginOptions

    /// The registry the command resolves devices with: ``Polychip/registry`` with the settings
    /// and the plugins.
    var registry: BackendRegistry {
        get throws { try plugins.registry(simulationSettings: settings) }
    }

    /// `sim:FILE` selectors for the `--profile` files (absolute paths, so a bare file name is
    /// never taken for a bundled profile's name).
    var profileSelectors: [String] {
        profiles.map { "sim:" + URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    /// Resolves `--device` selectors plus the `--profile` devices; with neither, uses
    /// `POLYCHIP_DEVICES` or `fallback`.
    func resolve(_ devices: [String], fallback: [String]) throws -> [any Device] {
        try registry.resolve(devices + profileSelectors, fallback: fallback)
    }
}
