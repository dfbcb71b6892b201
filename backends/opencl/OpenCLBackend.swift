import COpenCL
import Foundation
import PolychipCore

/// One OpenCL device as enumerated: its platform and device ids (root devices, never released).
struct CLDeviceEntry: @unchecked Sendable {
    // @unchecked: platform and root-device ids are immutable handles valid for the process.
    let platform: cl_platform_id
    let device: cl_device_id
    let platformName: String
    let platformVersion: String
}

/// The process-wide view of the OpenCL installation, enumerated once.
final class OpenCLRuntime: Sendable {
    /// The shared runtime.
    static let shared = OpenCLRuntime()

    /// Devices in platform-then-device order: `opencl:0`, `opencl:1`, …
    let entries: [CLDeviceEntry]
    /// One line about what was found (or why nothing was).
    let status: String
    /// Opened devices by id.
    let cache = DeviceCache()
    /// Every platform with its version and device names (those with no device too).
    let platforms: [PlatformReport.Platform]

    private init() {
        var count: cl_uint = 0
        let st = clGetPlatformIDs(0, nil, &count)
        if st == CLStatus.platformNotFoundKHR || (st == CL_SUCCESS && count == 0) {
            entries = []
            platforms = []
            status = "no OpenCL platform (the ICD loader found no installed driver)"
            return
        }
        guard st == CL_SUCCESS else {
            entries = []
            platforms = []
            status = "no OpenCL devices: clGetPlatformIDs failed with \(CLStatus.name(st))"
            return
        }
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        guard clGetPlatformIDs(count, &ids, nil) == CL_SUCCESS else {
            entries = []
            platforms = []
            status = "no OpenCL devices: clGetPlatformIDs failed"
            return
        }
        var found: [CLDeviceEntry] = []
        var names: [String] = []
        var report: [PlatformReport.Platform] = []
        for case let p? in ids {
            let name = CLInfo.string(platform: p, CL_PLATFORM_NAME)
            let version = CLInfo.string(platform: p, CL_PLATFORM_VERSION)
            var n: cl_uint = 0
            guard clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n) == CL_SUCCESS, n > 0 else {
                names.append("\(name): 0 devices")
                report.append(.init(name: name, version: version, devices: []))
                continue
            }
            var devIDs = [cl_device_id?](repeating: nil, count: Int(n))
            guard clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), n, &devIDs, nil) == CL_SUCCESS else { continue }
            let devices = devIDs.compactMap { $0 }
            for d in devices { found.append(CLDeviceEntry(platform: p, device: d, platformName: name, platformVersion: version)) }
            names.append("\(name) (\(version)): \(devices.count) device\(devices.count == 1 ? "" : "s")")
            report.append(.init(name: name, version: version, devices: devices.map { CLInfo.string($0, CL_DEVICE_NAME) }))
        }
        entries = found
        platforms = report
        status = "\(found.count) device\(found.count == 1 ? "" : "s"); " + names.joined(separator: "; ")
    }

    /// Opens (once) the device at `index`.
    func device(_ index: Int) throws -> OpenCLDevice {
        guard index >= 0, index < entries.count else {
            throw PolychipError.unknownDevice(selector: "opencl:\(index)",
                                              reason: entries.isEmpty ? status : "there are \(entries.count) OpenCL devices (opencl:0…opencl:\(entries.count - 1))")
        }
        let d = try cache.device("opencl:\(index)") { try OpenCLDevice(entry: entries[index], index: index) }
        guard let cl = d as? OpenCLDevice else {
            throw PolychipError.unknownDevice(selector: "opencl:\(index)", reason: "device cache holds a non-OpenCL device")
        }
        return cl
    }
}

/// The OpenCL backend: every device of every installed platform (PoCL on CPU, NVIDIA
/// OpenCL on GPU, …). No platform at all means zero devices, never an error.
public struct OpenCLBackend: Backend {
    /// Creates the backend (enumeration happens once per process, on first use).
    public init() {}

    /// `"opencl"`.
    public var name: String { "opencl" }

    /// What the ICD loader found, e.g. "1 device; Portable Computing Language (OpenCL 3.0 PoCL …): 1 device".
    public var status: String { OpenCLRuntime.shared.status }

    /// The platforms the ICD loader lists, with their versions and device names.
    public func platformReport() -> PlatformReport? {
        let rt = OpenCLRuntime.shared
        return PlatformReport(backend: name, platforms: rt.platforms, status: rt.platforms.isEmpty ? rt.status : nil)
    }

    /// Every device, opened.
    /// - Throws: the typed error of the first device that fails to open (a driver error, a bad
    ///   `POLYCHIP_OPENCL_TUNING`): a device is never left out silently.
    public func devices() throws -> [any Device] {
        try OpenCLRuntime.shared.entries.indices.map { try OpenCLRuntime.shared.device($0) }
    }

    /// The OpenCL devices, opened, with their concrete type.
    public func openCLDevices() -> [OpenCLDevice] {
        OpenCLRuntime.shared.entries.indices.compactMap { try? OpenCLRuntime.shared.device($0) }
    }

    /// Opens `opencl:INDEX` (index 0 when nil); OpenCL devices take no profile.
    public func device(profile: String?, index: Int?) throws -> any Device {
        if let profile {
            throw PolychipError.unknownDevice(selector: "opencl:\(profile)", reason: "OpenCL devices take no profile; use opencl:INDEX")
        }
        return try OpenCLRuntime.shared.device(index ?? 0)
    }
}
