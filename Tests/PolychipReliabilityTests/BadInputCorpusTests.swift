import Foundation
import Testing
import Polychip
import PolychipConformance

/// The bad-input corpus: malformed kernel calls, profiles, .npy files and CLI invocations,
/// each answered by a specific typed error (never a trap). The counts are asserted so the
/// corpus cannot silently shrink below the 200 cases the reliability issue asks for.
@Suite struct BadInputCorpusTests {
    enum Expect: String { case arity, dtype, shape, size, invalid }

    static func classify(_ e: Error) -> Expect? {
        switch e as? PolychipError {
        case .arityMismatch?: return .arity
        case .dtypeMismatch?: return .dtype
        case .shapeMismatch?: return .shape
        case .sizeOverflow?: return .size
        case .invalidArgument?: return .invalid
        default: return nil
        }
    }

    /// A dtype no slot of this kind accepts.
    static func wrongDType(for d: DType) -> DType {
        switch d {
        case .f32, .f16, .bf16: return .i8
        case .i32, .i8, .int4: return .f32
        }
    }

    /// Kernel corpus: from a valid call per kernel, mutations with a known error kind.
    static func kernelCorpus() throws -> [(String, Op, [TensorDesc], Expect)] {
        var out: [(String, Op, [TensorDesc], Expect)] = []
        for kind in OpKind.allCases {
            let c = try CaseGenerator.cases(kind, dtype: .f32, seed: 1)[1]
            let ins = c.inputs.map(\.desc)
            let names = c.op.inputNames
            out.append(("\(kind.name): missing '\(names.last!)'", c.op, Array(ins.dropLast()), .arity))
            out.append(("\(kind.name): extra input", c.op, ins + [ins[0]], .arity))
            out.append(("\(kind.name): no inputs", c.op, [], .arity))
            for i in ins.indices {
                var bad = ins
                bad[i].dtype = (bad[i].dtype == .f32 && ["scales", "bias", "weights", "scores"].contains { names[i].hasSuffix($0) }) ? .f16 : wrongDType(for: bad[i].dtype)
                out.append(("\(kind.name): '\(names[i])' as \(bad[i].dtype)", c.op, bad, .dtype))
                var zero = ins
                zero[i].shape[0] = 0
                out.append(("\(kind.name): '\(names[i])' with a zero dimension", c.op, zero, .shape))
                var huge = ins
                huge[i].shape[0] = Int.max / 2 + 1
                out.append(("\(kind.name): '\(names[i])' overflowing", c.op, huge, .size))
            }
        }
        return out
    }

    @Test func kernelCallsFailWithTheSpecificError() throws {
        let corpus = try Self.kernelCorpus()
        var checked = 0
        for (label, op, ins, expected) in corpus {
            do {
                _ = try op.validate(ins)
                // A zero dimension is legal for a few index-typed slots only if validation accepts it;
                // everything else must be rejected.
                Issue.record("accepted: \(label)")
            } catch {
                let got = Self.classify(error)
                // A zero dimension can surface as a shape error on the operand, or as the
                // data-shape rule of a dependent operand; both are shape errors.
                #expect(got == expected, "\(label): expected \(expected), got \(error)")
                checked += 1
            }
        }
        #expect(checked >= 200, "kernel corpus has \(checked) cases")
    }

    @Test func bundledProfileMutationsFailWithTheSpecificError() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("backends/profiles/ascend-910b.json")
        let text = try String(contentsOf: path, encoding: .utf8)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        func decode(_ o: Any) throws { _ = try DeviceProfile.decode(data: try JSONSerialization.data(withJSONObject: o), origin: "mut.json") }
        var cases = 0
        // Every required top-level field removed → missingField.
        for key in ["name", "vendor", "description", "compute", "memory", "hostLink", "numerics", "interconnect"] {
            var o = obj; o.removeValue(forKey: key)
            #expect(throws: ProfileError.self, "missing \(key)") { try decode(o) }
            do { try decode(o) } catch let e as ProfileError { if case .missingField = e {} else { Issue.record("missing \(key): \(e)") } }
            cases += 1
        }
        // Wrong types.
        for (key, value) in [("name", 5 as Any), ("compute", "fast" as Any), ("memory", [1, 2] as Any), ("interconnect", true as Any)] {
            var o = obj; o[key] = value
            do { try decode(o); Issue.record("accepted wrong type for \(key)") } catch let e as ProfileError {
                if case .wrongType = e {} else { Issue.record("wrong type \(key): \(e)") }
            }
            cases += 1
        }
        // Truncated JSON at many points → malformedJSON.
        let bytes = Array(text.utf8)
        for cut in stride(from: 1, to: bytes.count - 1, by: max(1, bytes.count / 40)) {
            do { _ = try DeviceProfile.decode(data: Data(bytes[0..<cut]), origin: "cut.json"); Issue.record("accepted truncation at \(cut)") }
            catch let e { if case .malformedJSON = e {} else { Issue.record("cut \(cut): \(e)") } }
            cases += 1
        }
        // Overrides: unknown paths, wrong types, malformed settings, invalid values.
        let p = try DeviceProfile.decode(data: Data(text.utf8), origin: "ok.json")
        for s in ["memory.nosuch=1", "nosuch=1", "compute.matrix.peak.f16.nosuch=1"] {
            do { _ = try p.applying(settings: [s]); Issue.record("accepted \(s)") } catch let e {
                if case .unknownOverridePath = e {} else if case .unknownField = e {} else { Issue.record("\(s): \(e)") }
            }
            cases += 1
        }
        for s in ["memory.bandwidth=fast", "name.x=1", "noequals", "=5"] {
            #expect(throws: ProfileError.self, "\(s)") { _ = try p.applying(settings: [s]) }
            cases += 1
        }
        for s in ["memory.bandwidth=-1", "memory.bandwidth=0", "memory.bandwidth=nan", "memory.capacity=-5", "interconnect.devicesPerNode=0"] {
            do { _ = try p.applying(settings: [s]); Issue.record("accepted \(s)") } catch let e {
                if case .invalidValue = e {} else if case .overrideWrongType = e {} else { Issue.record("\(s): \(e)") }
            }
            cases += 1
        }
        #expect(cases >= 50)
    }

    @Test func npyMutationsFailWithTheSpecificError() throws {
        let good = NumPyFile.encode(try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]))
        func replaced(_ a: String, _ b: String) -> [UInt8] {
            let (x, y) = (Array(a.utf8), Array(b.utf8))
            var out = good
            if let i = (0...(out.count - x.count)).first(where: { Array(out[$0..<($0 + x.count)]) == x }) { out.replaceSubrange(i..<(i + x.count), with: y) }
            return out
        }
        var cases: [([UInt8], String)] = [
            ([], "magic"), (Array(good.prefix(9)), "magic"), ([0x93] + Array("NUMPZ".utf8) + Array(good.dropFirst(6)), "magic"),
            (Array(good.prefix(6)) + [9, 0] + Array(good.dropFirst(8)), "version"),
            (replaced("<f4", "<f8"), "data"), (replaced("<f4", "<c8"), "descr"), (replaced("<f4", ">f4"), "descr"),
            (replaced("False", "True "), "fortran_order"), (replaced("(2, 3)", "(2, x)"), "shape"), (replaced("(2, 3)", "(2,-3)"), "shape"),
            (replaced("(2, 3)", "[2, 3]"), "shape"), (replaced("(2, 3)", "(3, 3)"), "data"), (replaced("(2, 3)", "(2, 2)"), "data"),
            (replaced("'descr'", "'dtype'"), "descr"), (replaced("'shape'", "'shapes'"), "shape"), (replaced("'fortran_order'", "'fortran'"), "fortran_order"),
            (Array(good.dropLast()), "data"), (good + [0], "data"),
            (Array(good.prefix(8)) + [0xFF, 0xFF] + Array(good.dropFirst(10)), "header"),
        ]
        cases.append((replaced("(2, 3)", "(9223372036854775807, 3)"), "shape"))
        var checked = 0
        for (bytes, field) in cases {
            do { _ = try NumPyFile.decode(bytes, path: "m.npy"); Issue.record("accepted malformed .npy (\(field))") }
            catch let PolychipError.malformedFile(_, f, _) { #expect(f == field, "expected \(field), got \(f)"); checked += 1 }
            catch PolychipError.sizeOverflow { #expect(field == "shape"); checked += 1 }
        }
        #expect(checked == cases.count)
    }
}
