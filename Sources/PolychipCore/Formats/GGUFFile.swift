import Foundation

/// Reading tensors from GGUF files (ggml's format, versions 2 and 3), enough to import a
/// `Q4_0` weight (``GGMLQ4_0``) into the native INT4 layout: `polychip convert`.
///
/// Layout: `GGUF`, a u32 version, u64 tensor and metadata counts; metadata key/value pairs
/// (typed values, arrays of them); tensor infos (name, dims innermost first, ggml type, data
/// offset); then the data, aligned to `general.alignment` (default 32). Everything is
/// little-endian. Every count and length is checked against the bytes that remain, so a
/// damaged or hostile file is a typed `malformedFile` error, never an allocation of what a
/// header claims.
public enum GGUFFile {
    /// ggml tensor types this reader names (others are reported by number).
    public static let typeNames: [UInt32: String] = [0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
                                                      10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16"]
    /// The ggml type number of Q4_0.
    public static let q4_0: UInt32 = 2

    /// One tensor's description.
    public struct TensorInfo: Sendable, Equatable {
        /// Its name (`blk.0.ffn_down.weight`).
        public var name: String
        /// Dimensions, innermost first (ggml's `ne`): a weight `[N, K]` is `[K, N]` here.
        public var dims: [Int]
        /// ggml type number.
        public var type: UInt32
        /// Byte offset of its data from the start of the data section.
        public var offset: Int
        /// The type's name (`Q4_0`), or `type N`.
        public var typeName: String { GGUFFile.typeNames[type] ?? "type \(type)" }
    }

    /// A parsed file: its tensors (in file order) and where their data starts.
    public struct Contents: Sendable {
        /// Format version (2 or 3).
        public var version: UInt32
        /// Tensor descriptions in file order.
        public var tensors: [TensorInfo]
        /// Byte offset of the data section in the file.
        public var dataStart: Int
        /// `general.alignment` (32 when absent).
        public var alignment: Int
    }

    /// Parses the header, metadata and tensor infos of `data`. `path` only labels errors.
    public static func decode(_ data: [UInt8], path: String = "<memory>") throws -> Contents {
        var r = Reader(data: data, path: path)
        guard data.count >= 4, Array(data[0..<4]) == Array("GGUF".utf8) else { throw r.bad("magic", "not a GGUF file (missing 'GGUF')") }
        r.pos = 4
        let version = try r.u32("version")
        guard version == 2 || version == 3 else { throw r.bad("version", "unsupported GGUF version \(version) (2 and 3 are read)") }
        let tensorCount = try r.count("tensor_count", minBytesEach: 24)
        let kvCount = try r.count("metadata_kv_count", minBytesEach: 12)
        var alignment = 32
        for _ in 0..<kvCount {
            let key = try r.string("metadata key")
            let type = try r.u32("type of \(Quoted(key))")
            if key == "general.alignment" {
                guard type == 4 else { throw r.bad(key, "expected a uint32, got value type \(type)") }
                let a = Int(try r.u32(key))
                guard a >= 1, a <= 1 << 16, a & (a - 1) == 0 else { throw r.bad(key, "alignment \(a) is not a power of two in 1…65536") }
                alignment = a
            } else {
                try r.skipValue(type: type, field: key, depth: 0)
            }
        }
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(tensorCount)
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try r.string("tensor name")
            let rank = Int(try r.u32("n_dims of \(Quoted(name))"))
            guard (1...4).contains(rank) else { throw r.bad(name, "n_dims \(rank) is not 1…4") }
            var dims: [Int] = []
            for _ in 0..<rank {
                let d = try r.u64("dims of \(Quoted(name))")
                guard d >= 1, d <= UInt64(Int32.max) else { throw r.bad(name, "dimension \(d) is not in 1…2³¹−1") }
                dims.append(Int(d))
            }
            let type = try r.u32("type of \(Quoted(name))")
            let offset = try r.u64("offset of \(Quoted(name))")
            guard offset <= UInt64(data.count) else { throw r.bad(name, "data offset \(offset) is past the end of the file") }
            guard names.insert(name).inserted else { throw r.bad(name, "tensor name appears twice") }
            tensors.append(TensorInfo(name: name, dims: dims, type: type, offset: Int(offset)))
        }
        let start = (r.pos + alignment - 1) / alignment * alignment
        guard start <= data.count else { throw r.bad("data", "the data section starts past the end of the file") }
        return Contents(version: version, tensors: tensors, dataStart: start, alignment: alignment)
    }

    /// Reads the `Q4_0` tensor `name` of the file at `path` as a native INT4 weight (group
    /// size 32, symmetric) of `[rows, K]`, with its native shape: a 2-D tensor `[K, N]` (ggml
    /// order) is `[N, K]`; a 3-D expert stack `[K, N, E]` is `[E, N, K]` (the
    /// `int4GroupedMatmul` layout; the weight then holds its `E·N` rows).
    /// - Throws: `malformedFile` for a damaged file, `invalidArgument` naming the tensor when it
    ///   is missing or not `Q4_0`.
    public static func q4_0Tensor(path: String, name: String) throws -> (weight: NativeInt4Weight, shape: [Int]) {
        guard let d = FileManager.default.contents(atPath: path) else { throw PolychipError.io(path: path, reason: "cannot read file") }
        return try q4_0Tensor([UInt8](d), name: name, path: path)
    }

    /// ``q4_0Tensor(path:name:)`` on the bytes of a file (`path` labels errors).
    public static func q4_0Tensor(_ data: [UInt8], name: String, path: String = "<memory>") throws -> (weight: NativeInt4Weight, shape: [Int]) {
        let contents = try decode(data, path: path)
        guard let t = contents.tensors.first(where: { $0.name == name }) else {
            let known = contents.tensors.prefix(12).map(\.name).joined(separator: ", ")
            throw PolychipError.invalidArgument(kernel: "convert", argument: "--tensor",
                                                reason: "no tensor \(Quoted(name)) in \(Quoted.bounded(path)); it has \(contents.tensors.count): \(Quoted.bounded(known, limit: 400))")
        }
        guard t.type == q4_0 else {
            throw PolychipError.invalidArgument(kernel: "convert", argument: "--tensor",
                                                reason: "\(Quoted(name)) is \(t.typeName); only Q4_0 converts losslessly to the native INT4 layout")
        }
        guard t.dims.count == 2 || t.dims.count == 3 else {
            throw PolychipError.invalidArgument(kernel: "convert", argument: "--tensor", reason: "\(Quoted(name)) has \(t.dims.count) dimensions; 2 (a weight) or 3 (an expert stack) convert")
        }
        let k = t.dims[0]
        guard k % GGMLQ4_0.blockSize == 0 else {
            throw PolychipError.malformedFile(path: path, field: name, reason: "Q4_0 rows of \(k) values are not whole 32-value blocks")
        }
        // Sizes in Double first: dims up to 2³¹ each could overflow Int in the product.
        let size = t.dims.dropFirst().reduce(Double(k / GGMLQ4_0.blockSize * GGMLQ4_0.blockBytes)) { $0 * Double($1) }
        let begin = contents.dataStart + t.offset
        guard begin <= data.count, size <= Double(data.count - begin) else {
            throw PolychipError.malformedFile(path: path, field: name, reason: "its \(size) bytes of data run past the end of the file")
        }
        let rows = t.dims.dropFirst().reduce(1, *)
        let bytes = Int(size)
        guard begin <= data.count, bytes <= data.count - begin else {
            throw PolychipError.malformedFile(path: path, field: name, reason: "its \(bytes) bytes of data run past the end of the file")
        }
        let w = try GGMLQ4_0.importTensor(Array(data[begin..<(begin + bytes)]), rows: rows, columns: k)
        return (w, Array(t.dims.reversed()))
    }

    /// A cursor over the file's bytes; every read checks the bytes that remain.
    struct Reader {
        let data: [UInt8]
        let path: String
        var pos = 0

        func bad(_ field: String, _ reason: String) -> PolychipError { .malformedFile(path: path, field: field, reason: reason) }

        mutating func bytes(_ n: Int, _ field: String) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= data.count - pos else { throw bad(field, "truncated: needs \(n) bytes at offset \(pos), \(data.count - pos) remain") }
            defer { pos += n }
            return data[pos..<(pos + n)]
        }
        mutating func u32(_ field: String) throws -> UInt32 {
            try bytes(4, field).reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u64(_ field: String) throws -> UInt64 {
            try bytes(8, field).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        /// A u64 count of items of at least `minBytesEach` bytes each: bounded by what remains.
        mutating func count(_ field: String, minBytesEach: Int) throws -> Int {
            let n = try u64(field)
            guard n <= UInt64((data.count - pos) / max(1, minBytesEach)) else {
                throw bad(field, "\(n) items cannot fit in the \(data.count - pos) bytes that remain")
            }
            return Int(n)
        }
        mutating func string(_ field: String) throws -> String {
            let n = try u64(field + " length")
            guard n <= UInt64(data.count - pos) else { throw bad(field, "length \(n) runs past the end of the file") }
            return String(decoding: try bytes(Int(n), field), as: UTF8.self)
        }
        /// Skips one metadata value of `type` (arrays nest at most 8 deep).
        mutating func skipValue(type: UInt32, field: String, depth: Int) throws {
            let fixed: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
            if let size = fixed[type] { _ = try bytes(size, field); return }
            switch type {
            case 8: _ = try string(field)
            case 9:
                guard depth < 8 else { throw bad(field, "arrays nested more than 8 deep") }
                let inner = try u32(field + " element type")
                let n = try u64(field + " count")
                if let size = fixed[inner] {
                    guard n <= UInt64((data.count - pos) / size) else { throw bad(field, "array of \(n) items runs past the end of the file") }
                    _ = try bytes(Int(n) * size, field)
                } else {
                    guard n <= UInt64(data.count - pos) else { throw bad(field, "array of \(n) items runs past the end of the file") }
                    for _ in 0..<Int(n) { try skipValue(type: inner, field: field, depth: depth + 1) }
                }
            default: throw bad(field, "unknown metadata value type \(type)")
            }
        }
    }
}
