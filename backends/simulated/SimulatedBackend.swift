import Foundation
import PolychipCore

/// Simulated devices `sim:PROFILE[:INDEX]`, one per (profile, index), from profile files.
///
/// Profiles are looked up by name in `POLYCHIP_PROFILE_DIR` (if set) and in the bundled
/// `backends/profiles`, or read from a path ending in `.json`. Settings of the form
/// `a.b.c=value` from `POLYCHIP_SIM_SET` (comma-separated) override any field.
public struct SimulatedBackend: Backend {
    private static let cache = DeviceCache()

    /// Creates the backend.
    public init() {}

    public var name: String { "sim" }

    public var status: String {
        let names = Self.bundledProfileNames()
        return names.isEmpty ? "no profiles found (set POLYCHIP_PROFILE_DIR)" : "\(names.count) profiles: \(names.joined(separator: ", "))"
    }

    /// Directories searched for profiles by name.
    public static var profileDirectories: [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["POLYCHIP_PROFILE_DIR"], !env.isEmpty { dirs.append(env) }
        // The bundled profiles beside the sources (backends/simulated/../profiles).
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        dirs.append(here.appendingPathComponent("profiles").path)
        return dirs
    }

    /// Names of the profiles found in ``profileDirectories``.
    public static func bundledProfileNames() -> [String] {
        var names: [String] = []
        for d in profileDirectories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []
            for f in files.sorted() where f.hasSuffix(".json") {
                let n = String(f.dropLast(5))
                if !names.contains(n) { names.append(n) }
            }
        }
        return names
    }

    /// One device per bundled profile (index 0).
    public func devices() throws -> [any Device] {
        try Self.bundledProfileNames().map { try device(profile: $0, index: 0) }
    }

    public func device(profile: String?, index: Int?) throws -> any Device {
        guard let profile else {
            throw PolychipError.unknownDevice(selector: "sim", reason: "name a profile: sim:PROFILE[:INDEX]; bundled: \(Self.bundledProfileNames().joined(separator: ", "))")
        }
        let loaded = try Self.loadProfile(profile)
        let id = "sim:\(loaded.name):\(index ?? 0)"
        return try Self.cache.device(id) { try SimulatedDevice(profile: loaded, index: index ?? 0) }
    }

    /// Loads a profile by name or path, applying `POLYCHIP_SIM_SET` overrides.
    public static func loadProfile(_ nameOrPath: String) throws -> DeviceProfile {
        let settings = (ProcessInfo.processInfo.environment["POLYCHIP_SIM_SET"] ?? "")
            .split(separator: ",").map(String.init).filter { !$0.isEmpty }
        do {
            let base: DeviceProfile
            if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") {
                base = try DeviceProfile.load(path: nameOrPath)
            } else {
                base = try DeviceProfile.load(named: nameOrPath, searching: profileDirectories)
            }
            return settings.isEmpty ? base : try base.applying(settings: settings)
        } catch {
            throw PolychipError.unknownDevice(selector: "sim:\(nameOrPath)", reason: "\(error)")
        }
    }

    /// A mesh of `count` simulated devices of one profile, wired as the profile says.
    public static func mesh(profile: String, count: Int) throws -> Mesh {
        guard count >= 1 else { throw PolychipError.collectiveMismatch(collective: "mesh", reason: "count must be ≥ 1") }
        let devices = try (0..<count).map { try SimulatedBackend().device(profile: profile, index: $0) }
        guard let first = devices.first as? SimulatedDevice else {
            throw PolychipError.unknownDevice(selector: "sim:\(profile)", reason: "not a simulated device")
        }
        let p = first.profile.interconnect
        let topology: MeshTopology
        if count > p.devicesPerNode.value { topology = .twoLevel(devicesPerNode: p.devicesPerNode.value) } else {
            switch p.intraNodeTopology {
            case .ring: topology = .ring
            case .switch: topology = .switch
            default: topology = .fullMesh
            }
        }
        return try Mesh(devices: devices, topology: topology, communicator: SimulatedCommunicator(model: first.model))
    }
}
