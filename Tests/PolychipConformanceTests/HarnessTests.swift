import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import Polychip
import PolychipReference
@testable import PolychipConformance

/// A device that runs the reference and then plants one fault, to prove the harness sees it.
final class FaultyDevice: Device, @unchecked Sendable {
    enum Fault { case wrongValue, guardWrite, nan, inputWrite, unsupported }
    let fault: Fault
    let base = ReferenceDevice()
    let id = "faulty:0"
    var info: DeviceInfo { base.info }
    init(_ fault: Fault) { self.fault = fault }

    func supports(_ kernel: OpKind, dtype: DType) -> Support {
        fault == .unsupported ? .unsupported("planted") : .native
    }
    func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer { HostBuffer(byteCount: byteCount, deviceID: id) }
    func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        try HostMemory.write(source, to: buffer, at: offset, device: id)
    }
    func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        try HostMemory.read(from: buffer, at: offset, into: destination, device: id)
    }
    func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let op = call.op
        let results = try Reference.evaluate(op, inputs.map { try $0.hostValue(on: self) })
        for (o, r) in zip(outputs, results) { try o.storeHostValue(r, on: self) }
        let out = try outputs[0].hostPointer(on: self)
        switch fault {
        case .wrongValue:
            switch outputs[0].dtype {
            case .f32: out.storeBytes(of: Float(1234.5), as: Float.self)
            case .f16: out.storeBytes(of: FloatBits.f16Bits(1234.5), as: UInt16.self)
            case .bf16: out.storeBytes(of: FloatBits.bf16Bits(1234.5), as: UInt16.self)
            default: out.storeBytes(of: UInt8(0x77) ^ out.load(as: UInt8.self), as: UInt8.self)
            }
        case .guardWrite: (out + outputs[0].desc.byteCount).storeBytes(of: UInt8(0), as: UInt8.self)
        case .nan:
            // On an element the reference has finite (a non-finite case's first may be NaN already).
            let i = results[0].floats.firstIndex { $0.isFinite } ?? 0
            let at = i * (outputs[0].dtype.bitWidth / 8) + (outputs[0].dtype == .f32 ? 2 : 0)
            out.storeBytes(of: UInt16(0x7FC0), toByteOffset: at, as: UInt16.self)
        case .inputWrite: try inputs[0].hostPointer(on: self).storeBytes(of: UInt8(0x11) ^ inputs[0].hostPointer(on: self).load(as: UInt8.self), as: UInt8.self)
        case .unsupported: break
        }
        return .measured(seconds: 0)
    }
}

@Suite struct HarnessTests {
    @Test func referenceAgainstItselfIsExact() {
        let results = ConformanceRunner.run(on: ReferenceDevice())
        #expect(!results.isEmpty)
        #expect(Set(results.map(\.kernel)).isSuperset(of: OpKind.allCases.map(\.name)))
        for r in results {
            #expect(r.status == .pass, "\(r.kernel) \(r.dtype) \(r.shape): \(r.message ?? "")")
            #expect((r.nmse ?? 0) == 0, "\(r.kernel) \(r.dtype) \(r.shape) NMSE \(r.nmse ?? 0)")
        }
    }

    @Test(arguments: [FaultyDevice.Fault.wrongValue, .guardWrite, .nan, .inputWrite])
    func plantedFaultsFail(_ fault: FaultyDevice.Fault) {
        let kernels: [OpKind] = [.matmul, .softmax, .attention, .int4Matmul]
        let results = ConformanceRunner.run(on: FaultyDevice(fault), options: ConformanceOptions(kernels: kernels, dtypes: [.f32, .bf16]))
        #expect(!results.isEmpty)
        // A planted NaN cannot show where the reference output is all NaN already (some
        // non-finite cases); every other planted fault must be caught in every case.
        for r in results where !(fault == .nan && r.shape.hasPrefix("non-finite") && r.status == .pass) {
            #expect(r.status == .fail, "\(fault) not caught in \(r.kernel) \(r.shape)")
        }
        #expect(results.filter { $0.status == .fail }.count >= results.count * 3 / 4)
        let msg = results.first?.message ?? ""
        switch fault {
        case .guardWrite: #expect(msg.contains("wrote outside"))
        case .nan: #expect(msg.contains("nan"))
        case .inputWrite: #expect(msg.contains("modified"))
        default: #expect(msg.contains("NMSE") || msg.contains("element"))
        }
    }

    @Test func unsupportedIsLostCoverageNotAPass() {
        let results = ConformanceRunner.run(on: FaultyDevice(.unsupported), options: ConformanceOptions(kernels: [.silu]))
        #expect(results.allSatisfy { $0.status == .unsupported })
        #expect(!ConformanceReport(results: results).failed)
    }

    @Test func expectedFailuresClassify() {
        let manifest = ExpectedFailures(["matmul": "planted wrong value"])
        let bad = ConformanceRunner.run(on: FaultyDevice(.wrongValue), options: ConformanceOptions(kernels: [.matmul], dtypes: [.f32]), expected: manifest)
        #expect(bad.allSatisfy { $0.status == .xfail })
        #expect(!ConformanceReport(results: bad).failed)
        let good = ConformanceRunner.run(on: ReferenceDevice(), options: ConformanceOptions(kernels: [.matmul], dtypes: [.f32]), expected: manifest)
        #expect(good.allSatisfy { $0.status == .xpass })
        #expect(ConformanceReport(results: good).failed)
    }

    @Test func reportsAreWellFormed() throws {
        let results = ConformanceRunner.run(on: FaultyDevice(.wrongValue), options: ConformanceOptions(kernels: [.add], dtypes: [.f32]))
        let report = ConformanceReport(results: results)
        let json = try JSONSerialization.jsonObject(with: try report.json()) as? [[String: Any]]
        let first = try #require(json?.first)
        for key in ["kernel", "device", "dtype", "shape", "status", "threshold", "seed"] { #expect(first[key] != nil, "\(key)") }
        let xml = report.junitXML()
        let doc = try XMLDocument(xmlString: xml)
        #expect(try doc.nodes(forXPath: "//testcase").count == results.count)
        #expect(try doc.nodes(forXPath: "//failure").count == results.count)
        #expect(report.consoleMatrix().contains("FAIL"))
    }

    @Test func casesAreSeededAndNeverZero() throws {
        for kind in OpKind.allCases {
            let a = try CaseGenerator.cases(kind, dtype: .f32, seed: 7)
            let b = try CaseGenerator.cases(kind, dtype: .f32, seed: 7)
            #expect(a.map(\.inputs) == b.map(\.inputs), "\(kind)")
            for c in a { for t in c.inputs where t.desc.dtype.isFloat { #expect(!t.floats.contains(0), "\(kind) \(c.label)") } }
        }
    }
}
