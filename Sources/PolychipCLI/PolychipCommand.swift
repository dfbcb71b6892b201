import ArgumentParser
import Foundation
import Polychip

/// `polychip`: devices, conformance, single-kernel runs, benchmarks and simulation.
public struct PolychipCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "polychip",
        abstract: "Heterogeneous accelerator kernels: list devices, check conformance, run and benchmark kernels.",
        subcommands: [DevicesCommand.self, ConformCommand.self, RunCommand.self, BenchCommand.self, CalibrateCommand.self, ConvertCommand.self,
                      SimulateCommand.self, DiffCommand.self])

    public init() {}

    /// `main()`, with every line of an error message bounded to 1,000 characters: argument
    /// parser messages quote the value they reject, and a 100 kB value must not come back as
    /// a 100 kB message (issue 14). Help and other successful output is printed unchanged.
    public static func boundedMain() -> Never {
        do {
            var command = try parseAsRoot()
            try command.run()
            Foundation.exit(0)
        } catch {
            let code = exitCode(for: error)
            let text = fullMessage(for: error)
            if code == .success {
                if !text.isEmpty { print(text) }
            } else if !text.isEmpty {  // `ExitCode(1)` (a failed check) has no message: no stray blank line
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Quoted.bounded($0, limit: 1000) }
                eprint(lines.joined(separator: "\n"))
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// Writes to standard error (progress and diagnostics; results go to stdout).
func eprint(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// `--replace-read-only`, and the output files of a command, checked before any work and
/// written all-or-nothing at the end (``OutputFiles``).
struct OutputOptions: ParsableArguments {
    @Flag(name: .customLong("replace-read-only"),
          help: "Replace output files that are read-only (symbolic links, devices and other non-regular files are never replaced).")
    var replaceReadOnly = false

    /// Declares the outputs given (`(flag, path)`; nil paths are skipped) in a fresh set.
    func files(_ outputs: [(String, String?)]) throws -> OutputFiles {
        let files = OutputFiles(replaceReadOnly: replaceReadOnly)
        for case let (label, path?) in outputs { try files.declare(path, label: label) }
        return files
    }
}

/// Parses kebab-case kernel names, rejecting unknown ones with the list of known names.
func parseKernels(_ names: [String]) throws -> [OpKind] {
    try names.map { n in
        guard let k = OpKind(name: n) else {
            throw ValidationError("unknown kernel \(Quoted(n)); known: \(OpKind.allCases.map(\.name).joined(separator: ", "))")
        }
        return k
    }
}
