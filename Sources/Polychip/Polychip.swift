// The module users import: the core API re-exported plus every backend wired into
// one registry. Core (PolychipCore) knows no backend; this is where they meet.
@_exported import PolychipCore
import PolychipCPU
import PolychipReference
import PolychipOpenCL
@_exported import PolychipSimulated

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

    /// Opens one device by selector (`"cpu"`, `"opencl:1"`, `"sim:ascend-910b:3"`).
    public static func device(_ selector: String) throws -> any Device {
        try registry.device(selector)
    }
}
