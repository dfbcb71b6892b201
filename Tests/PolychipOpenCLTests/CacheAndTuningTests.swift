import Foundation
import Testing
import PolychipCore
@testable import PolychipOpenCL

/// Issue 14: a damaged program-cache file is detected (length, SHA-256) and rebuilt, never
/// handed to the driver; tuning overrides that would hang or fail a kernel are typed errors.
@Suite struct CacheAndTuningTests {
    @Test func entryFormatDetectsEveryDamage() throws {
        let header = Array("polychip-opencl-binary v2\nkey\n".utf8)
        let binary = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let entry = OpenCLDevice.cacheEntry(header: header, binary: binary)
        #expect(try OpenCLDevice.verifiedBinary(entry, header: header).get() == binary)
        var flipped = entry
        flipped[flipped.count - 10] ^= 0x01
        var flippedLength = entry
        flippedLength[header.count + 7] ^= 0x02
        for damaged in [Array(entry.dropLast()), Array(entry.prefix(entry.count / 2)), flipped, entry + [0],
                        Array(entry.prefix(header.count)), flippedLength] {
            guard case .failure(.damaged) = OpenCLDevice.verifiedBinary(damaged, header: header) else {
                Issue.record("a damaged entry of \(damaged.count) bytes passed")
                continue
            }
        }
        // Another key (or the old v1 format) is not damage: it is simply not this entry.
        #expect(OpenCLDevice.verifiedBinary(entry, header: Array("polychip-opencl-binary v1\nkey\n".utf8)) == .failure(.otherKey))
    }

    @Test func damagedCacheFilesAreRebuilt() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        let token = UUID().uuidString.replacingOccurrences(of: "-", with: "_")
        let source = "__kernel void triple_\(token)(__global float *x) { x[get_global_id(0)] *= 3.0f; }"
        _ = try d.buildProgram(name: "damage-test", source: source)
        let key = d.forgetProgram(name: "damage-test", source: source)
        let file = d.cacheFile(key)
        defer { try? FileManager.default.removeItem(at: file) }
        let good = try Data(contentsOf: file)
        let damages: [(String, (Data) -> Data)] = [
            ("truncated by one byte", { $0.dropLast() }),
            ("cut in half", { $0.prefix($0.count / 2) }),
            ("one byte flipped", { var x = $0; x[x.count - 17] ^= 0x40; return x }),
        ]
        for (what, damage) in damages {
            try damage(good).write(to: file)
            let before = d.buildStatistics
            let p = try d.buildProgram(name: "damage-test", source: source)
            #expect(p.origin == .source, "\(what): the damaged entry was used")
            #expect(d.buildStatistics.damagedEntries == before.damagedEntries + 1, "\(what)")
            #expect(try Data(contentsOf: file).count == good.count, "\(what): the entry was not rewritten")
            d.forgetProgram(name: "damage-test", source: source)
            let again = try d.buildProgram(name: "damage-test", source: source)
            #expect(again.origin == .diskCache, "\(what): the rewritten entry is not used")
            d.forgetProgram(name: "damage-test", source: source)
        }
    }

    @Test func tuningOverridesAreChecked() throws {
        let limits = OpenCLLimits(maxWorkGroupSize: 1024, maxWorkItemSizes: [1024, 1024, 64], localMemBytes: 48 * 1024,
                                  maxAllocBytes: 1 << 30, globalMemBytes: 1 << 32, hasFP16: false, hasFP64: false)
        let base = OpenCLTuning.make(.other, limits)
        #expect(try base.overridden(by: "gvWG=16,rowWG=32,prefill=16/16/1/16", limits: limits).gvWG == 16)
        for bad in ["tk=0", "sortMax=0", "sortMax=3", "topkWG=0", "tm=abc", "foo=1", "tm", "prefill=0/0/0/0", "prefill=8/8",
                    "gvWG=4096", "gemmCPU=2", "tm=99", "it=7", "sortMax=1048576", "lpad=-1", "rt=0",
                    String(repeating: "k", count: 100_000) + "=1"] {
            do {
                _ = try base.overridden(by: bad, limits: limits)
                Issue.record("tuning \(bad.prefix(40)) was accepted")
            } catch let e as PolychipError {
                guard case .invalidArgument(_, let argument, _) = e else { Issue.record("\(e)"); continue }
                #expect(argument.hasPrefix("POLYCHIP_OPENCL_TUNING"))
                #expect("\(e)".count < 700, "the message echoes the whole input")
            }
        }
    }
}
