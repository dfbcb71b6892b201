import Foundation
import PolychipCore
import PolychipReference

/// Portable case bundles: the suite's cases as `.npy` inputs plus `manifest.json`
/// (``BundleManifest``), for a runner on any framework and device, and the grading of the
/// outputs it writes back with exactly the live suite's rules (``Comparison``).
///
/// Layout: `DIR/manifest.json`, `DIR/cases/<id>/inputs/<name>.npy`; runners write
/// `DIR/cases/<id>/outputs/<name>.npy` and may describe themselves in `DIR/runner.json`
/// (`{"runner": …, "device": …}`).
public enum CaseBundle {
    /// Writes every case `options` selects (kernels, dtypes, level; the collectives need a
    /// mesh and are not exported) into the new directory `directory`, with the boundary shapes of
    /// `tiling` (named `tilingSource` in the manifest). All or nothing: the bundle is written
    /// beside it and moved into place at the end; an existing non-empty `directory` is an error
    /// and is left as it was.
    @discardableResult
    public static func export(to directory: URL, options: ConformanceOptions, tiling: DeviceTiling = .none,
                              tilingSource: String = "generic") throws -> BundleManifest {
        let fm = FileManager.default
        let target = directory.standardizedFileURL
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: target.path, isDirectory: &isDir) {
            let empty = isDir.boolValue && ((try? fm.contentsOfDirectory(atPath: target.path))?.isEmpty ?? false)
            guard empty else {
                throw PolychipError.io(path: target.path, reason: "already exists and is not an empty directory; a bundle is only written to a new one")
            }
        }
        let parent = target.deletingLastPathComponent()
        guard fm.fileExists(atPath: parent.path, isDirectory: &isDir), isDir.boolValue else {
            throw PolychipError.io(path: parent.path, reason: "the bundle's parent directory does not exist")
        }
        let staging = parent.appendingPathComponent(".\(target.lastPathComponent).partial-\(UUID().uuidString)")
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: false)
        } catch {
            throw PolychipError.io(path: staging.path, reason: "cannot create: \(error.localizedDescription)")
        }
        do {
            let manifest = try write(into: staging, options: options, tiling: tiling, tilingSource: tilingSource)
            if fm.fileExists(atPath: target.path) { try fm.removeItem(at: target) }
            try fm.moveItem(at: staging, to: target)
            return manifest
        } catch {
            try? fm.removeItem(at: staging)
            if let e = error as? PolychipError { throw e }
            throw PolychipError.io(path: target.path, reason: "cannot write the bundle: \(error.localizedDescription)")
        }
    }

    static func write(into root: URL, options: ConformanceOptions, tiling: DeviceTiling, tilingSource: String) throws -> BundleManifest {
        var cases: [BundleCase] = []
        var index = 0
        for kind in options.kernels ?? OpKind.allCases {
            for dt in CaseGenerator.dtypes(for: kind) where options.dtypes?.contains(dt) ?? true {
                var skipped = 0
                for spec in CaseGenerator.specs(kind, dtype: dt, level: options.level, tiling: tiling, skipped: &skipped) {
                    index += 1
                    let c = try CaseBuilder.make(spec, dtype: dt, seed: options.seed)
                    let number = String(index)
                    let id = String(repeating: "0", count: max(0, 4 - number.count)) + number + "-\(kind.name)-\(dt.rawValue)"
                    let dir = "cases/\(id)"
                    try FileManager.default.createDirectory(at: root.appendingPathComponent(dir + "/inputs"), withIntermediateDirectories: true)
                    var inputs: [BundleTensor] = []
                    for (name, t) in zip(c.op.inputNames, c.inputs) {
                        let file = "\(dir)/inputs/\(name).npy"
                        let bytes = NumPyFile.encode(t)
                        let path = root.appendingPathComponent(file).path
                        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
                            throw PolychipError.io(path: path, reason: "cannot write file")
                        }
                        inputs.append(BundleTensor(name: name, file: file, shape: t.desc.shape, dtype: t.desc.dtype,
                                                   npy: t.desc.dtype.numpyDescr, fnv1a64: FNV1a64.hex(bytes)))
                    }
                    let outs = try c.op.validate(c.inputs.map(\.desc))
                    let outputs = zip(c.op.outputNames, outs).map { name, d in
                        BundleTensor(name: name, file: "\(dir)/outputs/\(name).npy", shape: d.shape, dtype: d.dtype, npy: d.dtype.numpyDescr)
                    }
                    // The spec as the case ran: normalized dims and the final op (dequantize's output dtype).
                    var ran = CaseBuilder.normalized(spec)
                    ran.op = c.op
                    cases.append(BundleCase(id: id, kernel: kind.name, dtype: dt, label: c.label, seed: c.seed, spec: ran,
                                            params: BundleCase.parameters(of: c.op), inputs: inputs, outputs: outputs,
                                            tolerance: BundleCase.tolerance(kind, dt, exact: spec.comparesExactly)))
                }
            }
        }
        let manifest = BundleManifest(schema: BundleManifest.schemaName, schemaVersion: BundleManifest.currentVersion,
                                      generator: "polychip conform --export", level: options.level, seed: options.seed,
                                      tiling: tilingSource, outputConvention: "cases/<id>/outputs/<name>.npy", cases: cases)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = root.appendingPathComponent("manifest.json").path
        guard FileManager.default.createFile(atPath: path, contents: try enc.encode(manifest)) else {
            throw PolychipError.io(path: path, reason: "cannot write file")
        }
        return manifest
    }

    /// Reads and checks `manifest.json` of the bundle at `directory`: a missing or malformed
    /// file, another schema or a newer schema version is a typed error.
    public static func manifest(at directory: URL) throws -> BundleManifest {
        let path = directory.appendingPathComponent("manifest.json").path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolychipError.io(path: path, reason: "no manifest.json: not a case bundle (write one with polychip conform --export DIR)")
        }
        struct Header: Decodable { var schema: String?; var schemaVersion: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw PolychipError.malformedFile(path: path, field: "(root)", reason: "not a JSON object")
        }
        guard header.schema == BundleManifest.schemaName else {
            throw PolychipError.malformedFile(path: path, field: "schema", reason: "expected '\(BundleManifest.schemaName)', got \(header.schema.map { "'\($0)'" } ?? "none")")
        }
        guard let v = header.schemaVersion, v >= 1 else {
            throw PolychipError.malformedFile(path: path, field: "schemaVersion", reason: "missing or not a positive integer")
        }
        guard v <= BundleManifest.currentVersion else {
            throw PolychipError.malformedFile(path: path, field: "schemaVersion",
                                              reason: "version \(v) is newer than this polychip reads (\(BundleManifest.currentVersion)); update polychip")
        }
        do {
            let m = try JSONDecoder().decode(BundleManifest.self, from: data)
            var ids = Set<String>()
            for c in m.cases where !ids.insert(c.id).inserted {
                throw PolychipError.malformedFile(path: path, field: "cases.id", reason: "'\(c.id)' appears twice")
            }
            return m
        } catch let e as PolychipError {
            throw e
        } catch DecodingError.keyNotFound(let key, let ctx) {
            throw PolychipError.malformedFile(path: path, field: (ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."), reason: "missing")
        } catch DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx), DecodingError.dataCorrupted(let ctx) {
            throw PolychipError.malformedFile(path: path, field: ctx.codingPath.map(\.stringValue).joined(separator: "."), reason: ctx.debugDescription)
        } catch {
            throw PolychipError.malformedFile(path: path, field: "(root)", reason: "\(error)")
        }
    }

    /// Grades the outputs written into the bundle at `directory`: each case is `pass` or `fail`
    /// under the live rules, `missing` when an output file is absent, `invalid` when a file is
    /// malformed, of the wrong shape or dtype, or an input changed since export. Never writes
    /// into the bundle.
    public static func grade(_ directory: URL, progress: (@Sendable (String) -> Void)? = nil) throws -> ConformanceReport {
        let m = try manifest(at: directory)
        let device = runnerName(directory)
        var results: [CaseResult] = []
        for bc in m.cases {
            let r = grade(bc, root: directory, device: device)
            progress?("\(r.status.rawValue.uppercased()) \(bc.kernel) \(bc.dtype) \(bc.label) [\(bc.id)]\(r.message.map { ": " + $0 } ?? "")")
            results.append(r)
        }
        return ConformanceReport(results: results)
    }

    /// `runner.json`'s `runner` and `device`, when a runner wrote one; else `bundle`.
    static func runnerName(_ directory: URL) -> String {
        struct Runner: Decodable { var runner: String?; var device: String? }
        guard let d = FileManager.default.contents(atPath: directory.appendingPathComponent("runner.json").path),
              let r = try? JSONDecoder().decode(Runner.self, from: d) else { return "bundle" }
        let text = [r.runner, r.device].compactMap { $0 }.joined(separator: " on ")
        return text.isEmpty ? "bundle" : String(text.prefix(80))
    }

    /// A manifest path that stays inside the bundle, or nil.
    static func file(_ relative: String, in root: URL) -> URL? {
        guard !relative.hasPrefix("/"), !relative.split(separator: "/").contains("..") else { return nil }
        return root.appendingPathComponent(relative)
    }

    static func grade(_ bc: BundleCase, root: URL, device: String) -> CaseResult {
        var r = CaseResult(kernel: bc.kernel, device: device, dtype: bc.dtype.rawValue, shape: bc.label, status: .invalid,
                           threshold: bc.tolerance.threshold, seed: bc.seed)
        r.path = "bundle case \(bc.id)"
        // Inputs: present, unchanged since export, and what the manifest says.
        var inputs: [HostTensor] = []
        for t in bc.inputs {
            guard let url = file(t.file, in: root) else { r.message = "input '\(t.name)': path '\(t.file)' leaves the bundle"; return r }
            guard let data = FileManager.default.contents(atPath: url.path) else {
                r.message = "input '\(t.name)' (\(t.file)) is missing from the bundle"
                return r
            }
            if let h = t.fnv1a64, FNV1a64.hex(data) != h {
                r.message = "input '\(t.name)' (\(t.file)) changed since export (FNV-1a \(FNV1a64.hex(data)), manifest \(h))"
                return r
            }
            do {
                let v = try NumPyFile.decode([UInt8](data), path: t.file)
                guard v.desc == TensorDesc(t.shape, t.dtype) else {
                    r.message = "input '\(t.name)' (\(t.file)) is \(v.desc), the manifest says \(TensorDesc(t.shape, t.dtype))"
                    return r
                }
                inputs.append(v)
            } catch {
                r.message = "input '\(t.name)': \(error)"
                return r
            }
        }
        let op = bc.spec.op
        let expected: [HostTensor]
        do {
            guard op.kind.name == bc.kernel, op.inputNames == bc.inputs.map(\.name), op.outputNames == bc.outputs.map(\.name) else {
                r.message = "the case's op (\(op.kind.name): \(op.inputNames) → \(op.outputNames)) does not match its kernel and tensors"
                return r
            }
            expected = try Reference.evaluate(op, inputs)
        } catch {
            r.message = "the reference cannot run the case: \(error)"
            return r
        }
        // Outputs: every one present, well-formed, of the expected shape and dtype.
        var got: [HostTensor] = []
        for (t, e) in zip(bc.outputs, expected) {
            guard let url = file(t.file, in: root) else { r.message = "output '\(t.name)': path '\(t.file)' leaves the bundle"; return r }
            guard FileManager.default.fileExists(atPath: url.path) else {
                r.status = .missing
                r.message = "output '\(t.name)' was not written (\(t.file))"
                return r
            }
            do {
                let v = try NumPyFile.read(path: url.path)
                guard v.desc.dtype == e.desc.dtype else {
                    r.message = "output '\(t.name)' (\(t.file)) has dtype \(v.desc.dtype) (\(v.desc.dtype.numpyDescr)), expected \(e.desc.dtype) (\(e.desc.dtype.numpyDescr)\(e.desc.dtype == .bf16 ? ": bf16 bit patterns" : ""))"
                    return r
                }
                guard v.desc.shape == e.desc.shape else {
                    r.message = "output '\(t.name)' (\(t.file)) has shape \(v.desc.shape), expected \(e.desc.shape)"
                    return r
                }
                got.append(v)
            } catch {
                r.message = "output '\(t.name)': \(error)"
                return r
            }
        }
        var c = ConformanceCase(op: op, inputs: inputs, dtype: bc.dtype, label: bc.label, seed: bc.seed)
        c.exact = bc.spec.comparesExactly
        let outcome = Comparison.compare(c, expected: expected, got: got)
        r.nmse = outcome.nmse
        r.message = outcome.failure
        r.status = outcome.failure == nil ? .pass : .fail
        return r
    }
}
