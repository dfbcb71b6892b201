// ErrorBudget.swift — how much error an op of a model may add, from the catalog's tolerance rule.
//
// The catalog's conformance tolerance (docs/kernels.md, "Conformance tolerances") is an NMSE
// per kernel family and dtype that a correct implementation meets on the conformance shapes,
// whose reductions run up to `referenceReduction` long. The variance of f32 accumulation error
// grows linearly with the reduction length, so an op reducing over K > referenceReduction
// values gets `tolerance · K / referenceReduction`. A pipeline's budget at an op is the sum of
// the budgets of every op up to it: rounding errors of different ops are independent, so their
// NMSEs add when the model passes errors on with gain about one (norms, residual adds and
// random-like weights do). More than that means an op broke its own budget, or the model
// amplified a small difference into a large one (a discrete choice that flipped).

import PolychipCore

/// Error budgets of ops in a model.
public enum ErrorBudget {
    /// The longest reduction of the conformance cases the catalog's tolerances were set on.
    public static let referenceReduction = 4096

    /// The length of the sum behind each output element of `op` (1 for element-wise kernels).
    public static func reductionLength(_ op: Op, _ inputs: [TensorDesc]) -> Int {
        op.kind.descriptor.reductionLength(op, inputs: inputs)
    }

    /// The dtype the op's tolerance is read for: the activation dtype (f32 for top-k, whose
    /// scores are f32), as the conformance comparison does.
    public static func dtype(_ op: Op, _ inputs: [TensorDesc]) -> DType {
        op.kind == .topK ? .f32 : op.primaryDType(inputs)
    }

    /// The op's NMSE budget: its catalog tolerance, widened for reductions longer than
    /// ``referenceReduction``.
    public static func nmse(_ op: Op, _ inputs: [TensorDesc]) -> Double {
        let k = reductionLength(op, inputs)
        return op.kind.tolerance(dtype(op, inputs)) * max(1, Double(k) / Double(referenceReduction))
    }
}
