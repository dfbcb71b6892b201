/// A kernel call whose operands passed the catalog's validation, with its outputs'
/// descriptors and its cost: what ``Queue`` hands a ``Device``. Only ``Op/validated(_:)``
/// makes one, so a backend that receives one does not check shapes, dtypes or parameters
/// again (data-dependent rules, such as offsets and indices, are still the backend's to check
/// on the data).
public struct ValidatedCall: Sendable, Hashable {
    /// The kernel and its parameters.
    public let op: Op
    /// The inputs' descriptors, in ``Op/inputNames`` order.
    public let inputs: [TensorDesc]
    /// The outputs' descriptors, in ``Op/outputNames`` order.
    public let outputs: [TensorDesc]
    /// FLOPs and minimum bytes.
    public let cost: Cost

    fileprivate init(op: Op, inputs: [TensorDesc], outputs: [TensorDesc]) {
        self.op = op; self.inputs = inputs; self.outputs = outputs; self.cost = op.cost(inputs)
    }

    /// The kernel.
    public var kind: OpKind { op.kind }
    /// The activation dtype (what ``Device/supports(_:dtype:)`` is asked about).
    public var primaryDType: DType { op.primaryDType(inputs) }

    /// Checks that tensors match the call's descriptors (same count, same descriptors).
    /// - Throws: `PolychipError.arityMismatch` or `.shapeMismatch` naming the operand.
    public func check(inputs given: [TensorDesc], outputs out: [TensorDesc]) throws {
        let name = op.kind.name
        for (what, names, expected, actual) in [("inputs", op.inputNames, inputs, given), ("outputs", op.outputNames, outputs, out)] {
            guard actual.count == expected.count else {
                throw PolychipError.arityMismatch(kernel: name, what: "\(what) (\(names.joined(separator: ", ")))",
                                                  expected: expected.count, got: actual.count)
            }
            for (i, (a, e)) in zip(actual, expected).enumerated() where a != e {
                throw PolychipError.shapeMismatch(kernel: name, argument: names[i], expected: e.description, got: a.description)
            }
        }
    }
}

extension Op {
    /// Validates this call once (``validate(_:)``) and returns it with its output descriptors
    /// and cost: the form ``Queue`` passes to a device.
    public func validated(_ inputs: [TensorDesc]) throws -> ValidatedCall {
        ValidatedCall(op: self, inputs: inputs, outputs: try validate(inputs))
    }
}
