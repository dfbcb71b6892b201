// JSON.swift — the one JSON layer: a tree whose objects keep document order, a strict
// parser that reports line and column (device profiles, model configs, safetensors headers),
// and a serializer that keeps key order.

import Foundation

/// A JSON document as a tree; object members keep document order.
public enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// The value's kind (and short value) for error messages: `number 3`, `an object`.
    public var typeDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "boolean \(b)"
        case .number(let d): return "number \(JSONValue.formatNumber(d))"
        case .string(let s): return "string \"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The value as compact JSON text, object members in order.
    public func serialized() -> String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += JSONValue.formatNumber(d)
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }
}

extension JSONValue {
    /// A number as JSON writes it: whole numbers without a fraction, non-finite as null.
    public static func formatNumber(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 9.0e15 { return String(Int64(d)) }
        return "\(d)"
    }

    /// A string as a JSON literal (escaped, quoted), appended to `out`.
    public static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

/// A strict RFC 8259 parser over UTF-8 bytes that reports 1-based line and column (in
/// characters) of the first error. Nesting is limited to 256 levels so hostile input cannot
/// exhaust the stack; duplicate object keys are errors.
public struct JSONParser {
    /// Where and why a document is not JSON (1-based line and column).
    public struct Failure: Error, Sendable {
        /// 1-based line of the first error.
        public let line: Int
        /// 1-based column (in characters).
        public let column: Int
        /// What is wrong there.
        public let message: String
    }

    let bytes: [UInt8]
    var pos = 0
    var line = 1
    var column = 1
    var depth = 0
    static let maxDepth = 256

    /// A parser over UTF-8 bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses one JSON document (a UTF-8 BOM is skipped).
    public mutating func parseDocument() throws(Failure) -> JSONValue {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { pos = 3 }
        skipWhitespace()
        if pos >= bytes.count { throw fail("empty document") }
        let v = try parseValue()
        skipWhitespace()
        if pos < bytes.count { throw fail("unexpected \(describe(bytes[pos])) after the JSON value") }
        return v
    }

    private func fail(_ message: String) -> Failure { Failure(line: line, column: column, message: message) }

    private func describe(_ b: UInt8) -> String {
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return String(format: "byte 0x%02X", b)
    }

    private mutating func advance() {
        guard pos < bytes.count else { return }
        let b = bytes[pos]
        pos += 1
        if b == 0x0A {
            line += 1
            column = 1
        } else if b & 0xC0 != 0x80 {
            column += 1
        }
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { advance() } else { break }
        }
    }

    private mutating func parseValue() throws(Failure) -> JSONValue {
        guard pos < bytes.count else { throw fail("unexpected end of input, expected a value") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected \(describe(bytes[pos])), expected a value")
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        for b in word.utf8 {
            guard pos < bytes.count, bytes[pos] == b else { throw fail("invalid literal, expected '\(word)'") }
            advance()
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > JSONParser.maxDepth { throw fail("nesting deeper than \(JSONParser.maxDepth) levels") }
    }

    private mutating func parseObject() throws(Failure) -> JSONValue {
        try enter()
        advance()  // {
        var members: [(String, JSONValue)] = []
        var keys: Set<String> = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            advance()
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input inside an object") }
            guard bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key, found \(describe(bytes[pos]))") }
            let keyLine = line, keyColumn = column
            let key = try parseString()
            if keys.contains(key) { throw Failure(line: keyLine, column: keyColumn, message: "duplicate key \"\(key)\"") }
            keys.insert(key)
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                throw fail(pos < bytes.count ? "expected ':' after key \"\(key)\", found \(describe(bytes[pos]))" : "unexpected end of input after key \"\(key)\"")
            }
            advance()
            skipWhitespace()
            members.append((key, try parseValue()))
            if try !another(close: "}", in: "an object") { break }
        }
        depth -= 1
        return .object(members)
    }

    private mutating func parseArray() throws(Failure) -> JSONValue {
        try enter()
        advance()  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            advance()
            depth -= 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            if try !another(close: "]", in: "an array") { break }
        }
        depth -= 1
        return .array(items)
    }

    /// After a member or item: consumes ',' (true: another follows) or `close` (false: the
    /// container ends); anything else is an error naming the container.
    private mutating func another(close: Unicode.Scalar, in container: String) throws(Failure) -> Bool {
        skipWhitespace()
        guard pos < bytes.count else { throw fail("unexpected end of input inside \(container), expected ',' or '\(close)'") }
        if bytes[pos] == UInt8(ascii: ",") { advance(); return true }
        if bytes[pos] == UInt8(ascii: close) { advance(); return false }
        throw fail("expected ',' or '\(close)' in \(container), found \(describe(bytes[pos]))")
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard pos < bytes.count else { throw fail("unexpected end of input in a \\u escape") }
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit \(describe(b)) in a \\u escape")
            }
            v = v * 16 + d
            advance()
        }
        return v
    }

    private mutating func parseString() throws(Failure) -> String {
        advance()  // opening quote
        var buf: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw fail("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { advance(); break }
            if b < 0x20 { throw fail("control character \(describe(b)) in a string (escape it)") }
            if b == UInt8(ascii: "\\") {
                advance()
                guard pos < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[pos]
                advance()
                switch e {
                case UInt8(ascii: "\""): buf.append(0x22)
                case UInt8(ascii: "\\"): buf.append(0x5C)
                case UInt8(ascii: "/"): buf.append(0x2F)
                case UInt8(ascii: "b"): buf.append(0x08)
                case UInt8(ascii: "f"): buf.append(0x0C)
                case UInt8(ascii: "n"): buf.append(0x0A)
                case UInt8(ascii: "r"): buf.append(0x0D)
                case UInt8(ascii: "t"): buf.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired high surrogate in a \\u escape")
                        }
                        advance(); advance()
                        let low = try parseHex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid low surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("unpaired low surrogate in a \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    buf.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                }
                continue
            }
            buf.append(b)
            advance()
        }
        let s = String(decoding: buf, as: UTF8.self)
        if !s.utf8.elementsEqual(buf) { throw fail("invalid UTF-8 in a string") }
        return s
    }

    private mutating func parseNumber() throws(Failure) -> JSONValue {
        let start = pos
        let startLine = line, startColumn = column
        func digit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        if bytes[pos] == UInt8(ascii: "-") { advance() }
        guard pos < bytes.count, digit(bytes[pos]) else { throw fail("invalid number: expected a digit") }
        if bytes[pos] == UInt8(ascii: "0") {
            advance()
            if pos < bytes.count, digit(bytes[pos]) { throw fail("invalid number: leading zero") }
        } else {
            while pos < bytes.count, digit(bytes[pos]) { advance() }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            advance()
            guard pos < bytes.count, digit(bytes[pos]) else { throw fail("invalid number: expected a digit after '.'") }
            while pos < bytes.count, digit(bytes[pos]) { advance() }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            advance()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { advance() }
            guard pos < bytes.count, digit(bytes[pos]) else { throw fail("invalid number: expected a digit in the exponent") }
            while pos < bytes.count, digit(bytes[pos]) { advance() }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw Failure(line: startLine, column: startColumn, message: "number \(text) is out of range")
        }
        return .number(d)
    }
}

extension JSONValue {
    /// Parses a whole document.
    /// - Throws: ``JSONParser/Failure`` with the line and column of the first error.
    public static func parse(_ data: Data) throws(JSONParser.Failure) -> JSONValue {
        var p = JSONParser(bytes: [UInt8](data))
        return try p.parseDocument()
    }

    /// An object's members by key (nil for any other value).
    public var members: [String: JSONValue]? {
        guard case .object(let m) = self else { return nil }
        return Dictionary(m, uniquingKeysWith: { first, _ in first })
    }

    /// The value as a whole number, if it is one (and exactly representable).
    public var wholeNumber: Int? {
        guard case .number(let d) = self, d == d.rounded(), abs(d) < 9e15 else { return nil }
        return Int(d)
    }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .number(let d): return "\(d)"
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "an array of \(a.count)"
        case .object: return "an object"
        }
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}

extension JSONParser.Failure: CustomStringConvertible {
    public var description: String { "line \(line), column \(column): \(message)" }
}
