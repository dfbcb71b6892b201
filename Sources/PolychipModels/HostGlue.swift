// HostGlue.swift — the layer description's data movement (split, concatenate, transpose,
// reshape, repeat, widen, positions, offsets) on host values. No arithmetic: every result is a
// copy of input elements, so the reference and every device see exactly the same glue.

import PolychipCore

extension GlueStep {
    /// The value names this glue reads.
    public var inputs: [String] {
        switch self {
        case .split(let i, _, _, _), .reshape(let i, _, _), .transpose01(let i, _), .repeatAxis(let i, _, _, _), .widen(let i, _): return [i]
        case .concat(let i, _, _): return i
        case .positions, .offsets: return []
        }
    }

    /// The value names this glue writes.
    public var outputs: [String] {
        switch self {
        case .split(_, _, _, let o): return o
        case .concat(_, _, let o), .reshape(_, _, let o), .transpose01(_, let o), .repeatAxis(_, _, _, let o), .widen(_, let o),
             .positions(_, let o), .offsets(_, _, let o):
            return [o]
        }
    }

    /// Runs the glue on `values` (in ``inputs`` order); throws `invalidTensor` on a shape that
    /// does not fit (a description error, never data-dependent).
    public func apply(_ values: [HostTensor]) throws -> [HostTensor] {
        func bad(_ why: String) -> PolychipError { .invalidTensor(reason: "glue \(self): \(why)") }
        switch self {
        case .split(_, let axis, let sizes, _):
            let x = values[0]
            guard axis < x.desc.rank, sizes.reduce(0, +) == x.desc.shape[axis] else { throw bad("sizes \(sizes) do not cover axis \(axis) of \(x.desc)") }
            let (outer, inner, esz) = HostLayout.split(x.desc, axis: axis)
            var start = 0
            return try sizes.map { n in
                var shape = x.desc.shape
                shape[axis] = n
                var out = [UInt8]()
                out.reserveCapacity(outer * n * inner * esz)
                let row = x.desc.shape[axis] * inner * esz
                for o in 0..<outer {
                    let from = o * row + start * inner * esz
                    out.append(contentsOf: x.bytes[from..<(from + n * inner * esz)])
                }
                start += n
                return try HostTensor(TensorDesc(shape, x.desc.dtype), bytes: out)
            }
        case .concat(_, let axis, _):
            guard let first = values.first, axis < first.desc.rank else { throw bad("nothing to concatenate") }
            for v in values where v.desc.rank != first.desc.rank || v.desc.dtype != first.desc.dtype
                || (0..<first.desc.rank).contains(where: { $0 != axis && v.desc.shape[$0] != first.desc.shape[$0] }) {
                throw bad("\(v.desc) does not match \(first.desc) off axis \(axis)")
            }
            let (outer, inner, esz) = HostLayout.split(first.desc, axis: axis)
            var shape = first.desc.shape
            shape[axis] = values.reduce(0) { $0 + $1.desc.shape[axis] }
            var out = [UInt8]()
            out.reserveCapacity(outer * shape[axis] * inner * esz)
            for o in 0..<outer {
                for v in values {
                    let row = v.desc.shape[axis] * inner * esz
                    out.append(contentsOf: v.bytes[(o * row)..<((o + 1) * row)])
                }
            }
            return [try HostTensor(TensorDesc(shape, first.desc.dtype), bytes: out)]
        case .reshape(_, let shape, _):
            let x = values[0]
            guard TensorDesc(shape, x.desc.dtype).checkedElementCount == x.desc.elementCount else { throw bad("\(x.desc) has another element count") }
            return [try HostTensor(TensorDesc(shape, x.desc.dtype), bytes: x.bytes)]
        case .transpose01:
            let x = values[0]
            guard x.desc.rank >= 2 else { throw bad("\(x.desc) has fewer than two axes") }
            let (a, b) = (x.desc.shape[0], x.desc.shape[1])
            let inner = x.desc.shape.dropFirst(2).reduce(1, *) * HostLayout.elementBytes(x.desc.dtype)
            var out = [UInt8](repeating: 0, count: x.bytes.count)
            for i in 0..<a {
                for j in 0..<b {
                    let src = (i * b + j) * inner, dst = (j * a + i) * inner
                    out.replaceSubrange(dst..<(dst + inner), with: x.bytes[src..<(src + inner)])
                }
            }
            var shape = x.desc.shape
            shape.swapAt(0, 1)
            return [try HostTensor(TensorDesc(shape, x.desc.dtype), bytes: out)]
        case .repeatAxis(_, let axis, let times, _):
            let x = values[0]
            guard axis < x.desc.rank, times >= 1 else { throw bad("axis \(axis) × \(times) of \(x.desc)") }
            let (outer, inner, esz) = HostLayout.split(x.desc, axis: axis)
            let n = x.desc.shape[axis]
            var out = [UInt8]()
            out.reserveCapacity(x.bytes.count * times)
            for o in 0..<outer {
                for i in 0..<n {
                    let from = (o * n + i) * inner * esz
                    for _ in 0..<times { out.append(contentsOf: x.bytes[from..<(from + inner * esz)]) }
                }
            }
            var shape = x.desc.shape
            shape[axis] = n * times
            return [try HostTensor(TensorDesc(shape, x.desc.dtype), bytes: out)]
        case .widen:
            let x = values[0]
            guard x.desc.dtype.isFloat else { throw bad("\(x.desc) is not a float") }
            return [x.desc.dtype == .f32 ? x : try HostTensor(x.desc.shape, .f32, floats: x.floats)]
        case .positions(let count, _):
            return [try HostTensor([count], int32s: (0..<count).map { Int32($0) })]
        case .offsets(let groups, let rows, _):
            return [try HostTensor([groups + 1], int32s: (0...groups).map { Int32($0 * rows) })]
        }
    }
}

/// Element geometry of host values.
enum HostLayout {
    /// Bytes per element of a (non-INT4) dtype.
    static func elementBytes(_ d: DType) -> Int { max(1, d.bitWidth / 8) }

    /// `(outer, inner, elementBytes)` around `axis`: products of the dimensions before and after it.
    static func split(_ d: TensorDesc, axis: Int) -> (Int, Int, Int) {
        (d.shape[..<axis].reduce(1, *), d.shape[(axis + 1)...].reduce(1, *), elementBytes(d.dtype))
    }
}
