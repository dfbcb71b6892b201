/// Small helpers that turn a bad operand into a typed error naming it.
struct Check {
    let kernel: String
    let names: [String]
    let inputs: [TensorDesc]

    init(_ op: Op, _ inputs: [TensorDesc]) throws {
        kernel = op.kind.name
        names = op.inputNames
        self.inputs = inputs
        guard inputs.count == names.count else {
            throw PolychipError.arityMismatch(kernel: kernel, what: "inputs (\(names.joined(separator: ", ")))",
                                              expected: names.count, got: inputs.count)
        }
        for (i, d) in inputs.enumerated() {
            guard d.checkedElementCount != nil, (try? d.checkedByteCount()) != nil else {
                throw PolychipError.sizeOverflow(shape: d.shape, dtype: d.dtype)
            }
            _ = i
        }
    }

    subscript(_ name: String) -> TensorDesc { inputs[names.firstIndex(of: name)!] }

    func shape(_ name: String) -> [Int] { self[name].shape }

    /// Requires `rank` dimensions, each ≥ 1.
    @discardableResult
    func rank(_ name: String, _ rank: Int, _ what: String) throws -> [Int] {
        let s = shape(name)
        guard s.count == rank, s.allSatisfy({ $0 >= 1 }) else {
            throw PolychipError.shapeMismatch(kernel: kernel, argument: name, expected: "\(what) (rank \(rank), every dimension ≥ 1)", got: shapeString(s))
        }
        return s
    }

    /// Requires rank ≥ 1 with every dimension ≥ 1.
    @discardableResult
    func nonEmpty(_ name: String) throws -> [Int] {
        let s = shape(name)
        guard !s.isEmpty, s.allSatisfy({ $0 >= 1 }) else {
            throw PolychipError.shapeMismatch(kernel: kernel, argument: name, expected: "rank ≥ 1, every dimension ≥ 1", got: shapeString(s))
        }
        return s
    }

    func equal(_ name: String, _ expected: [Int]) throws {
        guard shape(name) == expected else {
            throw PolychipError.shapeMismatch(kernel: kernel, argument: name, expected: shapeString(expected), got: shapeString(shape(name)))
        }
    }

    func dim(_ name: String, _ axis: String, _ value: Int, equals expected: Int, _ meaning: String) throws {
        guard value == expected else {
            throw PolychipError.shapeMismatch(kernel: kernel, argument: name, expected: "\(axis) = \(expected) (\(meaning))", got: shapeString(shape(name)))
        }
    }

    func float(_ name: String) throws {
        guard self[name].dtype.isFloat else {
            throw PolychipError.dtypeMismatch(kernel: kernel, argument: name, expected: "a float type (f32, f16, bf16)", got: self[name].dtype)
        }
    }

    func dtype(_ name: String, _ t: DType) throws {
        guard self[name].dtype == t else {
            throw PolychipError.dtypeMismatch(kernel: kernel, argument: name, expected: t.rawValue, got: self[name].dtype)
        }
    }

    /// Requires `name` to share `reference`'s (float) dtype.
    func sameDType(_ name: String, as reference: String) throws {
        guard self[name].dtype == self[reference].dtype else {
            throw PolychipError.dtypeMismatch(kernel: kernel, argument: name, expected: "\(self[reference].dtype) (same as '\(reference)')", got: self[name].dtype)
        }
    }

    func param(_ name: String, _ ok: Bool, _ reason: String) throws {
        if !ok { throw PolychipError.invalidArgument(kernel: kernel, argument: name, reason: reason) }
    }

    /// Validates an INT4 weight triple `[lead..., N, K]` and returns `(N, K)`.
    func int4(prefix: String, _ f: Int4Format, lead: [Int]) throws -> (n: Int, k: Int) {
        let q = prefix + "q", s = prefix + "scales", z = prefix + "zeros"
        try param("groupSize", f.groupSize >= 2 && f.groupSize % 2 == 0, "group size must be even and ≥ 2, got \(f.groupSize)")
        try dtype(q, .int4)
        let qs = try rank(q, lead.count + 2, "[\(lead.isEmpty ? "" : "E, ")N, K]")
        if !lead.isEmpty { try dim(q, "E", qs[0], equals: lead[0], "experts") }
        let n = qs[qs.count - 2], k = qs[qs.count - 1]
        guard k % f.groupSize == 0 else {
            throw PolychipError.invalidArgument(kernel: kernel, argument: q, reason: "K = \(k) is not a multiple of the INT4 group size \(f.groupSize)")
        }
        try dtype(s, .f32)
        try equal(s, lead + [n, k / f.groupSize])
        if !f.symmetric {
            try dtype(z, .i8)
            try equal(z, lead + [n, k / f.groupSize])
        }
        return (n, k)
    }

    /// Validates a group offsets vector `i32 [E+1]` and returns E.
    func offsets(_ name: String) throws -> Int {
        try dtype(name, .i32)
        let s = shape(name)
        guard s.count == 1, s[0] >= 2 else {
            throw PolychipError.shapeMismatch(kernel: kernel, argument: name, expected: "[E + 1] with E ≥ 1", got: shapeString(s))
        }
        return s[0] - 1
    }
}

extension Op {
    /// Validates the inputs' descriptors and parameters; returns the outputs' descriptors.
    /// Data-dependent rules (offsets, indices) are checked by the backends at execution time.
    public func validate(_ inputs: [TensorDesc]) throws -> [TensorDesc] {
        let c = try Check(self, inputs)
        let outputs = try validateOperands(c)
        // Outputs must be allocatable too (a huge top-k `k` or token count must not overflow).
        for o in outputs where (try? o.checkedByteCount()) == nil {
            throw PolychipError.sizeOverflow(shape: o.shape, dtype: o.dtype)
        }
        return outputs
    }

    private func validateOperands(_ c: Check) throws -> [TensorDesc] { try kind.familyType.validate(self, c) }

    /// FLOPs and minimum bytes for inputs that passed ``validate(_:)``.
    /// Routing-dependent kernels assume balanced routing.
    public func cost(_ inputs: [TensorDesc]) -> Cost { kind.familyType.cost(self, inputs) }
}

/// The product of dimensions in floating point: cost formulas multiply dimensions of
/// different tensors, which may not fit in `Int` even when each tensor does.
@inlinable
func dprod(_ xs: Int...) -> Double { xs.reduce(1.0) { $0 * Double($1) } }

/// Total bytes of a list of descriptors, as a Double (costs never trap on overflow).
func totalBytes(_ descs: [TensorDesc]) -> Double { descs.reduce(0) { $0 + Double($1.byteCount) } }
