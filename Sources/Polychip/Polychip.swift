// The module users import: the core API re-exported plus every backend wired into
// one registry. Core (PolychipCore) knows no backend; this is where they meet.
@_exported import PolychipCore
import PolychipCPU
import PolychipReference
import PolychipOpenCL
@_exported import PolychipSimulated
@_exported import PolychipPlugin

/// Entry points to the backends compiled into this build.
public enum Polychip {
    /// The registry of every backend, in the order `polychip devices` lists them.
    public static let registry = registry(simulationSettings: [])

    /// A registry of every backend whose simulated backend applies `simulationSettings`
    /// (`PATH=VALUE` profile overrides, as `polychip --set` passes them) to every `sim` device
    /// it opens, after `POLYCHIP_SIM_SET`. With no settings its devices are the same objects as
    /// ``registry``'s.
    public static func registry(simulationSettings: [String]) -> BackendRegistry {
        BackendRegistry([
            ReferenceBackend(),
            CPUBackend(),
            OpenCLBackend(),
            SimulatedBackend(settings: simulationSettings),
        ])
    }

    /// The expected-failure manifest of a device's backend: `kernel` or `kernel/dtype`
    /// → reason. Every entry needs a reason a user can act on; an empty manifest is the goal.
    public static func expectedFailures(for device: any Device) -> [String: String] {
        [:]
    }

    /// What `polychip bench` measures and models with no `--device`: every real device
    /// (not the reference, which is the oracle rather than a target) and every bundled profile.
    public static var benchDefaultSelectors: [String] {
        registry.backends.filter { $0.name != "reference" }.map(\.name)
    }

    /// Opens one device by selector (`"cpu"`, `"opencl:1"`, `"sim:ascend-910b:3"`, a plugin's
    /// `"onednn:0"`). Plugin devices come from the plugins in `POLYCHIP_PLUGINS` and those loaded
    /// with ``loadPlugin(path:)``.
    public static func device(_ selector: String) throws -> any Device {
        let plugins = try environmentPlugins()
        if plugins.isEmpty && PluginHost.all.isEmpty { return try registry.device(selector) }
        return try registry(simulationSettings: [], plugins: plugins).device(selector)
    }

    /// The names of the built-in backends, which a plugin may not take.
    public static let builtinBackendNames: Set<String> = ["reference", "cpu", "opencl", "sim"]

    /// Loads the backend plugin at `path` (docs/plugins.md) once per process and returns its
    /// backend; its devices are `NAME:INDEX` for ``device(_:)`` and every registry made by
    /// ``registry(simulationSettings:plugins:)``. A bare name (`"onednn"`) means a plugin this
    /// package built next to the running executable. A missing file, a library that is not a
    /// plugin, another ABI version, missing functions or a failed init throw a
    /// ``PolychipError`` naming the plugin.
    @discardableResult
    public static func loadPlugin(path: String) throws -> PluginBackend {
        try PluginHost.load(path: PluginHost.resolve(path), reserved: builtinBackendNames)
    }

    /// The plugins named in `POLYCHIP_PLUGINS` (colon-separated paths), loaded.
    public static func environmentPlugins() throws -> [PluginBackend] {
        try PluginHost.environmentPaths().map { try loadPlugin(path: $0) }
    }

    /// ``registry(simulationSettings:)`` plus `plugins` and every plugin loaded so far, after the
    /// built-in backends.
    public static func registry(simulationSettings: [String], plugins: [PluginBackend]) -> BackendRegistry {
        let base = simulationSettings.isEmpty ? registry : registry(simulationSettings: simulationSettings)
        var all = plugins
        for p in PluginHost.all where !all.contains(where: { $0 === p }) { all.append(p) }
        return BackendRegistry(base.backends + all)
    }
}
