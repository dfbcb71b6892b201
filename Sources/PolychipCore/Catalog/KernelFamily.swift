/// Everything the library knows about a family of kernels except their arithmetic: operand
/// names, parameters (and so the command line's flags), validation, cost, tolerance, the
/// time model's kernel class, case shapes and the benchmark's default call. One file per
/// family under `Catalog/` conforms to it; ``OpKind/descriptor`` finds a kernel's family, and
/// ``Op``'s names, ``Op/validate(_:)`` and ``Op/cost(_:)`` are read from it.
///
/// The reference and each backend still implement the arithmetic in exhaustive switches over
/// ``Op``, so the compiler rejects a backend that forgets a kernel; everything else about a
/// new kernel is written once, here (docs/adding-a-kernel.md).
protocol KernelFamily {
    /// The kernels of the family.
    static var kinds: [OpKind] { get }
    /// Input names of a call, in order (they depend on the parameters).
    static func inputNames(_ op: Op) -> [String]
    /// Output names of a call, in order.
    static func outputNames(_ op: Op) -> [String]
    /// Checks operands and parameters; returns the outputs' descriptors.
    static func validate(_ op: Op, _ c: Check) throws -> [TensorDesc]
    /// FLOPs and minimum bytes of a validated call.
    static func cost(_ op: Op, _ inputs: [TensorDesc]) -> Cost
    /// Conformance NMSE thresholds.
    static func tolerance(_ kind: OpKind) -> ToleranceTable
    /// The time model's class (efficiency key) of a kernel.
    static func timeClass(_ kind: OpKind) -> KernelClass
    /// The parameters a caller sets by name (command-line flags, bundle manifests).
    static func parameters(_ kind: OpKind) -> [KernelParameter]
    /// Builds the call from named parameter values and the names of the inputs given.
    static func op(_ kind: OpKind, _ args: KernelArguments) throws -> Op
    /// Dimension names of a case or benchmark shape, in label order.
    static func dimensions(_ kind: OpKind) -> [String]
    /// Input descriptors of `op` at named dimensions (absent dimensions are 1).
    static func inputShapes(_ op: Op, _ dims: [String: Int], _ dtype: DType) -> [TensorDesc]
    /// The fixed hand-picked conformance cases (edge shapes).
    static func quickCases(_ kind: OpKind) -> [CaseSpec]
    /// Small base shapes that the tiling's boundary sizes are applied to (conformance).
    static func baseCases(_ kind: OpKind) -> [CaseSpec]
    /// The main dimensions a device that reports no tiling is probed along (blocks 16 and 64).
    static func blockedDimensions(_ kind: OpKind) -> [String]
    /// The length of the sum behind each output element (1 for element-wise work): how the
    /// error budget of a model-level comparison scales the tolerance.
    static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int
    /// The benchmark's default dimensions of a kernel.
    static func benchmarkDims(_ kind: OpKind) -> [String: Int]
    /// The benchmark's call at dimensions `dims` (which may carry parameters such as `G`, `k`).
    static func benchmarkOp(_ kind: OpKind, _ dims: [String: Int]) throws -> Op
    /// Short words naming a call's parameters in case labels (`causal`, `k8`).
    static func labelWords(_ op: Op) -> [String]
}

extension KernelFamily {
    static func labelWords(_ op: Op) -> [String] { [] }
}

/// Conformance NMSE thresholds of a kernel, per activation dtype.
public struct ToleranceTable: Sendable, Hashable {
    /// Threshold for f32 (and any non-16-bit) activations.
    public var f32: Double
    /// Threshold for f16 activations.
    public var f16: Double
    /// Threshold for bf16 activations.
    public var bf16: Double

    /// One pass of elementwise rounding: norms, softmax, routing, quantization.
    public static let elementwise = ToleranceTable(f32: 1e-10, f16: 1e-6, bf16: 2e-5)
    /// Long dot products: GEMMs, attention, the indexer.
    public static let reduction = ToleranceTable(f32: 1e-9, f16: 5e-6, bf16: 1e-4)
    /// A composite of several rounded stages (the MoE layer).
    public static let composite = ToleranceTable(f32: 1e-8, f16: 5e-5, bf16: 1e-3)

    /// The threshold for `dtype`.
    public subscript(_ dtype: DType) -> Double {
        switch dtype {
        case .f16: return f16
        case .bf16: return bf16
        default: return f32
        }
    }
}

/// One named parameter of a kernel, as a caller sets it (`--eps 1e-5` on the command line).
public struct KernelParameter: Sendable, Hashable {
    /// How the value is written.
    public enum Value: Sendable, Hashable {
        /// A number, e.g. `1e-6`.
        case real
        /// An integer.
        case integer
        /// A switch: present or absent (`--causal`); `inverted` also accepts `--no-NAME`.
        case flag(inverted: Bool)
        /// One of fixed words (`neox`, `gptj`).
        case choice([String])
    }
    /// Kebab-case name (`routed-scale`): the flag is `--routed-scale`.
    public var name: String
    /// The value's form.
    public var value: Value
    /// The default in words (`1e-6`), nil when required or obvious.
    public var defaultValue: String?
    /// One line of help.
    public var help: String

    /// Creates a parameter.
    public init(_ name: String, _ value: Value, default defaultValue: String? = nil, _ help: String) {
        self.name = name; self.value = value; self.defaultValue = defaultValue; self.help = help
    }

    /// Whether the parameter is a switch (takes no value).
    public var isFlag: Bool { if case .flag = value { return true }; return false }
}

/// Named parameter values and the names of the inputs a caller gives, from which a family
/// builds a call. Values are text (as typed); reading one checks its form and range.
public struct KernelArguments: Sendable {
    /// Values by parameter name (`"eps": "1e-5"`); a flag's value is `"true"` or `"false"`.
    public var values: [String: String]
    /// Names of the inputs given (optional inputs select variants: `bias`, `zeros`, `gate.q`).
    public var inputs: Set<String>
    let kernel: String

    /// Creates arguments for `kind`.
    public init(_ kind: OpKind, values: [String: String] = [:], inputs: Set<String> = []) {
        self.values = values; self.inputs = inputs; self.kernel = kind.name
    }

    private func bad(_ name: String, _ reason: String) -> PolychipError {
        PolychipError.invalidArgument(kernel: kernel, argument: name, reason: reason)
    }

    /// A real number, or `fallback` when absent.
    public func real(_ name: String, _ fallback: Double) throws -> Double {
        guard let text = values[name] else { return fallback }
        guard let v = Double(text), v.isFinite else { throw bad(name, "must be a finite number, got \(Quoted(text))") }
        return v
    }

    /// An optional real number.
    public func real(_ name: String) throws -> Double? {
        guard values[name] != nil else { return nil }
        return try real(name, 0)
    }

    /// An integer in `range`, or `fallback` when absent.
    public func integer(_ name: String, _ fallback: Int, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let v = Int(text) else { throw bad(name, "must be an integer, got \(Quoted(text))") }
        guard range.contains(v) else { throw bad(name, "must be in \(range.lowerBound)…\(range.upperBound), got \(v)") }
        return v
    }

    /// An optional integer in `range`.
    public func integer(_ name: String, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard values[name] != nil else { return nil }
        return try integer(name, 0, in: range)
    }

    /// A switch, `fallback` when absent.
    public func flag(_ name: String, _ fallback: Bool = false) -> Bool {
        values[name].map { $0 == "true" } ?? fallback
    }

    /// One of `T`'s raw values, or `fallback` when absent.
    public func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ fallback: T) throws -> T where T.RawValue == String {
        guard let text = values[name] else { return fallback }
        guard let v = T(rawValue: text) else {
            throw bad(name, "must be \(T.allCases.map(\.rawValue).joined(separator: " or ")), got \(Quoted(text))")
        }
        return v
    }

    /// Whether input `name` was given.
    public func has(_ name: String) -> Bool { inputs.contains(name) }
}

/// The public face of a kernel's family entry: what a tool needs to call, check, price,
/// test and benchmark one kernel without a switch of its own.
public struct KernelDescriptor: Sendable {
    /// The kernel.
    public let kind: OpKind
    var family: any KernelFamily.Type { kind.familyType }

    /// Parameters a caller sets by name (the command line's flags).
    public var parameters: [KernelParameter] { family.parameters(kind) }
    /// Builds the call from named parameter values and the given input names.
    public func op(_ arguments: KernelArguments) throws -> Op { try family.op(kind, arguments) }
    /// Conformance NMSE thresholds.
    public var tolerance: ToleranceTable { family.tolerance(kind) }
    /// The time model's kernel class.
    public var timeClass: KernelClass { family.timeClass(kind) }
    /// Dimension names of a case or benchmark shape, in label order.
    public var dimensions: [String] { family.dimensions(kind) }
    /// Input descriptors of `op` (a call of this kernel) at named dimensions.
    public func inputShapes(_ op: Op, dims: [String: Int], dtype: DType) -> [TensorDesc] { family.inputShapes(op, dims, dtype) }
    /// The fixed hand-picked conformance cases.
    public var quickCases: [CaseSpec] { family.quickCases(kind) }
    /// Small base shapes the tiling's boundary sizes are applied to.
    public var baseCases: [CaseSpec] { family.baseCases(kind) }
    /// The main dimensions probed (blocks 16 and 64) on a device that reports no tiling.
    public var blockedDimensions: [String] { family.blockedDimensions(kind) }
    /// The length of the sum behind each output element of `op` (1 for element-wise work).
    public func reductionLength(_ op: Op, inputs: [TensorDesc]) -> Int { family.reductionLength(op, inputs) }
    /// The benchmark's default dimensions.
    public var benchmarkDims: [String: Int] { family.benchmarkDims(kind) }
    /// The benchmark's call at `dims`.
    public func benchmarkOp(dims: [String: Int]) throws -> Op { try family.benchmarkOp(kind, dims) }
    /// Words naming `op`'s parameters in labels.
    public func labelWords(_ op: Op) -> [String] { family.labelWords(op) }
}

extension OpKind {
    /// The family entry of this kernel: names, parameters, validation, cost, tolerance,
    /// kernel class, case shapes and benchmark call, in one place.
    public var descriptor: KernelDescriptor { KernelDescriptor(kind: self) }

    /// Conformance threshold on NMSE = Σ(a−b)²/Σa² for float outputs of this kernel in `dtype`
    /// (docs/kernels.md, "Conformance tolerances").
    public func tolerance(_ dtype: DType) -> Double { descriptor.tolerance[dtype] }
}

/// Row kernels' shape from dimensions: `[L, R, D]`, `[R, D]` or `[D]` (L and R absent or 0).
func rowShape(_ d: [String: Int]) -> [Int] { [d["L"] ?? 0, d["R"] ?? 0].filter { $0 > 0 } + [d["D"] ?? 1] }

/// A dimension's value, 1 when absent.
func dim(_ d: [String: Int], _ name: String) -> Int { d[name] ?? 1 }

/// Axis `axis` of input `i` (negative counts from the end), 1 when absent.
func axis(_ inputs: [TensorDesc], _ i: Int, _ axis: Int) -> Int {
    guard i < inputs.count else { return 1 }
    let s = inputs[i].shape
    return axis < 0 ? (s.count + axis >= 0 ? s[s.count + axis] : 1) : (axis < s.count ? s[axis] : 1)
}

/// A required benchmark dimension.
func required(_ d: [String: Int], _ name: String, _ kind: OpKind) throws -> Int {
    guard let v = d[name] else {
        throw PolychipError.invalidArgument(kernel: kind.name, argument: name, reason: "dimension \(name) is required")
    }
    return v
}
