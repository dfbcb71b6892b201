import Foundation
import Testing
import PolychipFuzzTargets

/// Replays the fuzz seeds and every saved crasher (Fuzz/regressions/<target>/) through the
/// fuzz target bodies: each must return normally.
@Suite struct FuzzRegressionTests {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func inputs(_ target: String) -> [URL] {
        ["seeds", "regressions"].flatMap { sub -> [URL] in
            let dir = fuzzDir.appendingPathComponent(sub).appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
        }
    }

    @Test(arguments: ["FuzzNumPy", "FuzzSelector", "FuzzProfile", "FuzzValidation", "FuzzCheckpoint"])
    func replay(_ target: String) throws {
        let files = Self.inputs(target)
        #expect(!files.isEmpty, "no seeds for \(target)")
        for f in files {
            let bytes = [UInt8](try Data(contentsOf: f))
            switch target {
            case "FuzzNumPy": FuzzTargets.numPy(bytes)
            case "FuzzSelector": FuzzTargets.selector(bytes)
            case "FuzzProfile": FuzzTargets.profile(bytes)
            case "FuzzCheckpoint": FuzzTargets.checkpoint(bytes)
            default: FuzzTargets.validation(bytes)
            }
        }
    }
}
