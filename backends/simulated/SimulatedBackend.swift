import Foundation
import PolychipCore

/// Simulated devices `sim:PROFILE[:INDEX]`, one per (profile, settings, index).
///
/// A profile is named (`sim:ascend-910b`) or given as a file (`sim:/path/chip.json`,
/// `sim:chip.json`: anything with a `/` or ending in `.json`). A name is looked up, in order,
/// in `POLYCHIP_PROFILE_DIR` (if set), in the profiles embedded in the binary at build time
/// (backends/profiles/*.json, so an installed `polychip` needs no source tree), and in
/// backends/profiles beside the sources (a file added since the build).
///
/// Settings `a.b.c=value` override any field of every profile the backend opens: first those
/// of `POLYCHIP_SIM_SET` (comma-separated), then the backend's own ``settings``
/// (`polychip --set`), in order.
public struct SimulatedBackend: Backend {
    private static let cache = DeviceCache()

    /// `PATH=VALUE` overrides applied to every profile this backend opens, after those of
    /// `POLYCHIP_SIM_SET` (e.g. `["memory.bandwidth=2.0e12", "faults.deviceLost.atEvent=5"]`).
    public let settings: [String]

    /// Creates the backend; `settings` are checked when a device is opened.
    public init(settings: [String] = []) { self.settings = settings }

    public var name: String { "sim" }

    public var status: String {
        let names = Self.bundledProfileNames()
        return names.isEmpty ? "no profiles found (set POLYCHIP_PROFILE_DIR)" : "\(names.count) profiles: \(names.joined(separator: ", "))"
    }

    /// The settings of `POLYCHIP_SIM_SET` (comma-separated `PATH=VALUE`).
    public static var environmentSettings: [String] {
        (ProcessInfo.processInfo.environment["POLYCHIP_SIM_SET"] ?? "")
            .split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    /// The profiles embedded in the binary: file name (`ascend-910b.json`) → JSON text.
    public static var embeddedProfiles: [String: String] { EmbeddedProfiles.files }

    /// backends/profiles beside the sources (present in a source checkout only).
    public static var sourceProfileDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("profiles").path
    }

    /// Directories searched for profiles by name, besides the embedded ones:
    /// `POLYCHIP_PROFILE_DIR` (before the embedded profiles) and the source tree's (after them).
    public static var profileDirectories: [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["POLYCHIP_PROFILE_DIR"], !env.isEmpty { dirs.append(env) }
        dirs.append(sourceProfileDirectory)
        return dirs
    }

    /// Names of every profile found: `POLYCHIP_PROFILE_DIR`, embedded, source tree (no duplicates).
    public static func bundledProfileNames() -> [String] {
        var names: [String] = []
        func add(_ files: [String]) {
            for f in files.sorted() where f.hasSuffix(".json") {
                let n = String(f.dropLast(5))
                if !names.contains(n) { names.append(n) }
            }
        }
        for d in profileDirectories { add((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []) }
        add(Array(embeddedProfiles.keys))
        return names.sorted()
    }

    /// One device per known profile (index 0).
    public func devices() throws -> [any Device] {
        try Self.bundledProfileNames().map { try device(profile: $0, index: 0) }
    }

    public func device(profile: String?, index: Int?) throws -> any Device {
        guard let profile else {
            throw PolychipError.unknownDevice(selector: "sim", reason: "name a profile: sim:PROFILE[:INDEX]; bundled: \(Self.bundledProfileNames().joined(separator: ", "))")
        }
        let all = Self.environmentSettings + settings
        let loaded = try Self.loadProfile(profile, settings: settings)
        let i = index ?? 0
        // Same profile source, same settings, same index → the same device object.
        let key = "sim:\(loaded.name):\(i)\u{1F}\(loaded.origin)\u{1F}\(all.joined(separator: "\u{1E}"))"
        return try Self.cache.device(key) { try SimulatedDevice(profile: loaded, index: i) }
    }

    /// Loads a profile by name or path, applying `POLYCHIP_SIM_SET` and then `settings`.
    /// - Throws: ``PolychipError/unknownDevice(selector:reason:)`` carrying the `ProfileError`
    ///   (file, field and expectation).
    public static func loadProfile(_ nameOrPath: String, settings: [String] = []) throws -> DeviceProfile {
        let all = environmentSettings + settings
        do {
            let base = try baseProfile(nameOrPath)
            return all.isEmpty ? base : try base.applying(settings: all)
        } catch {
            throw PolychipError.unknownDevice(selector: "sim:\(nameOrPath)", reason: "\(error)")
        }
    }

    private static func baseProfile(_ nameOrPath: String) throws(ProfileError) -> DeviceProfile {
        if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") {
            return try DeviceProfile.load(path: nameOrPath)
        }
        func file(in dir: String) -> String? {
            let p = (dir as NSString).appendingPathComponent(nameOrPath + ".json")
            return FileManager.default.fileExists(atPath: p) ? p : nil
        }
        var searched: [String] = []
        if let env = ProcessInfo.processInfo.environment["POLYCHIP_PROFILE_DIR"], !env.isEmpty {
            if let p = file(in: env) { return try DeviceProfile.load(path: p) }
            searched.append(env)
        }
        if let text = embeddedProfiles[nameOrPath + ".json"] {
            return try DeviceProfile.decode(data: Data(text.utf8), origin: "embedded:backends/profiles/\(nameOrPath).json")
        }
        searched.append("embedded (\(embeddedProfiles.keys.sorted().map { String($0.dropLast(5)) }.joined(separator: ", ")))")
        if let p = file(in: sourceProfileDirectory) { return try DeviceProfile.load(path: p) }
        searched.append(sourceProfileDirectory)
        throw .profileNotFound(name: nameOrPath, searched: searched)
    }

    /// A mesh of `count` simulated devices of one profile (indices `0..<count`), wired as the
    /// profile says: its node topology up to `devicesPerNode` devices, two-level beyond.
    /// Collectives run on a ``SimulatedCommunicator`` that models their time and faults.
    public func mesh(profile: String, count: Int) throws -> Mesh {
        guard count >= 1 else { throw PolychipError.collectiveMismatch(collective: "mesh", reason: "count must be ≥ 1") }
        let devices = try (0..<count).map { i -> SimulatedDevice in
            guard let d = try device(profile: profile, index: i) as? SimulatedDevice else {
                throw PolychipError.unknownDevice(selector: "sim:\(profile)", reason: "not a simulated device")
            }
            return d
        }
        return try Self.mesh(devices: devices)
    }

    /// A mesh of the given simulated devices (e.g. fresh, uncached ones whose faults must not
    /// reach other meshes), wired as the first device's profile says, as ``mesh(profile:count:)``.
    public static func mesh(devices: [SimulatedDevice]) throws -> Mesh {
        guard let first = devices.first else {
            throw PolychipError.collectiveMismatch(collective: "mesh", reason: "a mesh needs at least one device")
        }
        let count = devices.count
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

    /// ``mesh(profile:count:)`` on a backend with no settings besides `POLYCHIP_SIM_SET`.
    public static func mesh(profile: String, count: Int) throws -> Mesh {
        try SimulatedBackend().mesh(profile: profile, count: count)
    }
}

extension SimulatedDevice {
    /// Fresh devices of this profile (its `--set` overrides and fault plan included), ranks
    /// 0..<ranks and spares after them, wired as the profile says: faults on one mesh never
    /// reach another.
    public func makeMesh(ranks: Int, spares: Int) throws -> (mesh: Mesh, spares: [any Device]) {
        let fresh = try (0..<(ranks + spares)).map { try SimulatedDevice(profile: profile, index: $0) }
        return (try SimulatedBackend.mesh(devices: Array(fresh.prefix(ranks))), Array(fresh.dropFirst(ranks)))
    }
}
