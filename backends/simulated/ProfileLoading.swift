// ProfileLoading.swift — reading a profile from a file or text, with `--set` overrides.

import Foundation

// MARK: - Loading

extension DeviceProfile {
    /// Reads, decodes, overrides and validates the profile at `path`.
    ///
    /// - Parameter overrides: dotted-path overrides applied before validation (see `applying(overrides:)`).
    /// - Throws: `ProfileError` naming `path`.
    public static func load(path: String, overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(file: path, reason: error.localizedDescription)
        }
        return try decode(data: data, origin: path, overrides: overrides)
    }

    /// Decodes, overrides and validates a profile from JSON bytes.
    ///
    /// - Parameters:
    ///   - data: the JSON document (UTF-8).
    ///   - origin: the name used in errors (a path, `"--profile FILE"`, `"<stdin>"`).
    ///   - overrides: dotted-path overrides, applied in sorted path order.
    /// - Throws: `ProfileError`.
    public static func decode(data: Data, origin: String, overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
        let tree = try parseJSON(data, origin: origin)
        let settings = overrides.keys.sorted().map { (path: $0, value: overrides[$0] ?? "") }
        return try build(tree: tree, origin: origin, settings: settings)
    }

    /// Loads every `*.json` profile in `directory`, sorted by file name.
    /// - Throws: the first `ProfileError` met.
    public static func loadDirectory(_ directory: String) throws(ProfileError) -> [DeviceProfile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .unreadable(file: directory, reason: error.localizedDescription)
        }
        var out: [DeviceProfile] = []
        for n in names.sorted() where n.hasSuffix(".json") {
            out.append(try load(path: (directory as NSString).appendingPathComponent(n)))
        }
        return out
    }

    /// Finds `NAME.json` in `directories` (in order) and loads it; `name` may also be a path
    /// to a file (anything containing `/` or ending in `.json`).
    /// - Throws: `ProfileError.profileNotFound` or the load error.
    public static func load(named name: String, searching directories: [String], overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
        if name.contains("/") || name.hasSuffix(".json") {
            return try load(path: name, overrides: overrides)
        }
        for d in directories {
            let p = (d as NSString).appendingPathComponent(name + ".json")
            if FileManager.default.fileExists(atPath: p) { return try load(path: p, overrides: overrides) }
        }
        throw .profileNotFound(name: name, searched: directories)
    }

    /// A copy with dotted-path overrides applied (`--set memory.bandwidth=2.0e12`), then
    /// decoded and validated again. Overrides are applied in sorted path order.
    ///
    /// Path syntax: keys separated by `.`; array elements by index (`onChipBuffers.0` or
    /// `onChipBuffers[0]`) or by their `name` (`onChipBuffers.L2`). A path that ends at a
    /// sourced figure (`memory.bandwidth`) sets its `value` and records the override in its
    /// `source`. The value is converted to the field's JSON type (number, integer, boolean,
    /// string; a comma-separated list for arrays); a value starting with `[` or `{` is parsed
    /// as JSON and replaces the field. Absent optional fields may be created
    /// (`faults.kernelLaunchFailure.probability=0.01`).
    ///
    /// - Throws: `ProfileError.unknownOverridePath`, `.overrideWrongType`, `.malformedOverride`,
    ///   or any validation error the new values cause.
    public func applying(overrides: [String: String]) throws(ProfileError) -> DeviceProfile {
        let settings = overrides.keys.sorted().map { (path: $0, value: overrides[$0] ?? "") }
        return try applying(settings: settings)
    }

    /// Like `applying(overrides:)` with raw `PATH=VALUE` strings applied in the given order
    /// (as repeated `--set` options arrive).
    /// - Throws: `ProfileError.malformedOverride` for a string without `=`, or as `applying(overrides:)`.
    public func applying(settings: [String]) throws(ProfileError) -> DeviceProfile {
        var parsed: [(path: String, value: String)] = []
        for s in settings { parsed.append(try DeviceProfile.parseSetting(s, origin: origin)) }
        return try applying(settings: parsed)
    }

    /// Splits `"a.b.c=value"` into path and value (at the first `=`; both trimmed of spaces).
    /// - Throws: `ProfileError.malformedOverride` when there is no `=` or the path is empty.
    public static func parseSetting(_ setting: String, origin: String = "--set") throws(ProfileError) -> (path: String, value: String) {
        guard let eq = setting.firstIndex(of: "=") else {
            throw .malformedOverride(file: origin, setting: setting, reason: "expected PATH=VALUE")
        }
        let path = setting[..<eq].trimmingCharacters(in: .whitespaces)
        let value = setting[setting.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard !path.isEmpty else {
            throw .malformedOverride(file: origin, setting: setting, reason: "empty path before '='")
        }
        return (path, value)
    }

    /// The profile as pretty-printed JSON in the bundled schema (sorted keys), e.g. for the
    /// `calibrate` command. Round-trips through `decode(data:origin:)`.
    /// - Throws: `ProfileError.invalidValue` if a figure cannot be represented (NaN/infinity).
    public func encoded() throws(ProfileError) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return try enc.encode(self)
        } catch {
            throw .invalidValue(file: origin, path: "", value: "\(error)", expected: "finite figures that JSON can represent")
        }
    }

    private func applying(settings: [(path: String, value: String)]) throws(ProfileError) -> DeviceProfile {
        let data = try encoded()
        let tree = try DeviceProfile.parseJSON(data, origin: origin)
        return try DeviceProfile.build(tree: tree, origin: origin, settings: settings)
    }
}
