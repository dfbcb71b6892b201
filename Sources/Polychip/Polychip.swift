// The module users import: the core API re-exported plus every backend wired into
// one registry. Core (PolychipCore) knows no backend; this is where they meet.
@_exported import PolychipCore
import PolychipCPU
import PolychipReference

/// Entry points to the backends compiled into this build.
public enum Polychip {
    /// The registry of every backend, in the order `polychip devices` lists them.
    public static let registry = BackendRegistry([
        ReferenceBackend(),
        CPUBackend(),
    ])

    /// Opens one device by selector (`"cpu"`, `"opencl:1"`, `"sim:ascend-910b:3"`).
    public static func device(_ selector: String) throws -> any Device {
        try registry.device(selector)
    }
}
