import ArgumentParser
import Foundation
import Polychip

/// `--plugin PATH` (repeatable): backend plugins whose devices (`NAME:INDEX`) the command can
/// select, after those of `POLYCHIP_PLUGINS`. A bare name (`--plugin onednn`) means a plugin this
/// package built next to the `polychip` executable.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: ArgumentHelp("A backend plugin library (docs/plugins.md); its devices are NAME:INDEX (repeatable; also POLYCHIP_PLUGINS=a.so:b.so).", valueName: "path"))
    var paths: [String] = []

    /// Every plugin of `POLYCHIP_PLUGINS` and `--plugin`, loaded once per process.
    func load() throws -> [PluginBackend] {
        var out: [PluginBackend] = []
        for p in PluginHost.environmentPaths() + paths {
            let b = try Polychip.loadPlugin(path: p)
            if !out.contains(where: { $0 === b }) { out.append(b) }
        }
        return out
    }

    /// The built-in backends plus the plugins, with `simulationSettings` applied to `sim` devices.
    func registry(simulationSettings: [String]) throws -> BackendRegistry {
        let plugins = try load()
        if plugins.isEmpty && PluginHost.all.isEmpty {
            return simulationSettings.isEmpty ? Polychip.registry : Polychip.registry(simulationSettings: simulationSettings)
        }
        return Polychip.registry(simulationSettings: simulationSettings, plugins: plugins)
    }
}
