import COpenCL
import Foundation
import Polychip

/// The host as `polychip devices` reports it.
struct HostReport: Codable {
    var hostname: String
    var os: String
    var logicalCPUs: Int
    var memoryBytes: Int
    var cpuModel: String?
    /// OpenCL platforms and their devices as the ICD loader reports them.
    var openCL: OpenCLPlatforms

    static func current() -> HostReport {
        let p = ProcessInfo.processInfo
        return HostReport(hostname: p.hostName, os: p.operatingSystemVersionString, logicalCPUs: p.processorCount,
                          memoryBytes: Int(p.physicalMemory), cpuModel: cpuModelName, openCL: OpenCLPlatforms.query())
    }

    /// The CPU's model name from /proc/cpuinfo (nil where there is none).
    static var cpuModelName: String? {
        (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }

    var text: String {
        openCL.text + "\nhost \(hostname): \(cpuModel ?? "unknown CPU"), \(logicalCPUs) logical CPUs, \(String(format: "%.1f", Double(memoryBytes) / 1_073_741_824)) GiB"
    }
}

/// The OpenCL view of the machine: platforms and device names, or why there are none.
struct OpenCLPlatforms: Codable {
    struct Platform: Codable { var name: String; var version: String; var devices: [String] }
    var platforms: [Platform]
    /// Set when no platform is available (no ICD installed, or the loader found none).
    var status: String?

    static func query() -> OpenCLPlatforms {
        var count: cl_uint = 0
        let rc = clGetPlatformIDs(0, nil, &count)
        guard rc == CL_SUCCESS, count > 0 else {
            return OpenCLPlatforms(platforms: [], status: rc == -1001 || count == 0 ? "no OpenCL platform (no ICD installed or none registered)" : "clGetPlatformIDs failed (\(rc))")
        }
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        guard clGetPlatformIDs(count, &ids, nil) == CL_SUCCESS else { return OpenCLPlatforms(platforms: [], status: "clGetPlatformIDs failed") }
        func info(_ id: cl_platform_id?, _ key: Int32) -> String {
            var size = 0
            guard clGetPlatformInfo(id, cl_platform_info(key), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
            var buf = [CChar](repeating: 0, count: size)
            guard clGetPlatformInfo(id, cl_platform_info(key), size, &buf, nil) == CL_SUCCESS else { return "?" }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let platforms = ids.map { id -> Platform in
            var n: cl_uint = 0
            var names: [String] = []
            if clGetDeviceIDs(id, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n) == CL_SUCCESS, n > 0 {
                var devs = [cl_device_id?](repeating: nil, count: Int(n))
                if clGetDeviceIDs(id, cl_device_type(CL_DEVICE_TYPE_ALL), n, &devs, nil) == CL_SUCCESS {
                    for d in devs {
                        var size = 0
                        guard clGetDeviceInfo(d, cl_device_info(CL_DEVICE_NAME), 0, nil, &size) == CL_SUCCESS, size > 0 else { continue }
                        var buf = [CChar](repeating: 0, count: size)
                        if clGetDeviceInfo(d, cl_device_info(CL_DEVICE_NAME), size, &buf, nil) == CL_SUCCESS {
                            names.append(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
                        }
                    }
                }
            }
            return Platform(name: info(id, CL_PLATFORM_NAME), version: info(id, CL_PLATFORM_VERSION), devices: names)
        }
        return OpenCLPlatforms(platforms: platforms, status: nil)
    }

    var text: String {
        if let status { return "OpenCL: \(status)" }
        return platforms.enumerated().map { i, p in "OpenCL platform \(i): \(p.name) (\(p.version)): \(p.devices.joined(separator: ", "))" }.joined(separator: "\n")
    }
}
