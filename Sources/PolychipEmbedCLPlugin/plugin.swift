import Foundation
import PackagePlugin

/// Build-tool plugin: embeds `kernels/opencl/*.cl` (package-relative) into the target
/// that uses it as a generated Swift file of string literals, so a built or installed
/// binary carries its OpenCL sources and never reads them from the source tree.
@main
struct EmbedOpenCLSources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let dir = context.package.directoryURL.appending(path: "kernels").appending(path: "opencl")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let inputs = names.filter { $0.hasSuffix(".cl") }.sorted().map { dir.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "OpenCLKernelSources.swift")
        return [.buildCommand(
            displayName: "Embedding \(inputs.count) OpenCL sources into \(target.name)",
            executable: try context.tool(named: "PolychipEmbedCL").url,
            arguments: [output.path] + inputs.map(\.path),
            inputFiles: inputs,
            outputFiles: [output])]
    }
}
