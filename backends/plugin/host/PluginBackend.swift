import Foundation
import PolychipCore

/// The backend of one plugin library: its devices are `NAME:INDEX`.
public final class PluginBackend: Backend, @unchecked Sendable {
    // @unchecked: `library` is immutable and thread-safe; `devices` is a `Locked`.

    /// The loaded library.
    public let library: PluginLibrary
    private let opened = Locked([Int32: PluginDevice]())

    init(library: PluginLibrary) { self.library = library }

    public var name: String { library.name }

    public var status: String {
        let n = (try? deviceCount()).map { "\($0) device\($0 == 1 ? "" : "s")" } ?? "device count failed"
        return "plugin \(library.path)\(library.version.isEmpty ? "" : ", \(library.version)"), \(n)"
    }

    func deviceCount() throws -> Int {
        var count: Int32 = 0
        let lib = library
        try library.call({ api, state, msg, cap in api.device_count!(state, &count, msg, cap) },
                         failure: { lib.error($0, $1, call: "device_count", kernel: nil, device: lib.name) })
        guard count >= 0 else {
            throw PolychipError.backendFailure(backend: library.label, call: "device_count", code: Int(count), detail: "negative device count")
        }
        return Int(count)
    }

    public func devices() throws -> [any Device] {
        try (0..<deviceCount()).map { try device(profile: nil, index: $0) }
    }

    public func device(profile: String?, index: Int?) throws -> any Device {
        let selector = "\(name)\(profile.map { ":" + $0 } ?? "")\(index.map { ":\($0)" } ?? "")"
        if profile != nil {
            throw PolychipError.unknownDevice(selector: selector, reason: "plugin devices take no profile; use \(name):INDEX")
        }
        let i = index ?? 0
        let count = try deviceCount()
        guard i < count, let i32 = Int32(exactly: i) else {
            throw PolychipError.unknownDevice(selector: selector, reason: "\(library.label) has \(count) device(s)")
        }
        return try opened.withLock { cache in
            if let d = cache[i32] { return d }
            let d = try PluginDevice(library: library, index: i32)
            cache[i32] = d
            return d
        }
    }
}

/// Loads plugins once per process: the same file (by resolved path) gives the same backend, so
/// its devices and buffers stay valid across look-ups.
public enum PluginHost {
    /// The environment variable with plugin paths, colon-separated.
    public static let environmentVariable = "POLYCHIP_PLUGINS"

    private static let loaded = Locked([String: PluginBackend]())

    /// Loads the plugin at `path` (or returns the one already loaded from it). `reserved` are
    /// the names a plugin may not take. A second plugin with the name of a loaded one is an
    /// error naming both files.
    public static func load(path: String, reserved: Set<String>) throws -> PluginBackend {
        let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        if let b = loaded.withLock({ $0[resolved] }) { return b }
        let library = try PluginLibrary(path: resolved, reserved: reserved)
        return try loaded.withLock { all in
            if let b = all[resolved] { return b }
            if let other = all.values.first(where: { $0.name == library.name }) {
                throw PolychipError.backendFailure(backend: library.label, call: "name", code: 0,
                                                   detail: "the name '\(library.name)' is taken by \(other.library.path)")
            }
            let b = PluginBackend(library: library)
            all[resolved] = b
            return b
        }
    }

    /// Every plugin loaded so far, in no particular order.
    public static var all: [PluginBackend] { loaded.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    /// The paths in `POLYCHIP_PLUGINS` (empty entries skipped).
    public static func environmentPaths(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        (environment[environmentVariable] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    /// A `--plugin` argument as a file path: a path is used as given; a bare name (`onednn`)
    /// means a plugin built by this package next to the running executable
    /// (`libPolychipOneDNN.so` for `onednn`, matched without case).
    public static func resolve(_ spec: String, executableDirectory: URL? = Bundle.main.executableURL?.deletingLastPathComponent()) -> String {
        guard !spec.contains("/"), !FileManager.default.fileExists(atPath: spec), let dir = executableDirectory else { return spec }
        let wanted = Set(["libpolychip\(spec.lowercased()).so", "libpolychip\(spec.lowercased()).dylib"])
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        if let f = files.first(where: { wanted.contains($0.lowercased()) }) { return dir.appendingPathComponent(f).path }
        return spec
    }
}
