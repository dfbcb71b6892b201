import Testing
@testable import PolychipCore

/// Every kernel rejects malformed input with a typed error naming the operand.
@Suite struct ValidationTests {
    static let g32 = Int4Format(groupSize: 32, symmetric: true)
    static let a32 = Int4Format(groupSize: 32, symmetric: false)
    static let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, hasBias: true)

    /// A valid call per kernel (op, input descriptors).
    static let valid: [(Op, [TensorDesc])] = [
        (.matmul(transposeB: false), [.init([4, 8], .f32), .init([8, 3], .f32)]),
        (.groupedMatmul(transposeB: true), [.init([5, 8], .f32), .init([2, 3, 8], .f32), .init([3], .i32)]),
        (.rmsNorm(eps: 1e-6), [.init([2, 8], .f16), .init([8], .f16)]),
        (.addRmsNorm(eps: 1e-6), [.init([2, 8], .bf16), .init([2, 8], .bf16), .init([8], .bf16)]),
        (.softmax, [.init([2, 8], .f32)]),
        (.silu, [.init([8], .bf16)]),
        (.swiglu, [.init([2, 8], .f32), .init([2, 8], .f32)]),
        (.rope(RopeParams()), [.init([3, 2, 8], .f32), .init([3], .i32)]),
        (.add, [.init([2, 8], .f32), .init([2, 8], .f32)]),
        (.scale(alpha: 2), [.init([2, 8], .f32)]),
        (.attention(AttentionParams(causal: true, returnLSE: true)), [.init([1, 4, 3, 8], .f32), .init([1, 2, 5, 8], .f32), .init([1, 2, 5, 6], .f32)]),
        (.lightningIndexer, [.init([3, 2, 8], .f32), .init([5, 8], .f32), .init([3, 2], .f32)]),
        (.topK(k: 2), [.init([3, 5], .f32)]),
        (.sparseAttention(SparseAttentionParams()), [.init([3, 4, 8], .f32), .init([5, 2, 8], .f32), .init([5, 2, 6], .f32), .init([3, 2], .i32)]),
        (.moeRouter(router), [.init([3, 8], .f32), .init([8], .f32)]),
        (.moePermute(numExperts: 4), [.init([3, 8], .f32), .init([3, 2], .i32)]),
        (.moeCombine, [.init([6, 8], .f32), .init([6], .i32), .init([3, 2], .f32)]),
        (.moeLayer(MoELayerParams(router: router, experts: .float, hasShared: true)),
         [.init([3, 8], .f32), .init([8, 8], .f32), .init([8], .f32), .init([8, 4, 8], .f32), .init([8, 4, 8], .f32), .init([8, 8, 4], .f32),
          .init([6, 8], .f32), .init([6, 8], .f32), .init([8, 6], .f32)]),
        (.quantizeInt4(a32), [.init([3, 64], .f32)]),
        (.dequantizeInt4(a32, output: .f16), [.init([3, 64], .int4), .init([3, 2], .f32), .init([3, 2], .i8)]),
        (.int4Matmul(g32), [.init([2, 64], .f32), .init([5, 64], .int4), .init([5, 2], .f32)]),
        (.int4GroupedMatmul(g32), [.init([4, 64], .f32), .init([2, 5, 64], .int4), .init([2, 5, 2], .f32), .init([3], .i32)]),
    ]

    @Test func everyKernelHasAValidCase() throws {
        #expect(Set(Self.valid.map(\.0.kind)) == Set(OpKind.allCases))
        for (op, ins) in Self.valid {
            let outs = try op.validate(ins)
            #expect(outs.count == op.outputNames.count, "\(op.kind)")
            let cost = op.cost(ins)
            #expect(cost.flops > 0 && cost.bytes > 0, "\(op.kind) cost")
        }
    }

    @Test func missingInputIsArityError() {
        for (op, ins) in Self.valid {
            #expect(throws: PolychipError.self, "\(op.kind)") { try op.validate(Array(ins.dropLast())) }
            do { _ = try op.validate(Array(ins.dropLast())) } catch {
                guard case .arityMismatch(let k, _, let e, let g) = error as? PolychipError else { Issue.record("\(op.kind): \(error)"); continue }
                #expect(k == op.kind.name && e == ins.count && g == ins.count - 1)
            }
        }
    }

    @Test func wrongDTypeOfFirstInputIsDTypeError() {
        for (op, ins) in Self.valid {
            var bad = ins
            bad[0].dtype = bad[0].dtype == .i8 ? .f32 : .i8
            do {
                _ = try op.validate(bad)
                Issue.record("\(op.kind) accepted \(bad[0].dtype) for '\(op.inputNames[0])'")
            } catch let PolychipError.dtypeMismatch(k, arg, _, got) {
                #expect(k == op.kind.name && arg == op.inputNames[0] && got == bad[0].dtype)
            } catch {
                Issue.record("\(op.kind): unexpected \(error)")
            }
        }
    }

    /// One shape mismatch per kernel: (kernel, input index, bad shape).
    static let shapeMismatches: [(OpKind, Int, [Int])] = [
        (.matmul, 1, [7, 3]), (.groupedMatmul, 1, [3, 3, 8]), (.rmsNorm, 1, [7]), (.addRmsNorm, 1, [2, 7]), (.softmax, 0, [2, 0]),
        (.silu, 0, []), (.swiglu, 1, [2, 7]), (.rope, 0, [3, 2]), (.add, 1, [8, 2]), (.scale, 0, [0]),
        (.attention, 1, [1, 2, 5, 7]), (.lightningIndexer, 2, [3, 3]), (.topK, 0, [15]),
        (.sparseAttention, 3, [2, 2]), (.moeRouter, 1, [7]), (.moePermute, 1, [4, 2]), (.moeCombine, 0, [5, 8]),
        (.moeLayer, 5, [8, 8, 5]), (.quantizeInt4, 0, [3]), (.dequantizeInt4, 1, [3, 3]),
        (.int4Matmul, 2, [5, 3]), (.int4GroupedMatmul, 2, [2, 5, 1]),
    ]

    @Test func mismatchedShapesAreShapeErrors() {
        #expect(Set(Self.shapeMismatches.map(\.0)) == Set(OpKind.allCases))
        for (kind, index, shape) in Self.shapeMismatches {
            let (op, ins) = Self.valid.first { $0.0.kind == kind }!
            var bad = ins
            bad[index].shape = shape
            do {
                _ = try op.validate(bad)
                Issue.record("\(kind) accepted \(shape) for '\(op.inputNames[index])'")
            } catch let PolychipError.shapeMismatch(k, arg, _, _) {
                #expect(k == kind.name && arg == op.inputNames[index], "\(kind): \(arg)")
            } catch {
                Issue.record("\(kind): unexpected \(error)")
            }
        }
    }

    @Test func int4GroupMisalignmentIsInvalidArgument() {
        let cases: [(Op, [TensorDesc])] = [
            (.quantizeInt4(Self.g32), [.init([3, 48], .f32)]),
            (.dequantizeInt4(Self.g32, output: .f32), [.init([3, 48], .int4), .init([3, 1], .f32)]),
            (.int4Matmul(Self.g32), [.init([2, 48], .f32), .init([5, 48], .int4), .init([5, 1], .f32)]),
            (.int4GroupedMatmul(Self.g32), [.init([4, 48], .f32), .init([2, 5, 48], .int4), .init([2, 5, 1], .f32), .init([3], .i32)]),
            (.int4Matmul(Int4Format(groupSize: 3)), [.init([2, 48], .f32), .init([5, 48], .int4), .init([5, 16], .f32)]),
        ]
        for (op, ins) in cases {
            do {
                _ = try op.validate(ins)
                Issue.record("\(op.kind) accepted a misaligned group")
            } catch let PolychipError.invalidArgument(k, _, reason) {
                #expect(k == op.kind.name)
                #expect(reason.contains("group"))
            } catch {
                Issue.record("\(op.kind): unexpected \(error)")
            }
        }
    }

    @Test func badParametersAreInvalidArgument() {
        let cases: [(Op, [TensorDesc])] = [
            (.topK(k: 0), [.init([3, 5], .f32)]),
            (.moeRouter(RouterParams(topK: 9)), [.init([3, 8], .f32)]),
            (.moeRouter(RouterParams(topK: 2, nGroup: 3)), [.init([3, 8], .f32)]),
            (.moeRouter(RouterParams(topK: 5, nGroup: 4, topkGroup: 2)), [.init([3, 8], .f32)]),
            (.rope(RopeParams(rotaryDim: 5)), [.init([3, 2, 8], .f32), .init([3], .i32)]),
            (.rmsNorm(eps: -1), [.init([2, 8], .f32), .init([8], .f32)]),
            (.scale(alpha: .nan), [.init([2, 8], .f32)]),
            (.attention(AttentionParams(scale: 0)), [.init([1, 4, 3, 8], .f32), .init([1, 2, 5, 8], .f32), .init([1, 2, 5, 6], .f32)]),
        ]
        for (op, ins) in cases {
            #expect(throws: PolychipError.self, "\(op)") { try op.validate(ins) }
        }
    }

    @Test func overflowingShapesAreSizeErrors() {
        #expect(throws: PolychipError.sizeOverflow(shape: [Int.max / 2, 4], dtype: .f32)) {
            try Op.softmax.validate([.init([Int.max / 2, 4], .f32)])
        }
    }

    @Test func kernelNamesRoundTrip() {
        for k in OpKind.allCases { #expect(OpKind(name: k.name) == k) }
        #expect(OpKind.int4GroupedMatmul.name == "int4-grouped-matmul")
        #expect(OpKind.topK.name == "top-k")
        #expect(OpKind(name: "no-such-kernel") == nil)
    }
}
