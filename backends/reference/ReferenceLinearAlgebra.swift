import PolychipCore

extension Reference {
    static func matmul(_ a: Args, _ tb: Bool, _ out: TensorDesc) throws -> HostTensor {
        let x = a["a"], w = a["b"]
        let m = x.desc.shape[0], k = x.desc.shape[1], n = out.shape[1]
        let xv = x.doubles, wv = w.doubles
        var y = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k { acc += xv[i * k + p] * (tb ? wv[j * k + p] : wv[p * n + j]) }
                y[i * n + j] = acc
            }
        }
        return try output(out.shape, out.dtype, y)
    }

    /// Checks group offsets: start 0, non-decreasing, end at `rows`.
    static func checkOffsets(_ kernel: OpKind, _ offsets: [Int], rows: Int) throws {
        guard offsets.first == 0, offsets.last == rows, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw PolychipError.invalidArgument(kernel: kernel.name, argument: "offsets",
                                                reason: "must start at 0, never decrease and end at \(rows) rows, got \(offsets.prefix(16))")
        }
    }

    static func groupedMatmul(_ a: Args, _ tb: Bool, _ out: TensorDesc) throws -> HostTensor {
        let x = a["x"], w = a["w"]
        let offsets = a["offsets"].ints
        let t = x.desc.shape[0], k = x.desc.shape[1], n = out.shape[1]
        try checkOffsets(.groupedMatmul, offsets, rows: t)
        let xv = x.doubles, wv = w.doubles
        var y = [Double](repeating: 0, count: t * n)
        for e in 0..<(offsets.count - 1) {
            let base = e * k * n
            for i in offsets[e]..<offsets[e + 1] {
                for j in 0..<n {
                    var acc = 0.0
                    for p in 0..<k { acc += xv[i * k + p] * (tb ? wv[base + j * k + p] : wv[base + p * n + j]) }
                    y[i * n + j] = acc
                }
            }
        }
        return try output(out.shape, out.dtype, y)
    }

    /// Dequantizes INT4 weight matrix `e` (of a stack, or the only one) to f64 `[N, K]`.
    static func dequantized(_ q: HostTensor, _ scales: HostTensor, _ zeros: HostTensor?, _ f: Int4Format, expert e: Int = 0) -> [Double] {
        let n = q.desc.shape[q.desc.rank - 2], k = q.desc.shape[q.desc.rank - 1]
        let groups = k / f.groupSize
        let s = scales.doubles
        let z = zeros?.ints
        var w = [Double](repeating: 0, count: n * k)
        for r in 0..<n {
            for c in 0..<k {
                let u = Double(Int4Packing.nibble(q.bytes, (e * n + r) * k + c))
                let g = (e * n + r) * groups + c / f.groupSize
                let zero = z.map { Double($0[g]) } ?? 8
                w[r * k + c] = s[g] * (u - zero)
            }
        }
        return w
    }

    static func int4Matmul(_ a: Args, _ f: Int4Format, _ out: TensorDesc) throws -> HostTensor {
        let x = a["x"]
        let m = x.desc.shape[0], k = x.desc.shape[1], n = out.shape[1]
        let w = dequantized(a["q"], a["scales"], a.has("zeros") ? a["zeros"] : nil, f)
        let xv = x.doubles
        var y = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k { acc += xv[i * k + p] * w[j * k + p] }
                y[i * n + j] = acc
            }
        }
        return try output(out.shape, out.dtype, y)
    }

    static func int4GroupedMatmul(_ a: Args, _ f: Int4Format, _ out: TensorDesc) throws -> HostTensor {
        let x = a["x"]
        let offsets = a["offsets"].ints
        let t = x.desc.shape[0], k = x.desc.shape[1], n = out.shape[1]
        try checkOffsets(.int4GroupedMatmul, offsets, rows: t)
        let xv = x.doubles
        var y = [Double](repeating: 0, count: t * n)
        for e in 0..<(offsets.count - 1) where offsets[e] < offsets[e + 1] {
            let w = dequantized(a["q"], a["scales"], a.has("zeros") ? a["zeros"] : nil, f, expert: e)
            for i in offsets[e]..<offsets[e + 1] {
                for j in 0..<n {
                    var acc = 0.0
                    for p in 0..<k { acc += xv[i * k + p] * w[j * k + p] }
                    y[i * n + j] = acc
                }
            }
        }
        return try output(out.shape, out.dtype, y)
    }
}
