/// A weight matrix `W[N, K]` in the native INT4 layout (docs/kernels.md): `q` int4 `[N, K]`,
/// `scales` f32 `[N, K/G]`, and for the asymmetric format `zeros` i8 `[N, K/G]`;
/// `w[n,k] = scales[n, k/G] · (q[n,k] − zero)` with zero 8 when symmetric.
public struct NativeInt4Weight: Sendable, Equatable {
    /// Group size and symmetry.
    public var format: Int4Format
    /// Packed nibbles `[N, K]`.
    public var q: HostTensor
    /// Scales `[N, K/G]`.
    public var scales: HostTensor
    /// Zero points `[N, K/G]` (asymmetric only).
    public var zeros: HostTensor?

    /// Creates a weight from its tensors, checking shapes, dtypes and the zero-point range.
    public init(format: Int4Format, q: HostTensor, scales: HostTensor, zeros: HostTensor? = nil) throws {
        let op = Op.dequantizeInt4(format, output: .f32)
        _ = try op.validate([q.desc, scales.desc] + (zeros.map { [$0.desc] } ?? []))
        if let z = zeros { try Int4Format.checkZeroPoints(z.ints, kernel: "int4-import", argument: "zeros") }
        self.format = format; self.q = q; self.scales = scales; self.zeros = zeros
    }

    /// Rows N (output features).
    public var rows: Int { q.desc.shape[0] }
    /// Columns K (input features).
    public var columns: Int { q.desc.shape[1] }
    /// The tensors in `dequantizeInt4` / `int4Matmul` input order.
    public var tensors: [HostTensor] { [q, scales] + (zeros.map { [$0] } ?? []) }

    /// `W[N, K]` in f32, row-major: one f32 product `scale · Float(u − zero)` per element (exact
    /// where the format's own dequantizer is, so imports compare bit for bit).
    public func dequantized() -> [Float] {
        let n = rows, k = columns, g = format.groupSize
        let s = scales.floats
        let z = zeros?.ints
        var out = [Float](repeating: 0, count: n * k)
        for r in 0..<n {
            for c in 0..<k {
                let gi = r * (k / g) + c / g
                let u = Int(Int4Packing.nibble(q.bytes, r * k + c))
                out[r * k + c] = s[gi] * Float(u - (z?[gi] ?? 8))
            }
        }
        return out
    }
}

/// A checkpoint weight converted to the native layout.
public struct ImportedInt4: Sendable, Equatable {
    /// The weight `[N, K]` (output features × input features).
    public var weight: NativeInt4Weight
    /// Act-order GPTQ: column `k` of `weight` is input feature `inputPermutation[k]`, so
    /// `y = x[:, inputPermutation] · weightᵀ`. `nil` when the input order is unchanged.
    public var inputPermutation: [Int]?
}

/// ggml's `Q4_0`: blocks of 32 values, each an f16 scale `d` and 16 bytes whose low nibbles hold
/// elements 0…15 and high nibbles elements 16…31; value = `(q − 8) · d`.
public enum GGMLQ4_0 {
    /// Values per block.
    public static let blockSize = 32
    /// Bytes per block (f16 scale + 16 nibble bytes).
    public static let blockBytes = 18

    /// ggml's reference quantizer (`quantize_row_q4_0_ref`), bit for bit: per block, `max` is the
    /// value of largest magnitude (first one on ties), `d = max / −8`, `id = 1/d` (0 when d = 0),
    /// `q = min(15, Int8(x·id + 8.5))` (truncation), `d` stored as f16 (round to nearest even).
    /// An all-zero block gets `d = 0` and every `q = 8`.
    /// - Throws: `invalidArgument` when the count is not a multiple of 32 or a value is not finite.
    public static func quantize(_ x: [Float]) throws -> [UInt8] {
        guard x.count % blockSize == 0 else {
            throw PolychipError.invalidArgument(kernel: "q4_0", argument: "x", reason: "\(x.count) values are not a multiple of the block size 32")
        }
        if let i = x.firstIndex(where: { !$0.isFinite }) {
            throw PolychipError.invalidArgument(kernel: "q4_0", argument: "x", reason: "value \(i) is \(x[i]); Q4_0 quantizes finite values only")
        }
        var out = [UInt8](repeating: 0, count: x.count / blockSize * blockBytes)
        for b in 0..<(x.count / blockSize) {
            let base = b * blockSize
            var amax: Float = 0, maxv: Float = 0
            for j in 0..<blockSize where amax < abs(x[base + j]) { amax = abs(x[base + j]); maxv = x[base + j] }
            let d: Float = maxv / -8
            let id: Float = d != 0 ? 1 / d : 0
            let h = FloatBits.f16Bits(d)
            out[b * blockBytes] = UInt8(h & 0xFF)
            out[b * blockBytes + 1] = UInt8(h >> 8)
            for j in 0..<16 {
                let q0 = nibble(x[base + j] * id), q1 = nibble(x[base + 16 + j] * id)
                out[b * blockBytes + 2 + j] = UInt8(q0) | UInt8(q1) << 4
            }
        }
        return out
    }

    /// `min(15, Int8(v + 8.5))` with C's truncation. For finite blocks `|v| ≤ 8`; where C's
    /// conversion would be undefined (a subnormal `d` whose reciprocal overflows) the value is
    /// clamped into 0…15 instead of trapping.
    static func nibble(_ v: Float) -> Int {
        let t = v + 8.5
        guard t.isFinite else { return t > 0 ? 15 : 0 }
        return min(15, max(0, Int(max(-128, min(127, t)).rounded(.towardZero))))
    }

    /// ggml's dequantizer (`dequantize_row_q4_0`): `(q − 8) · Float(d)` in f32.
    public static func dequantize(_ blocks: [UInt8]) throws -> [Float] {
        guard blocks.count % blockBytes == 0 else {
            throw PolychipError.invalidArgument(kernel: "q4_0", argument: "blocks", reason: "\(blocks.count) bytes are not a whole number of 18-byte blocks")
        }
        var out = [Float](repeating: 0, count: blocks.count / blockBytes * blockSize)
        for b in 0..<(blocks.count / blockBytes) {
            let d = FloatBits.float(fromF16: UInt16(blocks[b * blockBytes]) | UInt16(blocks[b * blockBytes + 1]) << 8)
            for j in 0..<16 {
                let byte = blocks[b * blockBytes + 2 + j]
                out[b * blockSize + j] = Float(Int(byte & 0x0F) - 8) * d
                out[b * blockSize + 16 + j] = Float(Int(byte >> 4) - 8) * d
            }
        }
        return out
    }

    /// Converts a `[rows, columns]` Q4_0 tensor (rows of `columns/32` blocks) to the native
    /// symmetric layout with group size 32, losslessly: `scale = Float(d)`, the nibbles re-packed
    /// from ggml's split halves into the native element order.
    public static func importTensor(_ blocks: [UInt8], rows: Int, columns: Int) throws -> NativeInt4Weight {
        guard rows >= 1, columns >= blockSize, columns % blockSize == 0 else {
            throw PolychipError.invalidArgument(kernel: "q4_0", argument: "shape", reason: "[\(rows), \(columns)]: columns must be a positive multiple of 32")
        }
        let (cells, o) = rows.multipliedReportingOverflow(by: columns)
        guard !o, blocks.count == cells / blockSize * blockBytes else {
            throw PolychipError.invalidArgument(kernel: "q4_0", argument: "blocks", reason: "\(blocks.count) bytes; [\(rows), \(columns)] needs \(o ? 0 : cells / blockSize * blockBytes)")
        }
        let nBlocks = cells / blockSize
        var nibbles = [UInt8](repeating: 0, count: cells)
        var scales = [Float](repeating: 0, count: nBlocks)
        for b in 0..<nBlocks {
            scales[b] = FloatBits.float(fromF16: UInt16(blocks[b * blockBytes]) | UInt16(blocks[b * blockBytes + 1]) << 8)
            for j in 0..<16 {
                let byte = blocks[b * blockBytes + 2 + j]
                nibbles[b * blockSize + j] = byte & 0x0F
                nibbles[b * blockSize + 16 + j] = byte >> 4
            }
        }
        return try NativeInt4Weight(format: Int4Format(groupSize: blockSize, symmetric: true),
                                    q: HostTensor(TensorDesc([rows, columns], .int4), bytes: Int4Packing.pack(nibbles)),
                                    scales: HostTensor([rows, columns / blockSize], .f32, floats: scales))
    }
}

/// GPTQ checkpoints (AutoGPTQ / GPTQModel layout, 4 bits): `qweight` i32 `[K/8, N]` packed along
/// K (nibble `j` of `qweight[i, n]` is `q[8i + j, n]`), `qzeros` i32 `[K/G, N/8]` packed along N,
/// `scales` `[K/G, N]` (f16 in checkpoints), `g_idx` i32 `[K]` (the group of each input feature;
/// act-order checkpoints permute it). Value: `w[k, n] = scale[g, n] · (q[k, n] − zero[g, n])`,
/// `g = g_idx[k]`, where the stored zero is `zero − 1` in the v1 format and `zero` in v2.
public enum GPTQ {
    /// The zero-point convention.
    public enum Version: String, Sendable, Hashable, CaseIterable {
        /// AutoGPTQ's original format: the stored zero is `zero − 1` (so the zero point is stored + 1).
        case v1
        /// GPTQ v2: the stored zero is the zero point.
        case v2
    }

    /// The unpacked checkpoint: `q[k][n]`, effective zero points `[K/G][N]`, scales `[K/G][N]`, groups `[K]`.
    struct Unpacked { var k: Int; var n: Int; var groups: Int; var q: [UInt8]; var zeros: [Int]; var scales: [Float]; var gIdx: [Int] }

    static func unpack(qweight: HostTensor, qzeros: HostTensor, scales: HostTensor, gIdx: HostTensor?, version: Version) throws -> Unpacked {
        func bad(_ a: String, _ r: String) -> PolychipError { .invalidArgument(kernel: "gptq-import", argument: a, reason: r) }
        guard qweight.desc.dtype == .i32, qweight.desc.rank == 2 else { throw bad("qweight", "must be i32 [K/8, N], got \(qweight.desc)") }
        guard qzeros.desc.dtype == .i32, qzeros.desc.rank == 2 else { throw bad("qzeros", "must be i32 [K/G, N/8], got \(qzeros.desc)") }
        guard scales.desc.dtype.isFloat, scales.desc.rank == 2 else { throw bad("scales", "must be a float [K/G, N], got \(scales.desc)") }
        let k = qweight.desc.shape[0] * 8, n = qweight.desc.shape[1], groups = scales.desc.shape[0]
        guard n >= 1, k >= 8, groups >= 1, k % groups == 0, (k / groups) % 2 == 0 else {
            throw bad("scales", "\(groups) groups do not split K = \(k) into even groups")
        }
        guard scales.desc.shape[1] == n else { throw bad("scales", "has \(scales.desc.shape[1]) columns, qweight has N = \(n)") }
        guard n % 8 == 0, qzeros.desc.shape == [groups, n / 8] else { throw bad("qzeros", "must be [\(groups), \(n / 8)], got \(qzeros.desc)") }
        let g = k / groups
        var gi: [Int]
        if let gIdx {
            guard gIdx.desc.dtype == .i32, gIdx.desc.shape == [k] else { throw bad("g_idx", "must be i32 [\(k)], got \(gIdx.desc)") }
            gi = gIdx.ints
            if let badG = gi.first(where: { $0 < 0 || $0 >= groups }) { throw bad("g_idx", "group \(badG) is outside 0..<\(groups)") }
        } else {
            gi = (0..<k).map { $0 / g }
        }
        let qw = qweight.ints, qz = qzeros.ints
        var q = [UInt8](repeating: 0, count: k * n)
        for i in 0..<(k / 8) {
            for c in 0..<n {
                let word = UInt32(truncatingIfNeeded: qw[i * n + c])
                for j in 0..<8 { q[(8 * i + j) * n + c] = UInt8((word >> (4 * UInt32(j))) & 0xF) }
            }
        }
        var zeros = [Int](repeating: 0, count: groups * n)
        for gr in 0..<groups {
            for c in 0..<(n / 8) {
                let word = UInt32(truncatingIfNeeded: qz[gr * (n / 8) + c])
                for j in 0..<8 { zeros[gr * n + 8 * c + j] = Int((word >> (4 * UInt32(j))) & 0xF) + (version == .v1 ? 1 : 0) }
            }
        }
        return Unpacked(k: k, n: n, groups: groups, q: q, zeros: zeros, scales: scales.floats, gIdx: gi)
    }

    /// The format's own dequantization in f32, `[K, N]` row-major (input features × outputs):
    /// `Float(scale) · Float(q − zero)`.
    public static func dequantize(qweight: HostTensor, qzeros: HostTensor, scales: HostTensor, gIdx: HostTensor? = nil,
                                  version: Version) throws -> [Float] {
        let u = try unpack(qweight: qweight, qzeros: qzeros, scales: scales, gIdx: gIdx, version: version)
        var out = [Float](repeating: 0, count: u.k * u.n)
        for kk in 0..<u.k {
            let g = u.gIdx[kk]
            for c in 0..<u.n { out[kk * u.n + c] = u.scales[g * u.n + c] * Float(Int(u.q[kk * u.n + c]) - u.zeros[g * u.n + c]) }
        }
        return out
    }

    /// Converts to the native asymmetric layout `[N, K]` (transposed; group size K/groups),
    /// losslessly. Act-order checkpoints (`g_idx` not `k / G`) have their input features sorted
    /// by group (stable), returned as ``ImportedInt4/inputPermutation``.
    /// - Throws: `invalidArgument` for malformed tensors, for an act-order group that does not
    ///   hold exactly G features, and for a v1 zero nibble of 15 (zero point 16, the v1 off-by-one
    ///   of a zero point 0), which the native 0…15 zero points cannot hold.
    public static func importTensor(qweight: HostTensor, qzeros: HostTensor, scales: HostTensor, gIdx: HostTensor? = nil,
                                    version: Version) throws -> ImportedInt4 {
        let u = try unpack(qweight: qweight, qzeros: qzeros, scales: scales, gIdx: gIdx, version: version)
        let g = u.k / u.groups
        if let i = u.zeros.firstIndex(where: { $0 > 15 }) {
            throw PolychipError.invalidArgument(kernel: "gptq-import", argument: "qzeros",
                                                reason: "group \(i / u.n), column \(i % u.n): v1 stored zero 15 means zero point 16 (the v1 off-by-one of a zero point 0), outside the native 0…15")
        }
        let perm = (0..<u.k).sorted { u.gIdx[$0] != u.gIdx[$1] ? u.gIdx[$0] < u.gIdx[$1] : $0 < $1 }
        for gr in 0..<u.groups where perm[(gr * g)..<((gr + 1) * g)].contains(where: { u.gIdx[$0] != gr }) {
            throw PolychipError.invalidArgument(kernel: "gptq-import", argument: "g_idx", reason: "group \(gr) does not hold exactly \(g) input features")
        }
        var nibbles = [UInt8](repeating: 0, count: u.n * u.k)
        var sc = [Float](repeating: 0, count: u.n * u.groups), zs = [Int8](repeating: 0, count: u.n * u.groups)
        for c in 0..<u.n {
            for (kk, src) in perm.enumerated() { nibbles[c * u.k + kk] = u.q[src * u.n + c] }
            for gr in 0..<u.groups {
                sc[c * u.groups + gr] = u.scales[gr * u.n + c]
                zs[c * u.groups + gr] = Int8(u.zeros[gr * u.n + c])
            }
        }
        let w = try NativeInt4Weight(format: Int4Format(groupSize: g, symmetric: false),
                                     q: HostTensor(TensorDesc([u.n, u.k], .int4), bytes: Int4Packing.pack(nibbles)),
                                     scales: HostTensor([u.n, u.groups], .f32, floats: sc), zeros: HostTensor([u.n, u.groups], int8s: zs))
        return ImportedInt4(weight: w, inputPermutation: perm == Array(0..<u.k) ? nil : perm)
    }
}

/// AWQ checkpoints (AutoAWQ GEMM layout, 4 bits): `qweight` i32 `[K, N/8]` and `qzeros` i32
/// `[K/G, N/8]` packed along N in AWQ's interleaved order — nibble `i` of a word holds column
/// `8c + [0, 2, 4, 6, 1, 3, 5, 7][i]` — and `scales` `[K/G, N]`; `w[k, n] = scale · (q − zero)`.
public enum AWQ {
    /// Column offset held by nibble `i` of a packed word.
    public static let packOrder = [0, 2, 4, 6, 1, 3, 5, 7]

    static func unpackColumns(_ t: HostTensor, rows: Int, n: Int) -> [Int] {
        let w = t.ints
        var out = [Int](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for c in 0..<(n / 8) {
                let word = UInt32(truncatingIfNeeded: w[r * (n / 8) + c])
                for i in 0..<8 { out[r * n + 8 * c + packOrder[i]] = Int((word >> (4 * UInt32(i))) & 0xF) }
            }
        }
        return out
    }

    static func check(_ qweight: HostTensor, _ qzeros: HostTensor, _ scales: HostTensor) throws -> (k: Int, n: Int, groups: Int) {
        func bad(_ a: String, _ r: String) -> PolychipError { .invalidArgument(kernel: "awq-import", argument: a, reason: r) }
        guard qweight.desc.dtype == .i32, qweight.desc.rank == 2 else { throw bad("qweight", "must be i32 [K, N/8], got \(qweight.desc)") }
        guard scales.desc.dtype.isFloat, scales.desc.rank == 2 else { throw bad("scales", "must be a float [K/G, N], got \(scales.desc)") }
        let k = qweight.desc.shape[0], n = qweight.desc.shape[1] * 8, groups = scales.desc.shape[0]
        guard k >= 2, n >= 8, groups >= 1, k % groups == 0, (k / groups) % 2 == 0 else {
            throw bad("scales", "\(groups) groups do not split K = \(k) into even groups")
        }
        guard scales.desc.shape[1] == n else { throw bad("scales", "has \(scales.desc.shape[1]) columns, qweight packs N = \(n)") }
        guard qzeros.desc.dtype == .i32, qzeros.desc.shape == [groups, n / 8] else { throw bad("qzeros", "must be i32 [\(groups), \(n / 8)], got \(qzeros.desc)") }
        return (k, n, groups)
    }

    /// The format's own dequantization in f32, `[K, N]`: `Float(scale) · Float(q − zero)`.
    public static func dequantize(qweight: HostTensor, qzeros: HostTensor, scales: HostTensor) throws -> [Float] {
        let (k, n, groups) = try check(qweight, qzeros, scales)
        let q = unpackColumns(qweight, rows: k, n: n), z = unpackColumns(qzeros, rows: groups, n: n), s = scales.floats
        let g = k / groups
        var out = [Float](repeating: 0, count: k * n)
        for kk in 0..<k { for c in 0..<n { out[kk * n + c] = s[(kk / g) * n + c] * Float(q[kk * n + c] - z[(kk / g) * n + c]) } }
        return out
    }

    /// Converts to the native asymmetric layout `[N, K]` (transposed), losslessly.
    public static func importTensor(qweight: HostTensor, qzeros: HostTensor, scales: HostTensor) throws -> ImportedInt4 {
        let (k, n, groups) = try check(qweight, qzeros, scales)
        let q = unpackColumns(qweight, rows: k, n: n), z = unpackColumns(qzeros, rows: groups, n: n), s = scales.floats
        var nibbles = [UInt8](repeating: 0, count: n * k)
        var sc = [Float](repeating: 0, count: n * groups), zs = [Int8](repeating: 0, count: n * groups)
        for c in 0..<n {
            for kk in 0..<k { nibbles[c * k + kk] = UInt8(q[kk * n + c]) }
            for gr in 0..<groups { sc[c * groups + gr] = s[gr * n + c]; zs[c * groups + gr] = Int8(z[gr * n + c]) }
        }
        let w = try NativeInt4Weight(format: Int4Format(groupSize: k / groups, symmetric: false),
                                     q: HostTensor(TensorDesc([n, k], .int4), bytes: Int4Packing.pack(nibbles)),
                                     scales: HostTensor([n, groups], .f32, floats: sc), zeros: HostTensor([n, groups], int8s: zs))
        return ImportedInt4(weight: w, inputPermutation: nil)
    }
}
