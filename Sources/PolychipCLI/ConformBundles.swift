import ArgumentParser
import Foundation
import Polychip
import PolychipConformance

/// `conform --export DIR` and `conform --grade DIR`: portable case bundles.
struct BundleFlags: ParsableArguments {
    @Option(help: ArgumentHelp("Write the selected cases (--kernel, --dtype, --level; the boundary shapes of the one --device, else generic) as .npy inputs plus manifest.json into this new directory, and run nothing.", valueName: "dir"))
    var export: String?

    @Option(help: ArgumentHelp("Grade the outputs a runner wrote into this bundle (cases/<id>/outputs/<name>.npy) with the live suite's rules; --json, --junit and --markdown as for a live run.", valueName: "dir"))
    var grade: String?

    func validate() throws {
        if export != nil && grade != nil { throw ValidationError("--export and --grade are separate steps; give one") }
        for (flag, v) in [("--export", export), ("--grade", grade)] where v?.isEmpty == true {
            throw ValidationError("\(flag) needs a directory")
        }
    }
}

extension ConformCommand {
    /// Writes the bundle; the tiling of the single `--device` (if any) sets its boundary shapes.
    func exportBundle(_ dir: String, options: ConformanceOptions, devices: [any Device]) throws {
        guard devices.count <= 1 else {
            throw ValidationError("--export takes at most one --device (its tiling sets the boundary shapes)")
        }
        let device = self.devices.isEmpty ? nil : devices.first
        let m = try CaseBundle.export(to: URL(fileURLWithPath: dir), options: options, tiling: device?.tiling ?? .none,
                                      tilingSource: device?.id ?? "generic")
        let kernels = Set(m.cases.map(\.kernel)).count
        print("conform: wrote \(m.cases.count) cases of \(kernels) kernel(s) at level \(m.level) to \(dir) (manifest.json, schema \(m.schema) v\(m.schemaVersion))")
    }

    /// Grades a bundle and reports like a live run.
    func gradeBundle(_ dir: String, files: OutputFiles) throws {
        let verbose = self.verbose
        let report = try CaseBundle.grade(URL(fileURLWithPath: dir)) { line in if verbose { eprint("  " + line) } }
        try writeReports(report, files: files)
    }
}
