// ProfileDecoding.swift — the build pipeline: parse → apply overrides on the JSON tree →
// decode → unknown-field check, with JSON paths in every error.

import Foundation
import PolychipCore

// MARK: - Build pipeline (parse → override → decode → unknown-field check → validate)

/// A value-level failure raised inside `init(from:)` of the schema's enums; mapped to
/// `ProfileError.unknownValue` by the loader.
struct ProfileEnumFailure: Error {
    let path: String
    let value: String
    let allowed: [String]
}

func decodeProfileEnum<E: RawRepresentable & CaseIterable>(_ type: E.Type, from decoder: any Decoder) throws -> E where E.RawValue == String {
    let c = try decoder.singleValueContainer()
    let s = try c.decode(String.self)
    guard let v = E(rawValue: s) else {
        throw ProfileEnumFailure(path: renderProfileCodingPath(decoder.codingPath), value: s, allowed: E.allCases.map(\.rawValue))
    }
    return v
}

/// An integer field holding a fraction or an out-of-range number; mapped to
/// `ProfileError.wrongType(expected: "an integer")` by the loader. (Decoding `Int` directly
/// would, on some Foundation versions, lose the field's path.)
struct ProfileIntegerFailure: Error {
    let path: [ProfilePathComponent]
    let found: String?
}

/// `d` as an Int when it is a whole number within ±2^53.
func profileInteger(_ d: Double) -> Int? {
    guard d.isFinite, d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else { return nil }
    return Int(exactly: d)
}

extension KeyedDecodingContainer {
    func decodeProfileInt(_ key: Key) throws -> Int {
        let d: Double
        do {
            d = try decode(Double.self, forKey: key)
        } catch DecodingError.typeMismatch {
            throw ProfileIntegerFailure(path: profileCodingPathComponents(codingPath + [key]), found: nil)
        }
        guard let i = profileInteger(d) else {
            throw ProfileIntegerFailure(path: profileCodingPathComponents(codingPath + [key]), found: "number " + JSONValue.formatNumber(d))
        }
        return i
    }

    func decodeProfileIntIfPresent(_ key: Key) throws -> Int? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decodeProfileInt(key)
    }
}

/// One component of a JSON path.
enum ProfilePathComponent: Equatable, Sendable {
    case key(String)
    case index(Int)
}

/// Renders a path as `a.b[0].c`, dropping `.value` components (a sourced figure's payload).
func renderProfilePath(_ comps: [ProfilePathComponent]) -> String {
    var s = ""
    for (i, comp) in comps.enumerated() {
        if i > 0, case .key("value") = comp { continue }
        switch comp {
        case .key(let k):
            if !s.isEmpty { s += "." }
            s += k
        case .index(let i):
            s += "[\(i)]"
        }
    }
    return s
}

func profileCodingPathComponents(_ path: [any CodingKey]) -> [ProfilePathComponent] {
    path.map { key in
        if let i = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(i)" { return .index(i) }
        return .key(key.stringValue)
    }
}

func renderProfileCodingPath(_ path: [any CodingKey]) -> String { renderProfilePath(profileCodingPathComponents(path)) }

extension DeviceProfile {
    struct AppliedOverride {
        let written: String
        let value: String
        /// Rendered path of the field the override set.
        let target: String
        /// Rendered path of the first component the override had to create, if any.
        let createdAt: String?
    }

    static func parseJSON(_ data: Data, origin: String) throws(ProfileError) -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data))
        do {
            return try parser.parseDocument()
        } catch {
            throw .malformedJSON(file: origin, line: error.line, column: error.column, reason: error.message)
        }
    }

    static func build(tree input: JSONValue, origin: String, settings: [(path: String, value: String)]) throws(ProfileError) -> DeviceProfile {
        guard case .object = input else {
            throw .wrongType(file: origin, path: "(document)", expected: "a JSON object", found: input.typeDescription)
        }
        var tree = input
        var applied: [AppliedOverride] = []
        for s in settings {
            applied.append(try applyOverride(&tree, path: s.path, value: s.value, origin: origin))
        }
        let profile: DeviceProfile
        do {
            profile = try JSONDecoder().decode(DeviceProfile.self, from: Data(tree.serialized().utf8))
        } catch let failure as ProfileEnumFailure {
            throw .unknownValue(file: origin, path: failure.path, value: failure.value, allowed: failure.allowed)
        } catch let failure as ProfileIntegerFailure {
            let path = renderProfilePath(failure.path)
            if let o = applied.last(where: { $0.target == path }) {
                throw .overrideWrongType(file: origin, path: o.written, value: o.value, expected: "an integer")
            }
            throw .wrongType(file: origin, path: path, expected: "an integer",
                             found: failure.found ?? tree.lookup(failure.path)?.typeDescription ?? "nothing")
        } catch let error as DecodingError {
            throw mapDecodingError(error, tree: tree, origin: origin, applied: applied)
        } catch {
            throw .invalidValue(file: origin, path: "(document)", value: "", expected: "a decodable profile (\(error))")
        }
        // Unknown fields: anything in the input that the decoded profile does not carry.
        let canonicalData: Data
        do {
            canonicalData = try JSONEncoder().encode(profile)
        } catch {
            throw .invalidValue(file: origin, path: "(document)", value: "", expected: "finite figures (\(error))")
        }
        let canonical = try parseJSON(canonicalData, origin: origin)
        if let unknown = firstUnknownField(input: tree, canonical: canonical, prefix: []) {
            let rendered = renderProfilePath(unknown)
            for o in applied {
                if let c = o.createdAt, rendered == c || rendered.hasPrefix(c + ".") || rendered.hasPrefix(c + "[") {
                    throw .unknownOverridePath(file: origin, path: o.written)
                }
            }
            throw .unknownField(file: origin, path: rendered)
        }
        var result = profile
        result.origin = origin
        try result.validate()
        return result
    }

    static func mapDecodingError(_ error: DecodingError, tree: JSONValue, origin: String, applied: [AppliedOverride]) -> ProfileError {
        func overrideFor(_ path: String) -> AppliedOverride? { applied.last { $0.target == path } }
        switch error {
        case .keyNotFound(let key, let ctx):
            return .missingField(file: origin, path: renderProfileCodingPath(ctx.codingPath + [key]))
        case .typeMismatch(let type, let ctx):
            let comps = profileCodingPathComponents(ctx.codingPath)
            let path = renderProfilePath(comps)
            let expected = jsonTypeName(type)
            if let o = overrideFor(path) {
                if o.createdAt != nil && expected == "an object" {
                    return .overrideWrongType(file: origin, path: o.written, value: o.value,
                                              expected: "a new sourced figure: give a JSON object literal, e.g. {\"value\": 1e15, \"source\": \"…\"}")
                }
                return .overrideWrongType(file: origin, path: o.written, value: o.value, expected: expected)
            }
            return .wrongType(file: origin, path: path, expected: expected, found: tree.lookup(comps)?.typeDescription ?? "nothing")
        case .valueNotFound(let type, let ctx):
            let path = renderProfileCodingPath(ctx.codingPath)
            return .wrongType(file: origin, path: path, expected: jsonTypeName(type), found: "null")
        case .dataCorrupted(let ctx):
            let comps = profileCodingPathComponents(ctx.codingPath)
            let path = renderProfilePath(comps)
            let found = tree.lookup(comps)
            if case .number? = found {
                // Only integer fields reject a JSON number: a fraction, or out of Int's range.
                if let o = overrideFor(path) {
                    return .overrideWrongType(file: origin, path: o.written, value: o.value, expected: "an integer")
                }
                return .wrongType(file: origin, path: path, expected: "an integer", found: found?.typeDescription ?? "nothing")
            }
            return .invalidValue(file: origin, path: path, value: found?.typeDescription ?? "", expected: ctx.debugDescription)
        @unknown default:
            return .invalidValue(file: origin, path: "(document)", value: "", expected: "\(error)")
        }
    }

    static func jsonTypeName(_ type: Any.Type) -> String {
        let d = String(describing: type)
        if d.hasPrefix("Dictionary") || d.hasPrefix("KeyedDecodingContainer") { return "an object" }
        if d.hasPrefix("Array") || d.hasPrefix("UnkeyedDecodingContainer") { return "an array" }
        if d == "Double" || d == "Float" { return "a number" }
        if d.hasPrefix("Int") || d.hasPrefix("UInt") { return "an integer" }
        if d == "String" { return "a string" }
        if d == "Bool" { return "a boolean" }
        return d
    }

    /// The first key present (and non-null) in `input` but absent from `canonical`, depth first
    /// in document order. Keys starting with `_` or `$` are comments.
    static func firstUnknownField(input: JSONValue, canonical: JSONValue, prefix: [ProfilePathComponent]) -> [ProfilePathComponent]? {
        switch (input, canonical) {
        case let (.object(inMembers), .object(canMembers)):
            for (k, v) in inMembers {
                if k.hasPrefix("_") || k.hasPrefix("$") { continue }
                if case .null = v { continue }
                guard let cv = canMembers.first(where: { $0.0 == k })?.1 else { return prefix + [.key(k)] }
                if let u = firstUnknownField(input: v, canonical: cv, prefix: prefix + [.key(k)]) { return u }
            }
            return nil
        case let (.array(inItems), .array(canItems)):
            for (i, v) in inItems.enumerated() where i < canItems.count {
                if let u = firstUnknownField(input: v, canonical: canItems[i], prefix: prefix + [.index(i)]) { return u }
            }
            return nil
        default:
            return nil
        }
    }

    // MARK: Overrides on the JSON tree

    static func applyOverride(_ tree: inout JSONValue, path written: String, value: String, origin: String) throws(ProfileError) -> AppliedOverride {
        let normalized = written.replacingOccurrences(of: "[", with: ".").replacingOccurrences(of: "]", with: "")
        let comps = normalized.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if comps.isEmpty || comps.contains(where: { $0.isEmpty }) {
            throw .malformedOverride(file: origin, setting: "\(written)=\(value)", reason: "path has an empty component")
        }
        var resolved: [ProfilePathComponent] = []
        var createdAt: [ProfilePathComponent]? = nil
        tree = try setNode(tree, comps[...], written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)
        return AppliedOverride(written: written, value: value, target: renderProfilePath(resolved), createdAt: createdAt.map(renderProfilePath))
    }

    private static func setNode(_ node: JSONValue, _ comps: ArraySlice<String>, written: String, value: String, origin: String,
                                resolved: inout [ProfilePathComponent], createdAt: inout [ProfilePathComponent]?) throws(ProfileError) -> JSONValue {
        guard let head = comps.first else {
            return try replacement(for: node, written: written, value: value, origin: origin, resolved: &resolved)
        }
        let rest = comps.dropFirst()
        switch node {
        case .object(var members):
            resolved.append(.key(head))
            if let i = members.firstIndex(where: { $0.0 == head }) {
                members[i].1 = try setNode(members[i].1, rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)
            } else {
                if createdAt == nil { createdAt = resolved }
                let fresh: JSONValue = rest.isEmpty ? .null : .object([])
                members.append((head, try setNode(fresh, rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)))
            }
            return .object(members)
        case .array(var items):
            var index: Int? = nil
            if let i = Int(head), i >= 0, i < items.count {
                index = i
            } else {
                index = items.firstIndex { item in
                    if case .object(let m) = item, case .string(let n)? = m.first(where: { $0.0 == "name" })?.1 { return n == head }
                    return false
                }
            }
            guard let i = index else { throw .unknownOverridePath(file: origin, path: written) }
            resolved.append(.index(i))
            items[i] = try setNode(items[i], rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)
            return .array(items)
        case .null:
            // Creating a missing intermediate object.
            resolved.append(.key(head))
            let fresh: JSONValue = rest.isEmpty ? .null : .object([])
            return .object([(head, try setNode(fresh, rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt))])
        default:
            throw .unknownOverridePath(file: origin, path: written)
        }
    }

    private static func replacement(for node: JSONValue, written: String, value: String, origin: String,
                                    resolved: inout [ProfilePathComponent]) throws(ProfileError) -> JSONValue {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        var literal: JSONValue? = nil
        if trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
            var p = JSONParser(bytes: Array(trimmed.utf8))
            do {
                literal = try p.parseDocument()
            } catch {
                throw .overrideWrongType(file: origin, path: written, value: value, expected: "valid JSON (\(error.message) at column \(error.column))")
            }
        }
        // A sourced figure: set its value, record the override in its source.
        if case .object(var members) = node,
           let vi = members.firstIndex(where: { $0.0 == "value" }),
           members.contains(where: { $0.0 == "source" }) {
            if let lit = literal, case .object = lit { return lit }
            let newValue: JSONValue
            if let lit = literal {
                newValue = lit
            } else {
                newValue = try convert(value, like: members[vi].1, written: written, origin: origin)
            }
            members[vi].1 = newValue
            if let si = members.firstIndex(where: { $0.0 == "source" }) {
                var previous = ""
                if case .string(let s) = members[si].1 { previous = s }
                members[si].1 = .string("override --set \(written)=\(value)" + (previous.isEmpty ? "" : " (was: \(previous))"))
            }
            resolved.append(.key("value"))
            return .object(members)
        }
        if let lit = literal { return lit }
        if case .object = node {
            throw .overrideWrongType(file: origin, path: written, value: value, expected: "an object: set one of its fields, or give a JSON object literal")
        }
        return try convert(value, like: node, written: written, origin: origin)
    }

    private static func convert(_ text: String, like existing: JSONValue, written: String, origin: String) throws(ProfileError) -> JSONValue {
        let t = text.trimmingCharacters(in: .whitespaces)
        func number() throws(ProfileError) -> JSONValue {
            guard let d = parseOverrideNumber(t) else {
                throw .overrideWrongType(file: origin, path: written, value: text, expected: "a number")
            }
            guard d.isFinite else {
                throw .invalidValue(file: origin, path: written, value: text, expected: "a finite number")
            }
            return .number(d)
        }
        switch existing {
        case .number:
            return try number()
        case .bool:
            switch t {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw .overrideWrongType(file: origin, path: written, value: text, expected: "true or false")
            }
        case .string:
            return .string(text)
        case .array(let items):
            if t.isEmpty { return .array([]) }
            let parts = t.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            var isNumeric = false
            if case .number? = items.first { isNumeric = true }
            var out: [JSONValue] = []
            for p in parts {
                if isNumeric {
                    guard let d = parseOverrideNumber(p), d.isFinite else {
                        throw .overrideWrongType(file: origin, path: written, value: text, expected: "a comma-separated list of finite numbers")
                    }
                    out.append(.number(d))
                } else {
                    out.append(.string(p))
                }
            }
            return .array(out)
        case .null, .object:
            // A field that did not exist: infer the type from the text.
            if t == "true" { return .bool(true) }
            if t == "false" { return .bool(false) }
            if let d = parseOverrideNumber(t) {
                guard d.isFinite else { throw .invalidValue(file: origin, path: written, value: text, expected: "a finite number") }
                return .number(d)
            }
            return .string(text)
        }
    }

    /// Parses a decimal number (`2.0e12`, `-3`, `.5`); rejects hex floats and words other than
    /// `nan`/`inf`/`infinity` (returned non-finite so the caller can say so).
    static func parseOverrideNumber(_ s: String) -> Double? {
        let lower = s.lowercased()
        if ["nan", "+nan", "-nan"].contains(lower) { return .nan }
        if ["inf", "+inf", "infinity", "+infinity"].contains(lower) { return .infinity }
        if ["-inf", "-infinity"].contains(lower) { return -.infinity }
        guard !s.isEmpty, s.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 101 || $0 == 69 || $0 == 43 || $0 == 45 }) else { return nil }
        return Double(s)
    }
}

extension JSONValue {
    /// The node at a profile path, nil when absent.
    func lookup(_ path: [ProfilePathComponent]) -> JSONValue? {
        var node = self
        for c in path {
            switch (c, node) {
            case let (.key(k), .object(m)):
                guard let v = m.first(where: { $0.0 == k })?.1 else { return nil }
                node = v
            case let (.index(i), .array(a)):
                guard i >= 0, i < a.count else { return nil }
                node = a[i]
            default:
                return nil
            }
        }
        return node
    }
}
