// ProfileError.swift — the typed errors of loading, overriding and validating a profile:
// each names the file, the JSON path and what was expected.

import Foundation

// MARK: - Errors

/// A profile that cannot be used, with the file, the JSON path (dotted, `[i]` for array
/// elements, a figure's `.value` left off) and what was expected.
public enum ProfileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read.
    case unreadable(file: String, reason: String)
    /// The bytes are not valid JSON; `line` and `column` are 1-based.
    case malformedJSON(file: String, line: Int, column: Int, reason: String)
    /// A required field is absent.
    case missingField(file: String, path: String)
    /// A field has the wrong JSON type.
    case wrongType(file: String, path: String, expected: String, found: String)
    /// A field the schema does not know (a typo?). Keys starting with `_` or `$` are comments.
    case unknownField(file: String, path: String)
    /// A name outside its enumeration (topology, dtype, algorithm, policy action).
    case unknownValue(file: String, path: String, value: String, allowed: [String])
    /// A value of the right type that makes no sense (negative bandwidth, efficiency > 1, …).
    case invalidValue(file: String, path: String, value: String, expected: String)
    /// A `--set` argument that is not `PATH=VALUE`.
    case malformedOverride(file: String, setting: String, reason: String)
    /// A `--set` path that names no field of the schema.
    case unknownOverridePath(file: String, path: String)
    /// A `--set` value that cannot become the field's type.
    case overrideWrongType(file: String, path: String, value: String, expected: String)
    /// No profile of that name in the searched directories.
    case profileNotFound(name: String, searched: [String])

    /// The file (or origin) the error is about.
    public var file: String {
        switch self {
        case .unreadable(let f, _), .malformedJSON(let f, _, _, _), .missingField(let f, _),
             .wrongType(let f, _, _, _), .unknownField(let f, _), .unknownValue(let f, _, _, _),
             .invalidValue(let f, _, _, _), .malformedOverride(let f, _, _), .unknownOverridePath(let f, _),
             .overrideWrongType(let f, _, _, _):
            return f
        case .profileNotFound(let name, _):
            return name
        }
    }

    /// The JSON path the error is about, when there is one.
    public var path: String? {
        switch self {
        case .missingField(_, let p), .wrongType(_, let p, _, _), .unknownField(_, let p),
             .unknownValue(_, let p, _, _), .invalidValue(_, let p, _, _), .unknownOverridePath(_, let p),
             .overrideWrongType(_, let p, _, _):
            return p
        default:
            return nil
        }
    }

    /// A one-line message naming file, path and expectation (every part bounded, so a huge
    /// name or value is quoted by its prefix only).
    public var description: String {
        // (PolychipCore's Quoted.bounded, inlined: this file depends on Foundation only.)
        func b(_ s: String) -> String { s.count <= 256 ? s : String(s.prefix(256)) + "… (\(s.count) characters)" }
        switch self {
        case let .unreadable(file, reason):
            return "\(b(file)): cannot read profile: \(b(reason))"
        case let .malformedJSON(file, line, column, reason):
            return "\(b(file)):\(line):\(column): malformed JSON: \(b(reason))"
        case let .missingField(file, path):
            return "\(b(file)): missing required field '\(b(path))'"
        case let .wrongType(file, path, expected, found):
            return "\(b(file)): field '\(b(path))' has the wrong type: expected \(expected), found \(b(found))"
        case let .unknownField(file, path):
            return "\(b(file)): unknown field '\(b(path))' (not part of the profile schema; prefix a key with '_' to keep it as a comment)"
        case let .unknownValue(file, path, value, allowed):
            return "\(b(file)): field '\(b(path))': '\(b(value))' is not one of \(allowed.joined(separator: ", "))"
        case let .invalidValue(file, path, value, expected):
            return "\(b(file)): field '\(b(path))' = \(b(value)): expected \(expected)"
        case let .malformedOverride(file, setting, reason):
            return "\(b(file)): bad override '\(b(setting))': \(b(reason))"
        case let .unknownOverridePath(file, path):
            return "\(b(file)): override path '\(b(path))' names no field of the profile schema"
        case let .overrideWrongType(file, path, value, expected):
            return "\(b(file)): override '\(b(path))=\(b(value))': expected \(expected)"
        case let .profileNotFound(name, searched):
            return "no profile named '\(b(name))' (searched: \(searched.map { b($0) }.joined(separator: ", ")))"
        }
    }
}
