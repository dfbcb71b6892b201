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
        let descr = try value(of: "descr", in: header, path: path)
        let fortran = try value(of: "fortran_order", in: header, path: path)
        let shapeText = try value(of: "shape", in: header, path: path)
        guard fortran == "False" else { throw bad("fortran_order", "only C order is supported, got \(fortran)") }
        let d = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        let dtype: DType
        switch d {
        case "<f4", "=f4": dtype = .f32
        case "<f2", "=f2": dtype = .f16
        case "<u2", "=u2": dtype = .bf16
        case "|i1", "<i1", "=i1", "i1": dtype = .i8
        case "<i4", "=i4": dtype = .i32
        case "|u1", "<u1", "=u1", "u1": dtype = .int4
        default: throw bad("descr", "unsupported dtype \(descr); use <f4, <f2, <u2 (bf16 bits), |i1, <i4 or |u1")
        }
        guard shapeText.hasPrefix("("), shapeText.hasSuffix(")") else { throw bad("shape", "expected a tuple, got \(shapeText)") }
        let dims = shapeText.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var shape: [Int] = []
        for s in dims {
            guard let v = Int(s), v >= 0 else { throw bad("shape", "dimension '\(s)' is not a non-negative integer") }
            shape.append(v)
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

    private static func value(of key: String, in header: String, path: String) throws -> String {
        guard let r = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else {
            throw PolychipError.malformedFile(path: path, field: key, reason: "missing from header")
        }
        var rest = header[r.upperBound...].drop { $0 == " " }
        guard rest.first == ":" else { throw PolychipError.malformedFile(path: path, field: key, reason: "expected ':'") }
        rest = rest.dropFirst().drop { $0 == " " }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { throw PolychipError.malformedFile(path: path, field: key, reason: "unterminated tuple") }
            return String(rest[...close])
        }
        let end = rest.firstIndex { $0 == "," || $0 == "}" } ?? rest.endIndex
        return rest[..<end].trimmingCharacters(in: .whitespaces)
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
