import Foundation

/// A family of devices ("reference", "cpu", "opencl", "sim") that can enumerate and open them.
public protocol Backend: Sendable {
    /// The selector prefix, e.g. `"cpu"`.
    var name: String { get }
    /// One line about the backend's availability (e.g. "PoCL 5.0, 1 platform" or "no OpenCL ICD").
    var status: String { get }
    /// The devices a bare selector (`"opencl"`) means. Never throws for "nothing installed": returns [].
    func devices() throws -> [any Device]
    /// Opens a device by optional profile and index (`sim:ascend-910b:3`, `opencl:1`).
    /// Returns the same object for the same id, so buffers stay valid across look-ups.
    func device(profile: String?, index: Int?) throws -> any Device
    /// What the backend sees of the platform under it (drivers, their versions, the devices
    /// they list, or why there are none), for `polychip devices`; nil when there is nothing
    /// beyond ``status`` to say (the default).
    func platformReport() -> PlatformReport?
}

extension Backend {
    /// No platform report.
    public func platformReport() -> PlatformReport? { nil }
}

/// A backend's view of its platform, as a driver stack reports it (IREE's `dump_device_info`
/// is the model): the platforms, their versions and device names, or why there are none.
public struct PlatformReport: Codable, Sendable, Hashable {
    /// One platform (an OpenCL ICD, a vendor runtime) and the devices it lists.
    public struct Platform: Codable, Sendable, Hashable {
        /// The platform's name.
        public var name: String
        /// Its version string.
        public var version: String
        /// The names of its devices, in enumeration order.
        public var devices: [String]
        /// Creates a platform entry.
        public init(name: String, version: String, devices: [String]) {
            self.name = name; self.version = version; self.devices = devices
        }
    }
    /// The backend's name (`"opencl"`).
    public var backend: String
    /// The platforms found.
    public var platforms: [Platform]
    /// Why there are none (no driver installed, enumeration failed); nil when some were found.
    public var status: String?

    /// Creates a report.
    public init(backend: String, platforms: [Platform], status: String?) {
        self.backend = backend; self.platforms = platforms; self.status = status
    }

    /// One line per platform (or the status line).
    public var text: String {
        if let status { return "\(backend): \(status)" }
        return platforms.enumerated().map { i, p in
            "\(backend) platform \(i): \(p.name) (\(p.version)): \(p.devices.joined(separator: ", "))"
        }.joined(separator: "\n")
    }
}

/// A parsed device selector `BACKEND[:PROFILE][:INDEX]`.
public struct DeviceSelector: Sendable, Hashable, CustomStringConvertible {
    /// Backend name.
    public var backend: String
    /// Profile name or file (simulated devices).
    public var profile: String?
    /// Device index.
    public var index: Int?

    /// Parses a selector; throws ``PolychipError/unknownDevice(selector:reason:)`` when malformed.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var parts = trimmed.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, !first.isEmpty, first.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw PolychipError.unknownDevice(selector: text, reason: "expected BACKEND[:PROFILE][:INDEX], e.g. cpu, opencl:1, sim:ascend-910b:3")
        }
        backend = first.lowercased()
        parts.removeFirst()
        if let last = parts.last, let i = Int(last) {
            guard i >= 0 else { throw PolychipError.unknownDevice(selector: text, reason: "index must be ≥ 0") }
            index = i
            parts.removeLast()
        }
        if !parts.isEmpty {
            let p = parts.joined(separator: ":")
            guard !p.isEmpty else { throw PolychipError.unknownDevice(selector: text, reason: "empty profile") }
            profile = p
        }
        if parts.count > 1 && !(profile?.contains("/") ?? false) {
            throw PolychipError.unknownDevice(selector: text, reason: "too many ':' parts; expected BACKEND[:PROFILE][:INDEX]")
        }
    }

    public var description: String {
        [backend, profile, index.map(String.init)].compactMap { $0 }.joined(separator: ":")
    }
}

/// The set of backends a program knows, and device resolution by selector.
public final class BackendRegistry: Sendable {
    /// Registered backends, in registration order.
    public let backends: [any Backend]

    /// Creates a registry over `backends`.
    public init(_ backends: [any Backend]) { self.backends = backends }

    /// The backend called `name`.
    public func backend(named name: String) -> (any Backend)? { backends.first { $0.name == name } }

    /// Resolves one selector to devices (a bare backend name can mean several).
    public func resolve(_ selector: String) throws -> [any Device] {
        let s = try DeviceSelector(parsing: selector)
        guard let b = backend(named: s.backend) else {
            throw PolychipError.unknownDevice(selector: selector, reason: "unknown backend '\(s.backend)'; known: \(backends.map(\.name).joined(separator: ", "))")
        }
        if s.profile == nil && s.index == nil {
            let all = try b.devices()
            guard !all.isEmpty else { throw PolychipError.unknownDevice(selector: selector, reason: "backend '\(b.name)' has no devices: \(b.status)") }
            return all
        }
        return [try b.device(profile: s.profile, index: s.index)]
    }

    /// Resolves one selector that must name exactly one device (the first of a bare backend).
    public func device(_ selector: String) throws -> any Device {
        let all = try resolve(selector)
        guard let d = all.first else { throw PolychipError.unknownDevice(selector: selector, reason: "no device") }
        return d
    }

    /// Resolves a list of selectors; with none, uses `POLYCHIP_DEVICES` (comma-separated)
    /// or `fallback`.
    public func resolve(_ selectors: [String], fallback: [String]) throws -> [any Device] {
        var list = selectors
        if list.isEmpty, let env = ProcessInfo.processInfo.environment["POLYCHIP_DEVICES"], !env.isEmpty {
            list = env.split(separator: ",").map { String($0) }
        }
        if list.isEmpty { list = fallback }
        var seen = Set<String>()
        var out: [any Device] = []
        for s in list { for d in try resolve(s) where seen.insert(d.id).inserted { out.append(d) } }
        return out
    }
}

/// Caches opened devices by id so every look-up returns the same object.
public final class DeviceCache: Sendable {
    private let cache = Locked([String: any Device]())
    /// Creates an empty cache.
    public init() {}
    /// Returns the cached device for `id`, or makes, stores and returns one.
    public func device(_ id: String, make: () throws -> any Device) rethrows -> any Device {
        try cache.withLock { c in
            if let d = c[id] { return d }
            let d = try make()
            c[id] = d
            return d
        }
    }
}
