/// Group-wise INT4 conversion: `quantize-int4` (float `[N, K]` to codes, scales and, in the
/// asymmetric format, zero points) and `dequantize-int4` (back to a float dtype).
enum QuantizationKernels: KernelFamily {
    static let kinds: [OpKind] = [.quantizeInt4, .dequantizeInt4]

    static func inputNames(_ op: Op) -> [String] {
        if case .dequantizeInt4(let f, _) = op { return Op.int4Names(prefix: "", f) }
        return ["x"]
    }

    static func outputNames(_ op: Op) -> [String] {
        if case .quantizeInt4(let f) = op { return Op.int4Names(prefix: "", f) }
        return ["x"]
    }

    static func validate(_ op: Op, _ c: Check) throws -> [TensorDesc] {
        switch op {
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

    static func cost(_ op: Op, _ i: [TensorDesc]) -> Cost {
        switch op {
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

    static func tolerance(_ kind: OpKind) -> ToleranceTable { .elementwise }

    static func timeClass(_ kind: OpKind) -> KernelClass { .quantization }

    static func parameters(_ kind: OpKind) -> [KernelParameter] {
        let group = KernelParameter("group-size", .integer, default: "32", "INT4 group size")
        if kind == .quantizeInt4 { return [group, KernelParameter("asymmetric", .flag(inverted: false), "asymmetric format (zero points)")] }
        return [group, KernelParameter("output-dtype", .choice(DType.floats.map(\.rawValue)), default: "f32", "output dtype")]
    }

    static func op(_ kind: OpKind, _ a: KernelArguments) throws -> Op {
        let g = try a.integer("group-size", 32)
        if kind == .quantizeInt4 { return .quantizeInt4(Int4Format(groupSize: g, symmetric: !a.flag("asymmetric"))) }
        let out = try a.choice("output-dtype", DType.f32)
        guard out.isFloat else {
            throw PolychipError.invalidArgument(kernel: kind.name, argument: "output-dtype", reason: "must be f32, f16 or bf16, got \(out)")
        }
        return .dequantizeInt4(Int4Format(groupSize: g, symmetric: !a.has("zeros")), output: out)
    }

    static func dimensions(_ kind: OpKind) -> [String] { ["N", "K"] }

    static func inputShapes(_ op: Op, _ d: [String: Int], _ dtype: DType) -> [TensorDesc] {
        if case .dequantizeInt4(let f, _) = op { return Op.int4Shapes([], dim(d, "N"), dim(d, "K"), f) }
        return [TensorDesc([dim(d, "N"), dim(d, "K")], dtype)]
    }

    static func quickCases(_ kind: OpKind) -> [CaseSpec] {
        if kind == .quantizeInt4 {
            return [(1, 2, 2, true), (5, 64, 32, true), (7, 96, 32, false), (3, 256, 128, false), (4, 48, 16, true)].map {
                CaseSpec(.quantizeInt4(Int4Format(groupSize: $0.2, symmetric: $0.3)), ["N": $0.0, "K": $0.1])
            } + [CaseSpec(.quantizeInt4(Int4Format(groupSize: 32, symmetric: false)), ["N": 3, "K": 64], note: "one-sided groups")]
        }
        return [(1, 2, 2, true), (5, 64, 32, false), (9, 384, 128, true)].map {
            // The output dtype is the case's dtype; the case builder sets it.
            CaseSpec(.dequantizeInt4(Int4Format(groupSize: $0.2, symmetric: $0.3), output: .f32), ["N": $0.0, "K": $0.1])
        }
    }

    static func baseCases(_ kind: OpKind) -> [CaseSpec] {
        if kind == .quantizeInt4 {
            return [CaseSpec(.quantizeInt4(Int4Format(groupSize: 32, symmetric: false)), ["N": 3, "K": 64]),
                    CaseSpec(.quantizeInt4(Int4Format(groupSize: 32, symmetric: true)), ["N": 3, "K": 64])]
        }
        return [CaseSpec(.dequantizeInt4(Int4Format(groupSize: 32, symmetric: false), output: .f32), ["N": 3, "K": 64])]
    }

    static func blockedDimensions(_ kind: OpKind) -> [String] { ["N", "K"] }

    static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int { 1 }

    static func benchmarkDims(_ kind: OpKind) -> [String: Int] { ["N": 4096, "K": 4096, "G": 32] }

    static func benchmarkOp(_ kind: OpKind, _ d: [String: Int]) throws -> Op {
        let f = Int4Format(groupSize: try required(d, "G", kind))
        return kind == .quantizeInt4 ? .quantizeInt4(f) : .dequantizeInt4(f, output: .f32)
    }

    static func labelWords(_ op: Op) -> [String] {
        switch op {
        case .quantizeInt4(let f), .dequantizeInt4(let f, _): return ["\(f)"]
        default: return []
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
