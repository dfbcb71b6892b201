import Foundation
import PackagePlugin

/// Build-tool plugin: embeds data files into the target that uses it as a generated Swift
/// file of string literals (`enum NAME { static let files: [String: String] }`), so a built
/// or installed binary carries them and never reads them from the source tree.
///
/// What a target embeds is chosen by its name:
///
/// | target | files (package-relative) | generated type |
/// |---|---|---|
/// | `PolychipSimulated` | `backends/profiles/*.json` | `EmbeddedProfiles` |
/// | `PolychipOpenCL` | `kernels/opencl/*.cl` | `OpenCLKernelSources` |
/// | `PolychipModels` | `backends/profiles/published/*.json` | `EmbeddedPublishedRecords` |
@main
struct EmbedFiles: BuildToolPlugin {
    /// One embedding: a directory, the file extension, the generated type.
    struct Embedding: Sendable {
        var directory: [String]
        var fileExtension: String
        var typeName: String
    }

    static let sets: [String: Embedding] = [
        "PolychipSimulated": Embedding(directory: ["backends", "profiles"], fileExtension: "json", typeName: "EmbeddedProfiles"),
        "PolychipOpenCL": Embedding(directory: ["kernels", "opencl"], fileExtension: "cl", typeName: "OpenCLKernelSources"),
        "PolychipModels": Embedding(directory: ["backends", "profiles", "published"], fileExtension: "json",
                                    typeName: "EmbeddedPublishedRecords"),
    ]

    struct UnknownTarget: Error, CustomStringConvertible {
        var name: String
        var description: String {
            "EmbedFiles does not know what to embed into target '\(name)' (known: \(EmbedFiles.sets.keys.sorted().joined(separator: ", ")))"
        }
    }

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let set = Self.sets[target.name] else { throw UnknownTarget(name: target.name) }
        var dir = context.package.directoryURL
        for c in set.directory { dir = dir.appending(path: c) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let inputs = names.filter { $0.hasSuffix("." + set.fileExtension) }.sorted().map { dir.appending(path: $0) }
        let from = set.directory.joined(separator: "/") + "/*." + set.fileExtension
        let output = context.pluginWorkDirectoryURL.appending(path: set.typeName + ".swift")
        return [.buildCommand(
            displayName: "Embedding \(inputs.count) files of \(from) into \(target.name)",
            executable: try context.tool(named: "PolychipEmbed").url,
            arguments: ["--type", set.typeName, "--from", from, output.path] + inputs.map(\.path),
            inputFiles: inputs,
            outputFiles: [output])]
    }
}
