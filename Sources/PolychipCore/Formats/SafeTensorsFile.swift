import Foundation

/// Reading and writing `.safetensors` files: an 8-byte little-endian header length `n`, `n`
/// bytes of JSON (`{"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, …,
/// "__metadata__": {"key": "value"}}`), then the tensors' little-endian bytes. Offsets are
/// relative to the end of the header; the data must be covered exactly, without holes or overlaps.
public enum SafeTensorsFile {
    /// The element types a file may hold (the ones Polychip reads).
    public enum ElementType: String, Sendable, Hashable, CaseIterable {
        // Named as the format spells them.
        case F32, F16, BF16, I32, I8, U8

        /// Bytes per element.
        public var byteWidth: Int {
            switch self {
            case .F32, .I32: return 4
            case .F16, .BF16: return 2
            case .I8, .U8: return 1
            }
        }
    }

    /// One tensor as stored: element type, shape and raw little-endian bytes.
    public struct Entry: Sendable, Equatable {
        /// Element type.
        public var type: ElementType
        /// Shape.
        public var shape: [Int]
        /// Raw bytes (`shape` product × `type.byteWidth`).
        public var bytes: [UInt8]

        /// Creates an entry.
        public init(type: ElementType, shape: [Int], bytes: [UInt8]) { self.type = type; self.shape = shape; self.bytes = bytes }

        /// The entry as a ``HostTensor``. `U8` becomes packed `int4` with the last dimension doubled,
        /// as in ``NumPyFile`` (two nibbles per byte).
        public func tensor() throws -> HostTensor {
            switch type {
            case .F32: return try HostTensor(TensorDesc(shape, .f32), bytes: bytes)
            case .F16: return try HostTensor(TensorDesc(shape, .f16), bytes: bytes)
            case .BF16: return try HostTensor(TensorDesc(shape, .bf16), bytes: bytes)
            case .I32: return try HostTensor(TensorDesc(shape, .i32), bytes: bytes)
            case .I8: return try HostTensor(TensorDesc(shape, .i8), bytes: bytes)
            case .U8:
                guard let last = shape.last else { throw PolychipError.invalidTensor(reason: "a U8 (packed int4) tensor needs rank ≥ 1") }
                return try HostTensor(TensorDesc(shape.dropLast() + [last * 2], .int4), bytes: bytes)
            }
        }
    }

    /// The tensors and metadata of a file.
    public struct Contents: Sendable, Equatable {
        /// Tensors by name.
        public var tensors: [String: Entry]
        /// `__metadata__` (string to string).
        public var metadata: [String: String]

        /// Creates contents.
        public init(tensors: [String: Entry], metadata: [String: String] = [:]) { self.tensors = tensors; self.metadata = metadata }

        /// The tensor `name` as a ``HostTensor``; throws when absent.
        public func tensor(_ name: String, path: String = "<safetensors>") throws -> HostTensor {
            guard let e = tensors[name] else { throw PolychipError.malformedFile(path: path, field: name, reason: "no tensor of this name") }
            return try e.tensor()
        }
    }

    /// Reads a file.
    public static func read(path: String) throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else { throw PolychipError.io(path: path, reason: "cannot read the file") }
        return try decode([UInt8](data), path: path)
    }

    /// Parses file bytes. `path` only labels errors (`PolychipError.malformedFile` names the field).
    public static func decode(_ data: [UInt8], path: String = "<memory>") throws -> Contents {
        func bad(_ field: String, _ reason: String) -> PolychipError { .malformedFile(path: path, field: field, reason: reason) }
        guard data.count >= 8 else { throw bad("header", "file of \(data.count) bytes is shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[i]) << (8 * UInt64(i)) }
        guard n >= 2, n <= UInt64(data.count - 8), n <= 100_000_000 else {
            throw bad("header", "header length \(n) does not fit in the file of \(data.count) bytes")
        }
        let headerEnd = 8 + Int(n)
        let json: JSONValue
        do { json = try JSONValue.parse(Data(data[8..<headerEnd])) } catch {
            throw bad("header", "not JSON: \(error)")
        }
        guard case .object(let header) = json else { throw bad("header", "expected a JSON object") }
        let body = data.count - headerEnd
        var tensors: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        var spans: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard case .object(let m) = value else { throw bad(name, "expected an object of strings") }
                for (k, v) in m {
                    guard case .string(let s) = v else { throw bad("__metadata__.\(k)", "expected a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let e = value.members else { throw bad(name, "expected an object with dtype, shape and data_offsets") }
            guard case .string(let ts)? = e["dtype"] else { throw bad("\(name).dtype", "missing or not a string") }
            guard let type = ElementType(rawValue: ts) else {
                throw bad("\(name).dtype", "unsupported dtype \(ts); supported: \(ElementType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard case .array(let shapeRaw)? = e["shape"] else { throw bad("\(name).shape", "missing or not an array") }
            var shape: [Int] = []
            for d in shapeRaw {
                guard let v = d.wholeNumber, v >= 0 else { throw bad("\(name).shape", "dimension \(d) is not a whole number ≥ 0") }
                shape.append(v)
            }
            guard case .array(let offs)? = e["data_offsets"], offs.count == 2, let b = offs[0].wholeNumber, let end = offs[1].wholeNumber else {
                throw bad("\(name).data_offsets", "expected [begin, end]")
            }
            guard b >= 0, b <= end, end <= body else {
                throw bad("\(name).data_offsets", "[\(b), \(end)] is outside the \(body) data bytes")
            }
            var count = type.byteWidth
            for d in shape {
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw bad("\(name).shape", "size overflows") }
                count = m
            }
            guard end - b == count else {
                throw bad("\(name).data_offsets", "holds \(end - b) bytes; shape \(shape) of \(ts) needs \(count)")
            }
            spans.append((b, end, name))
            tensors[name] = Entry(type: type, shape: shape, bytes: Array(data[(headerEnd + b)..<(headerEnd + end)]))
        }
        spans.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var cursor = 0
        for (b, e, name) in spans where e > b || b != cursor {
            guard b == cursor else {
                throw bad("\(name).data_offsets", b < cursor ? "overlaps the previous tensor" : "leaves a hole of \(b - cursor) bytes before it")
            }
            cursor = e
        }
        guard cursor == body else { throw bad("data", "\(body - cursor) bytes after the last tensor are not indexed") }
        return Contents(tensors: tensors, metadata: metadata)
    }

    /// Serialises tensors (sorted by name, packed in that order) and metadata.
    public static func encode(_ contents: Contents) -> [UInt8] {
        var parts: [String] = []
        var offset = 0
        var body: [UInt8] = []
        if !contents.metadata.isEmpty {
            let m = contents.metadata.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(quote($0.value))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        for (name, e) in contents.tensors.sorted(by: { $0.key < $1.key }) {
            parts.append("\(quote(name)):{\"dtype\":\"\(e.type.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
            body += e.bytes
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }  // pad with spaces, as the reference writer does
        var out: [UInt8] = []
        let n = UInt64(header.count)
        for i in 0..<8 { out.append(UInt8((n >> (8 * UInt64(i))) & 0xFF)) }
        return out + header + body
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

