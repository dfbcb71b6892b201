import Testing
@testable import PolychipCore

/// Every kernel's descriptor is complete and consistent: what a new kernel must supply.
@Suite struct KernelDescriptorTests {
    @Test(arguments: OpKind.allCases)
    func quickCasesValidateWithTheirShapes(_ kind: OpKind) throws {
        let d = kind.descriptor
        #expect(!d.quickCases.isEmpty, "\(kind) has no quick cases")
        #expect(kind.familyType.kinds.contains(kind), "\(kind) is not listed by its family")
        for spec in d.quickCases {
            #expect(spec.kind == kind)
            for name in spec.dims.keys { #expect(d.dimensions.contains(name), "\(kind): case dimension \(name) is not a dimension") }
            let ins = d.inputShapes(spec.op, dims: spec.dims, dtype: .f32)
            #expect(ins.count == spec.op.inputNames.count)
            let outs = try spec.op.validate(ins)
            #expect(outs.count == spec.op.outputNames.count)
            let cost = spec.op.cost(ins)
            #expect(cost.flops > 0 && cost.bytes > 0, "\(kind): cost of \(spec.dims)")
        }
    }

    @Test(arguments: OpKind.allCases)
    func benchmarkCallValidates(_ kind: OpKind) throws {
        let d = kind.descriptor
        let op = try d.benchmarkOp(dims: d.benchmarkDims)
        #expect(op.kind == kind)
        _ = try op.validate(d.inputShapes(op, dims: d.benchmarkDims, dtype: .f32))
    }

    @Test(arguments: OpKind.allCases)
    func parametersBuildTheCall(_ kind: OpKind) throws {
        let d = kind.descriptor
        var values: [String: String] = [:]
        if kind == .moePermute { values["num-experts"] = "4" }
        let op = try d.op(KernelArguments(kind, values: values))
        #expect(op.kind == kind)
        let names = Set(d.parameters.map(\.name))
        #expect(names.count == d.parameters.count, "\(kind): duplicate parameter names")
        // Every tolerance is a real bound, tighter for f32 than for 16-bit types.
        #expect(d.tolerance.f32 > 0 && d.tolerance.f32 <= d.tolerance.f16 && d.tolerance.f16 <= d.tolerance.bf16)
    }

    @Test func badParameterValuesAreTypedErrors() {
        #expect(throws: PolychipError.self) { try OpKind.rmsNorm.descriptor.op(KernelArguments(.rmsNorm, values: ["eps": "x"])) }
        #expect(throws: PolychipError.self) { try OpKind.rope.descriptor.op(KernelArguments(.rope, values: ["style": "spiral"])) }
        #expect(throws: PolychipError.self) { try OpKind.moePermute.descriptor.op(KernelArguments(.moePermute)) }
        #expect(throws: PolychipError.self) { try OpKind.topK.descriptor.op(KernelArguments(.topK, values: ["k": "1e99"])) }
    }

    @Test func addRmsNormNamesAndCost() throws {
        let op = Op.addRmsNorm(eps: 1e-6)
        #expect(op.inputNames == ["x", "residual", "weight"] && op.outputNames == ["y", "residualOut"])
        let ins = [TensorDesc([4, 8], .f16), TensorDesc([4, 8], .f16), TensorDesc([8], .f16)]
        #expect(try op.validate(ins) == [TensorDesc([4, 8], .f16), TensorDesc([4, 8], .f16)])
        #expect(op.cost(ins).bytes == Double(2 * 64 + 16 + 2 * 64))
        #expect(throws: PolychipError.self) { try op.validate([ins[0], TensorDesc([4, 7], .f16), ins[2]]) }
        #expect(throws: PolychipError.self) { try op.validate([ins[0], TensorDesc([4, 8], .f32), ins[2]]) }
        #expect(KernelClass(.addRmsNorm) == .normalization)
    }
}
