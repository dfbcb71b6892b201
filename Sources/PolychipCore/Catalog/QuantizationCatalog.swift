extension Op {
    func validateQuantization(_ c: Check) throws -> [TensorDesc] {
        switch self {
        case .quantizeInt4(let f):
            try c.float("x")
            let x = try c.rank("x", 2, "[N, K]")
            try c.param("groupSize", f.groupSize >= 2 && f.groupSize % 2 == 0, "group size must be even and ≥ 2, got \(f.groupSize)")
            guard x[1] % f.groupSize == 0 else {
                throw PolychipError.invalidArgument(kernel: c.kernel, argument: "x", reason: "K = \(x[1]) is not a multiple of the INT4 group size \(f.groupSize)")
            }
            var outs = [TensorDesc(x, .int4), TensorDesc([x[0], x[1] / f.groupSize], .f32)]
            if !f.symmetric { outs.append(TensorDesc([x[0], x[1] / f.groupSize], .i8)) }
            return outs
        case .dequantizeInt4(let f, let out):
            guard out.isFloat else {
                throw PolychipError.invalidArgument(kernel: c.kernel, argument: "output", reason: "must be f32, f16 or bf16, got \(out)")
            }
            let (n, k) = try c.int4(prefix: "", f, lead: [])
            return [TensorDesc([n, k], out)]
        default: return []
        }
    }

    func quantizationCost(_ i: [TensorDesc]) -> Cost {
        switch self {
        case .quantizeInt4:
            let n = Double(i[0].elementCount)
            return Cost(flops: 4 * n, bytes: Double(i[0].byteCount) + n / 2 + n / 8, unit: .vector, dtype: i[0].dtype)
        case .dequantizeInt4(_, let out):
            let n = Double(i[0].elementCount)
            return Cost(flops: 2 * n, bytes: totalBytes(i) + n * Double(out.bitWidth / 8), unit: .vector, dtype: out)
        default:
            return Cost(flops: 0, bytes: 0, unit: .vector, dtype: .f32)
        }
    }
}

// MARK: Zero points: one data rule for every INT4 kernel

extension Int4Format {
    /// The zero points the asymmetric format allows: the nibble range.
    public static let zeroPointRange = 0...15

    /// Checks that every zero point lies in 0…15. Every backend calls this for every `zeros`
    /// input (``Op/zeroPointInputs``) of every kernel before computing, so `dequantizeInt4`,
    /// `int4Matmul`, `int4GroupedMatmul` and INT4 `moeLayer` refuse the same tensor alike.
    /// - Throws: `PolychipError.invalidArgument` naming the kernel, the input and the first
    ///   bad value with its position.
    public static func checkZeroPoints<S: Sequence>(_ values: S, kernel: String, argument: String) throws
        where S.Element: BinaryInteger {
        for (i, v) in values.enumerated() where !zeroPointRange.contains(Int(v)) {
            throw PolychipError.invalidArgument(kernel: kernel, argument: argument,
                                                reason: "zero point \(v) (element \(i)) is outside 0…15")
        }
    }
}

extension Op {
    /// The inputs that hold INT4 zero points (`zeros`, `gate.zeros`, `up.zeros`, `down.zeros`),
    /// by position and name: what ``Int4Format/checkZeroPoints(_:kernel:argument:)`` checks.
    public var zeroPointInputs: [(index: Int, name: String)] {
        inputNames.enumerated().filter { $0.element == "zeros" || $0.element.hasSuffix(".zeros") }.map { ($0.offset, $0.element) }
    }
}
