import Foundation

/// Reading and writing NumPy `.npy` files (format versions 1.0–3.0, C order, little-endian).
///
/// `bf16` has no NumPy dtype: it is written as `<u2` bit patterns. `int4` is written as
/// the packed `|u1` bytes with the last dimension halved; ``HostTensor/reinterpretedAsInt4()``
/// turns such a file back into an int4 tensor.
public enum NumPyFile {
    /// Parses `.npy` bytes. `path` only labels errors.
    public static func decode(_ data: [UInt8], path: String = "<memory>") throws -> HostTensor {
        func bad(_ field: String, _ reason: String) -> PolychipError { .malformedFile(path: path, field: field, reason: reason) }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard data.count >= 10, Array(data[0..<6]) == magic else { throw bad("magic", "not a .npy file (missing \\x93NUMPY)") }
        let major = data[6]
        let headerLen: Int, start: Int
        switch major {
        case 1:
            headerLen = Int(data[8]) | Int(data[9]) << 8; start = 10
        case 2, 3:
            guard data.count >= 12 else { throw bad("header", "truncated header length") }
            headerLen = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24; start = 12
        default:
            throw bad("version", "unsupported format version \(major).\(data[7])")
        }
        guard headerLen <= data.count - start else { throw bad("header", "header length \(headerLen) runs past the end of the file") }
        guard let header = String(bytes: data[start..<(start + headerLen)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw bad("header", "not text")
        }
        let dict = try NumPyHeader.parse(header, path: path)
        guard case .string(let d) = dict["descr"] else {
            throw bad("descr", "expected a dtype string, got \(Quoted(dict["descr"].map { "\($0)" } ?? "nothing"))")
        }
        guard case .bool(let fortran) = dict["fortran_order"] else { throw bad("fortran_order", "expected True or False") }
        guard !fortran else { throw bad("fortran_order", "only C order is supported, got True") }
        guard case .tuple(let shape) = dict["shape"] else { throw bad("shape", "expected a tuple of non-negative integers") }
        let dtype: DType
        switch d {
        case "<f4", "=f4": dtype = .f32
        case "<f2", "=f2": dtype = .f16
        case "<u2", "=u2": dtype = .bf16
        case "|i1", "<i1", "=i1", "i1": dtype = .i8
        case "<i4", "=i4": dtype = .i32
        case "|u1", "<u1", "=u1", "u1": dtype = .int4
        case "<f8", "=f8", "<i8", "=i8":
            return try wide(d, shape: shape, body: Array(data[(start + headerLen)...]), path: path)
        default: throw bad("descr", "unsupported dtype \(Quoted(d)); use <f4, <f2, <u2 (bf16 bits), |i1, <i4, |u1, or <f8/<i8 (converted when exact)")
        }
        // |u1 is packed int4: the file holds [.., K/2] bytes; the tensor is [.., K].
        var desc = TensorDesc(shape, dtype)
        if dtype == .int4 {
            guard let last = shape.last else { throw bad("shape", "an int4 (|u1) array needs rank ≥ 1") }
            let (k, o) = last.multipliedReportingOverflow(by: 2)
            if o { throw PolychipError.sizeOverflow(shape: shape, dtype: dtype) }
            desc = TensorDesc(shape.dropLast() + [k], .int4)
        }
        let n = try desc.checkedByteCount()
        let body = start + headerLen
        guard data.count - body == n else {
            throw bad("data", "expected \(n) bytes for \(desc), found \(data.count - body)")
        }
        return try HostTensor(desc, bytes: Array(data[body...]))
    }

    /// Reads a `.npy` file.
    public static func read(path: String) throws -> HostTensor {
        guard let d = FileManager.default.contents(atPath: path) else { throw PolychipError.io(path: path, reason: "cannot read file") }
        return try decode([UInt8](d), path: path)
    }

    /// Serializes a tensor as `.npy` (version 1.0).
    public static func encode(_ t: HostTensor) -> [UInt8] {
        var shape = t.desc.shape
        if t.desc.dtype == .int4, let last = shape.last { shape[shape.count - 1] = (last + 1) / 2 }
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(t.desc.dtype.numpyDescr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let len = header.utf8.count
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(len & 0xFF), UInt8(len >> 8)]
        out += Array(header.utf8)
        out += t.bytes
        return out
    }

    /// Writes a `.npy` file, all-or-nothing (``OutputFiles``): a failed write leaves an
    /// existing file as it was.
    public static func write(_ t: HostTensor, path: String) throws {
        try OutputFiles.write(encode(t), to: path)
    }
}

extension NumPyFile {
    /// numpy's defaults, `<f8` (float64) and `<i8` (int64), converted to `f32` and `i32`:
    /// float64 rounds to the nearest f32 (as `astype(np.float32)`), but a finite value beyond
    /// f32's range is an error rather than a silent infinity; int64 must fit in i32.
    static func wide(_ descr: String, shape: [Int], body: [UInt8], path: String) throws -> HostTensor {
        let desc = TensorDesc(shape, descr.hasSuffix("f8") ? .f32 : .i32)
        let count = try desc.checkedByteCount() / 4
        guard body.count == count * 8 else {
            throw PolychipError.malformedFile(path: path, field: "data", reason: "expected \(count * 8) bytes for \(count) \(Quoted(descr)) values, found \(body.count)")
        }
        func word(_ i: Int) -> UInt64 {
            var w: UInt64 = 0
            for b in 0..<8 { w |= UInt64(body[i * 8 + b]) << (8 * b) }
            return w
        }
        if descr.hasSuffix("f8") {
            var out = [Float](repeating: 0, count: count)
            for i in 0..<count {
                let v = Double(bitPattern: word(i))
                let f = Float(v)
                if v.isFinite && !f.isFinite {
                    throw PolychipError.malformedFile(path: path, field: "data", reason: "float64 element \(i) = \(v) is outside the f32 range (±3.4e38)")
                }
                out[i] = f
            }
            return try HostTensor(shape, .f32, floats: out)
        }
        var out = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            let v = Int64(bitPattern: word(i))
            guard let n = Int32(exactly: v) else {
                throw PolychipError.malformedFile(path: path, field: "data", reason: "int64 element \(i) = \(v) does not fit in int32")
            }
            out[i] = n
        }
        return try HostTensor(shape, int32s: out)
    }
}

/// The header dictionary of a `.npy` file, parsed as the Python literal it is (numpy reads
/// it with `ast.literal_eval`): exactly the keys `descr`, `fortran_order` and `shape`, with
/// a string, a boolean and a tuple of non-negative integers. A value that merely contains
/// the text `'shape': (8, 4)` is not the shape.
enum NumPyHeader {
    enum Value: CustomStringConvertible {
        case string(String), bool(Bool), tuple([Int]), none, other(String)
        var description: String {
            switch self {
            case .string(let s): return "'\(s)'"
            case .bool(let b): return b ? "True" : "False"
            case .tuple(let t): return "(\(t.map(String.init).joined(separator: ", ")))"
            case .none: return "None"
            case .other(let s): return s
            }
        }
    }

    static func parse(_ text: String, path: String) throws -> [String: Value] {
        func bad(_ field: String, _ reason: String) -> PolychipError { .malformedFile(path: path, field: field, reason: reason) }
        let c = Array(text.unicodeScalars)
        var i = 0
        func skip() { while i < c.count, [" ", "\t", "\n", "\r"].contains(c[i]) { i += 1 } }
        func expect(_ ch: Unicode.Scalar, _ what: String) throws {
            skip()
            guard i < c.count, c[i] == ch else { throw bad("header", "expected \(what) at character \(i)") }
            i += 1
        }
        func string() throws -> String {
            let q = c[i]
            i += 1
            var out = String.UnicodeScalarView()
            while i < c.count, c[i] != q {
                if c[i] == "\\" {
                    i += 1
                    guard i < c.count else { break }
                    switch c[i] { case "n": out.append("\n"); case "t": out.append("\t"); default: out.append(c[i]) }
                } else {
                    out.append(c[i])
                }
                i += 1
            }
            guard i < c.count else { throw bad("header", "unterminated string") }
            i += 1
            return String(out)
        }
        func integer(_ field: String) throws -> Int {
            skip()
            let s = i
            while i < c.count, ("0"..."9").contains(c[i]) || (i == s && c[i] == "-") { i += 1 }
            let digits = String(String.UnicodeScalarView(c[s..<i]))
            if i < c.count, c[i] == "L" { i += 1 }  // Python 2 longs in old files
            guard let v = Int(digits) else { throw bad(field, "\(Quoted(digits)) is not an integer") }
            guard v >= 0 else { throw bad(field, "dimension \(v) is negative") }
            return v
        }
        func value(_ field: String) throws -> Value {
            skip()
            guard i < c.count else { throw bad("header", "truncated") }
            switch c[i] {
            case "'", "\"": return .string(try string())
            case "(":
                i += 1
                var dims: [Int] = []
                skip()
                while i < c.count, c[i] != ")" {
                    dims.append(try integer(field))
                    skip()
                    if i < c.count, c[i] == "," { i += 1; skip() } else { break }
                }
                try expect(")", "')' closing the tuple")
                return .tuple(dims)
            default:
                let s = i
                while i < c.count, c[i].properties.isAlphabetic || ("0"..."9").contains(c[i]) || c[i] == "_" { i += 1 }
                let word = String(String.UnicodeScalarView(c[s..<i]))
                switch word {
                case "True": return .bool(true)
                case "False": return .bool(false)
                case "None": return .none
                default:
                    guard !word.isEmpty else { throw bad(field, "unsupported value at character \(s) (lists and nested structures are not plain arrays)") }
                    return .other(word)
                }
            }
        }
        try expect("{", "'{'")
        var out: [String: Value] = [:]
        skip()
        while i < c.count, c[i] != "}" {
            guard c[i] == "'" || c[i] == "\"" else { throw bad("header", "expected a quoted key at character \(i)") }
            let key = try string()
            try expect(":", "':' after the key \(Quoted(key))")
            let v = try value(key)
            guard out.updateValue(v, forKey: key) == nil else { throw bad(key, "appears twice in the header") }
            skip()
            if i < c.count, c[i] == "," { i += 1; skip() } else { break }
        }
        try expect("}", "'}' closing the header")
        for key in ["descr", "fortran_order", "shape"] where out[key] == nil { throw bad(key, "missing from header") }
        if let extra = out.keys.sorted().first(where: { !["descr", "fortran_order", "shape"].contains($0) }) {
            throw bad(extra, "not a .npy header key (numpy allows exactly descr, fortran_order and shape)")
        }
        return out
    }
}

extension HostTensor {
    /// Converts a float tensor to another float dtype (rounding to nearest even).
    public func converted(to dtype: DType) throws -> HostTensor {
        if dtype == desc.dtype { return self }
        guard desc.dtype.isFloat, dtype.isFloat else {
            throw PolychipError.invalidTensor(reason: "cannot convert \(desc.dtype) to \(dtype)")
        }
        return try HostTensor(desc.shape, dtype, floats: floats)
    }
}
