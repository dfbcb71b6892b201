/// A collective operation on a ``Mesh`` (one tensor per device).
public enum Collective: Sendable, Hashable, CustomStringConvertible {
    /// Element-wise sum; every device gets the whole result.
    case allReduce
    /// Concatenate every device's tensor along dimension 0, in device order.
    case allGather
    /// Sum, then device `r` keeps block `r` of dimension 0.
    case reduceScatter
    /// Variable-count exchange: `counts[i][j]` rows go from device `i` to device `j`;
    /// device `j` receives the segments of every source in source order.
    case allToAll(counts: [[Int]])

    public var description: String {
        switch self {
        case .allReduce: return "all-reduce"
        case .allGather: return "all-gather"
        case .reduceScatter: return "reduce-scatter"
        case .allToAll: return "all-to-all"
        }
    }

    /// Validates the per-device input descriptors; returns the per-device output descriptors.
    public func validate(_ inputs: [TensorDesc]) throws -> [TensorDesc] {
        let p = inputs.count
        let name = description
        guard p >= 1 else { throw PolychipError.collectiveMismatch(collective: name, reason: "no devices") }
        let first = inputs[0]
        guard !first.shape.isEmpty, first.shape.allSatisfy({ $0 >= 0 }), first.checkedElementCount != nil else {
            throw PolychipError.collectiveMismatch(collective: name, reason: "tensors need rank ≥ 1 and a valid shape, got \(first)")
        }
        switch self {
        case .allReduce, .allGather, .reduceScatter:
            guard first.dtype.isFloat || self == .allGather else {
                throw PolychipError.collectiveMismatch(collective: name, reason: "sum needs a float dtype, got \(first.dtype)")
            }
            for (i, d) in inputs.enumerated() where d != first {
                throw PolychipError.collectiveMismatch(collective: name, reason: "device \(i) has \(d), device 0 has \(first); all must match")
            }
            switch self {
            case .allReduce: return Array(repeating: first, count: p)
            case .allGather:
                var s = first.shape; s[0] *= p
                return Array(repeating: TensorDesc(s, first.dtype), count: p)
            default:
                guard first.shape[0] % p == 0 else {
                    throw PolychipError.collectiveMismatch(collective: name, reason: "dimension 0 (\(first.shape[0])) must be a multiple of the \(p) devices")
                }
                var s = first.shape; s[0] /= p
                return Array(repeating: TensorDesc(s, first.dtype), count: p)
            }
        case .allToAll(let counts):
            guard counts.count == p, counts.allSatisfy({ $0.count == p }), counts.joined().allSatisfy({ $0 >= 0 }) else {
                throw PolychipError.collectiveMismatch(collective: name, reason: "counts must be a \(p)×\(p) matrix of non-negative row counts")
            }
            var outs: [TensorDesc] = []
            for (i, d) in inputs.enumerated() {
                guard d.dtype == first.dtype, Array(d.shape.dropFirst()) == Array(first.shape.dropFirst()) else {
                    throw PolychipError.collectiveMismatch(collective: name, reason: "device \(i) has \(d); row shape and dtype must match device 0 (\(first))")
                }
                guard d.shape[0] == counts[i].reduce(0, +) else {
                    throw PolychipError.collectiveMismatch(collective: name, reason: "device \(i) sends \(counts[i].reduce(0, +)) rows but holds \(d.shape[0])")
                }
            }
            for j in 0..<p {
                var s = first.shape; s[0] = (0..<p).reduce(0) { $0 + counts[$1][j] }
                outs.append(TensorDesc(s, first.dtype))
            }
            return outs
        }
    }

    /// The collective's result computed on host values: the executable semantics every
    /// communicator must match. Sums run in f64 in device order, rounded once to the dtype.
    public func evaluate(_ inputs: [HostTensor]) throws -> [HostTensor] {
        let outDescs = try validate(inputs.map(\.desc))
        let p = inputs.count
        switch self {
        case .allReduce:
            let sum = Collective.sum(inputs.map(\.doubles))
            return try outDescs.map { try HostTensor($0.shape, $0.dtype, floats: sum.map(Float.init)) }
        case .allGather:
            let bytes = inputs.flatMap(\.bytes)
            return try outDescs.map { try HostTensor($0, bytes: bytes) }
        case .reduceScatter:
            let sum = Collective.sum(inputs.map(\.doubles))
            let block = sum.count / p
            return try (0..<p).map { r in
                try HostTensor(outDescs[r].shape, outDescs[r].dtype, floats: sum[(r * block)..<((r + 1) * block)].map(Float.init))
            }
        case .allToAll(let counts):
            let rowBytes = inputs[0].desc.shape.dropFirst().reduce(1, *) * inputs[0].desc.dtype.bitWidth / 8
            var starts = counts.map { row in row.reduce(into: [0]) { $0.append($0.last! + $1) } }
            var outs = [[UInt8]](repeating: [], count: p)
            for j in 0..<p {
                for i in 0..<p {
                    let a = starts[i][j] * rowBytes, b = a + counts[i][j] * rowBytes
                    outs[j] += inputs[i].bytes[a..<b]
                }
            }
            starts.removeAll()
            return try (0..<p).map { try HostTensor(outDescs[$0], bytes: outs[$0]) }
        }
    }

    static func sum(_ parts: [[Double]]) -> [Double] {
        var acc = [Double](repeating: 0, count: parts.first?.count ?? 0)
        for part in parts { for (i, v) in part.enumerated() { acc[i] += v } }
        return acc
    }

    /// Bytes each device sends, for records and the time model.
    public func bytesSent(_ inputs: [TensorDesc]) -> [Double] {
        let p = Double(inputs.count)
        switch self {
        case .allReduce: return inputs.map { 2 * (p - 1) / p * Double($0.byteCount) }
        case .allGather: return inputs.map { (p - 1) * Double($0.byteCount) }
        case .reduceScatter: return inputs.map { (p - 1) / p * Double($0.byteCount) }
        case .allToAll(let counts):
            return inputs.enumerated().map { i, d in
                let rowBytes = Double(d.shape.dropFirst().reduce(1, *) * d.dtype.bitWidth / 8)
                return Double(counts[i].enumerated().filter { $0.offset != i }.reduce(0) { $0 + $1.element }) * rowBytes
            }
        }
    }
}
