import ArgumentParser
import Foundation
import Polychip

/// `polychip`: devices, conformance, single-kernel runs, benchmarks and simulation.
public struct PolychipCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "polychip",
        abstract: "Heterogeneous accelerator kernels: list devices, check conformance, run and benchmark kernels.",
        subcommands: [DevicesCommand.self, ConformCommand.self, RunCommand.self, BenchCommand.self, CalibrateCommand.self,
                      SimulateCommand.self, DiffCommand.self])

    public init() {}
}

/// Writes to standard error (progress and diagnostics; results go to stdout).
func eprint(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Writes text to a file, as a typed error on failure.
func writeFile(_ path: String, _ data: Data) throws {
    guard FileManager.default.createFile(atPath: path, contents: data) else {
        throw PolychipError.io(path: path, reason: "cannot write file")
    }
}

/// Parses kebab-case kernel names, rejecting unknown ones with the list of known names.
func parseKernels(_ names: [String]) throws -> [OpKind] {
    try names.map { n in
        guard let k = OpKind(name: n) else {
            throw ValidationError("unknown kernel '\(n)'; known: \(OpKind.allCases.map(\.name).joined(separator: ", "))")
        }
        return k
    }
}
