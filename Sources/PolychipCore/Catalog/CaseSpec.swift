/// What kind of values a case's inputs hold beyond "seeded random, never zero".
public enum InputPattern: String, Sendable, Hashable, Codable {
    /// Seeded random values (the default).
    case random
    /// Attention: logits rise with the key index, so every later key block holds a new row
    /// maximum (an online softmax that skips the rescale is wrong by a large factor).
    case risingLogits
    /// Attention: logits fall with the key index (the row maximum stays in the first block).
    case fallingLogits
    /// Top-k and router: values repeat exactly, with ties placed at the k (and group) boundary.
    case ties
    /// Top-k: every value of a row is equal (the tie rule alone decides).
    case allEqual
    /// NaN, `+inf` and `−inf` written into one float input (``NonFiniteCases``): the seeded
    /// inputs of the same spec with pattern `random`, poisoned, so no new shapes are compiled.
    case nonFinite
    /// Router: hand-made logit rows (a `+inf` logit, two, an all-`−inf` row, `−inf` entries);
    /// `T` is 4 and `E` is 8.
    case nonFiniteLogits
    /// `add` and `scale`: results exact in f32 that lie halfway between two neighbours of the
    /// dtype (and a quarter ulp either side), so only round-to-nearest-even gives the
    /// reference's bits; the case is compared bit for bit (truncating or ties-away
    /// conversions pass any NMSE threshold, not this).
    case roundingTies
    /// Top-k: rows of +0 and −0 (with a few values either side) across the k cut: the two
    /// zeros are equal, so the lower index must win whatever the sign (an order on raw
    /// bits puts −0 below +0).
    case signedZeros
    /// RMSNorm and add + RMSNorm: rows whose mean square is comparable to eps, so where eps enters the formula
    /// (under the square root, not after it) changes the result.
    case smallRows
}

/// One conformance case before its inputs exist: the call (with all its parameters), its
/// dimensions by name and the input pattern. Kernel families list their fixed cases as specs
/// (``KernelDescriptor/quickCases``); the conformance library's `CaseBuilder` turns a spec
/// into inputs, and its tiling-derived and adversarial cases are specs with other dims.
public struct CaseSpec: Sendable, Hashable, Codable {
    /// The kernel and its parameters (shapes come from `dims`).
    public var op: Op
    /// Dimensions by name (`M`, `K`, `Lq`, …), as ``KernelDescriptor/dimensions`` lists them.
    public var dims: [String: Int]
    /// Input values beyond plain random.
    public var pattern: InputPattern
    /// Why the case exists (`gemm.kc (parallel): b+1`), shown in its label.
    public var note: String?
    /// Upload every input at an odd element offset inside a larger buffer.
    public var offsetViews: Bool

    /// Creates a spec.
    public init(_ op: Op, _ dims: [String: Int], pattern: InputPattern = .random, note: String? = nil, offsetViews: Bool = false) {
        self.op = op; self.dims = dims; self.pattern = pattern; self.note = note; self.offsetViews = offsetViews
    }

    /// The kernel.
    public var kind: OpKind { op.kind }

    /// Float outputs are compared bit for bit with the reference (the rounding-tie cases),
    /// not only by NMSE.
    public var comparesExactly: Bool { pattern == .roundingTies }
}
