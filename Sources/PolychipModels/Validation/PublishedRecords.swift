// PublishedRecords.swift — published measurements as data: one JSON file per source in
// backends/profiles/published/ (embedded into the binary), each naming its citation, the chip,
// the bundled profile that prices it (with the overrides that turn the profile into the
// measured part), exactly what is measured, and the measurements themselves. The schema is
// documented in docs/device-profiles.md, "Validated against".

import Foundation
import PolychipCore
import PolychipSimulated

/// One source of published measurements (one file).
public struct PublishedSource: Codable, Sendable, Equatable {
    /// Schema version (1).
    public var schemaVersion: Int
    /// File name without `.json`; what `validation.records` of a profile lists.
    public var id: String
    /// Short title of the source.
    public var title: String
    /// Where the numbers are published.
    public var citation: Citation
    /// The chip as the source names it (`NVIDIA H800 SXM5`).
    public var chip: String
    /// The bundled profile that prices the records.
    public var profile: String
    /// `PATH=VALUE` overrides that turn the profile into the measured part (H800 = H100 with
    /// NVLink cut to 8 links; one 910C die), with `settingsSource` saying why.
    public var settings: [String]?
    /// Sources of the overrides.
    public var settingsSource: String?
    /// Exactly what the source measures: which FLOPs, which bytes count as bandwidth, timing.
    public var measures: String
    /// The measurements.
    public var records: [PublishedRecord]

    /// A citation: a URL and, for repositories, the commit and path read.
    public struct Citation: Codable, Sendable, Equatable {
        /// Where to read it.
        public var url: String
        /// `owner/name` for a repository.
        public var repository: String?
        /// The commit read.
        public var commit: String?
        /// The file read.
        public var path: String?
        /// The section, table or line.
        public var section: String?
    }
}

/// How a record is used: fitted on, judged on, or printed for context only.
public enum RecordSplit: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// Fits the profile's figures; never judges them.
    case fit
    /// Judges the profile; never fits it. The held-out median is over these.
    case holdout
    /// Printed with its error, in no median (the record says why).
    case context

    /// The split's name.
    public var description: String { rawValue }
}

/// One published measurement.
public struct PublishedRecord: Codable, Sendable, Equatable {
    /// Unique within the source.
    public var id: String
    /// Fit, held out, or context.
    public var split: RecordSplit
    /// What ran.
    public var setting: RecordSetting
    /// The published figure.
    public var published: PublishedFigure
    /// Remarks (why a record is context, how a shape was inferred).
    public var note: String?
}

/// A published number with its unit: `TFLOPS` (FLOPs as the setting defines them per second),
/// `GB/s` (the setting's counted bytes per second, 10⁹), `us`, `ms` or `s`.
public struct PublishedFigure: Codable, Sendable, Equatable {
    /// The number as published.
    public var value: Double
    /// Its unit.
    public var unit: String
}

/// The setting of a measurement, by kind.
public enum RecordSetting: Codable, Sendable, Equatable {
    /// A GEMM or a grouped GEMM of `groups` equal problems: FLOPs `2·m·n·k·groups`.
    case gemm(Gemm)
    /// Attention forward (dense, flash-style): FLOPs `2·B·H·(dqk + dv)·(visible query-key pairs)`.
    case attention(Attention)
    /// DeepSeek Sparse Attention decoding: each of `B·sq` queries attends `topk` selected keys
    /// in all `heads`: FLOPs `2·B·sq·H·topk·(dqk + dv)`.
    case sparseAttention(SparseAttention)
    /// A streaming elementwise kernel over `elements` values.
    case stream(Stream)
    /// All-reduce or all-gather of a buffer over `devices`.
    case collective(Collective)
    /// Expert-parallel dispatch or combine of a MoE layer.
    case expertAllToAll(ExpertAllToAll)

    /// GEMM setting.
    public struct Gemm: Codable, Sendable, Equatable {
        /// Rows of A and C (per group).
        public var m: Int
        /// Columns of B and C.
        public var n: Int
        /// The reduction dimension.
        public var k: Int
        /// Equal problems in the group (1: plain GEMM).
        public var groups: Int?
        /// Input dtype (profile dtype name).
        public var dtype: String
        /// Bytes per output element (default 2).
        public var outputBytes: Double?
    }

    /// Attention setting.
    public struct Attention: Codable, Sendable, Equatable {
        /// Sequences.
        public var batch: Int
        /// Query heads.
        public var heads: Int
        /// Query tokens per sequence.
        public var seqQ: Int
        /// Keys per sequence.
        public var seqK: Int
        /// Query/key head dimension.
        public var headDimQK: Int
        /// Value head dimension.
        public var headDimV: Int
        /// Causal mask (queries aligned to the end of the keys).
        public var causal: Bool
        /// Input dtype (profile dtype name).
        public var dtype: String
    }

    /// Sparse-attention decoding setting.
    public struct SparseAttention: Codable, Sendable, Equatable {
        /// Sequences.
        public var batch: Int
        /// Query heads.
        public var heads: Int
        /// Query tokens per sequence (2 with one MTP draft).
        public var seqQ: Int
        /// Keys each query attends (DSA selection size).
        public var topk: Int
        /// Query/key head dimension.
        public var headDimQK: Int
        /// Value head dimension.
        public var headDimV: Int
        /// Bytes of one cached key/value entry as read (FP8 latent plus scales).
        public var kvBytesPerToken: Double
        /// Input dtype (profile dtype name).
        public var dtype: String
    }

    /// Streaming setting.
    public struct Stream: Codable, Sendable, Equatable {
        /// Elements streamed.
        public var elements: Double
        /// Input dtype (profile dtype name).
        public var dtype: String
        /// Bytes read per element.
        public var readBytesPerElement: Double
        /// Bytes written per element.
        public var writeBytesPerElement: Double
        /// Arithmetic per element (vector unit).
        public var flopsPerElement: Double
        /// Bytes the published bandwidth counts per element (e.g. only the input).
        public var countedBytesPerElement: Double
    }

    /// Collective setting.
    public struct Collective: Codable, Sendable, Equatable {
        /// `allReduce` or `allGather`.
        public var operation: String
        /// Group size.
        public var devices: Int
        /// The buffer: all-reduce input (= output) bytes, all-gather output bytes.
        public var bytes: Double
        /// `algbw` (bytes / time) or `busbw` (algbw × 2(p−1)/p for all-reduce, (p−1)/p for all-gather).
        public var counted: String
    }

    /// Expert-parallel dispatch/combine setting.
    public struct ExpertAllToAll: Codable, Sendable, Equatable {
        /// `dispatch` or `combine`.
        public var phase: String
        /// `perExpert`, `perRank` or `perNode` (ExpertExchangeScheme).
        public var scheme: String
        /// Expert-parallel ranks.
        public var epSize: Int
        /// Tokens each rank dispatches.
        public var tokensPerRank: Int
        /// Routed experts in all.
        public var experts: Int
        /// Experts per token.
        public var topK: Int
        /// Group-limited routing: each token's experts come from this many node groups
        /// (DeepEP's internode test: `min(nodes, 4)`); absent = no limit.
        public var topkGroups: Int?
        /// Wire bytes of one message (dispatch: FP8/INT8 row plus scales; combine: BF16 row).
        public var bytesPerMessage: Double
        /// What the published bandwidth counts, per unit of `countedUnit`.
        public var countedBytesPerUnit: Double?
        /// `selections` (token × expert), `rankRows` (token × destination rank, own rank
        /// included), `nodeRows` (token × destination node, own node included), or
        /// `expertRows` (rows received per rank, one per token × local expert).
        public var countedUnit: String?
    }

    private enum CodingKeys: String, CodingKey { case kind }

    /// Decodes `{"kind": "gemm" | "attention" | "sparseAttention" | "stream" | "collective" | "expertAllToAll", …}`.
    public init(from decoder: any Decoder) throws {
        let kind = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .kind)
        switch kind {
        case "gemm": self = .gemm(try Gemm(from: decoder))
        case "attention": self = .attention(try Attention(from: decoder))
        case "sparseAttention": self = .sparseAttention(try SparseAttention(from: decoder))
        case "stream": self = .stream(try Stream(from: decoder))
        case "collective": self = .collective(try Collective(from: decoder))
        case "expertAllToAll": self = .expertAllToAll(try ExpertAllToAll(from: decoder))
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [CodingKeys.kind],
                                                    debugDescription: "unknown kind '\(kind)' (gemm, attention, sparseAttention, stream, collective, expertAllToAll)"))
        }
    }

    /// Encodes the setting with its `kind`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        switch self {
        case .gemm(let s): try s.encode(to: encoder)
        case .attention(let s): try s.encode(to: encoder)
        case .sparseAttention(let s): try s.encode(to: encoder)
        case .stream(let s): try s.encode(to: encoder)
        case .collective(let s): try s.encode(to: encoder)
        case .expertAllToAll(let s): try s.encode(to: encoder)
        }
    }

    /// The kind's name.
    public var kind: String {
        switch self {
        case .gemm: return "gemm"
        case .attention: return "attention"
        case .sparseAttention: return "sparseAttention"
        case .stream: return "stream"
        case .collective: return "collective"
        case .expertAllToAll: return "expertAllToAll"
        }
    }

    /// The class the report groups the record under: a kernel class, or `collective` /
    /// `expertAllToAll`.
    public var reportClass: String {
        switch self {
        case .gemm: return KernelClass.gemm.rawValue
        case .attention: return KernelClass.attention.rawValue
        case .sparseAttention: return KernelClass.sparseAttention.rawValue
        case .stream: return KernelClass.elementwise.rawValue
        case .collective(let c): return c.operation
        case .expertAllToAll: return "expertAllToAll"
        }
    }
}

/// A malformed or inconsistent record file: names the file and the field.
public struct PublishedRecordError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or `embedded:NAME`).
    public var file: String
    /// What is wrong, naming the field.
    public var reason: String
    /// Creates an error.
    public init(file: String, reason: String) { self.file = file; self.reason = reason }
    /// `FILE: REASON`.
    public var description: String { "\(file): \(reason)" }
}

extension PublishedSource {
    /// Where the bundled record files live, relative to the package root.
    public static let bundledDirectory = "backends/profiles/published"

    /// Decodes and checks one source file.
    public static func decode(_ data: Data, origin: String) throws(PublishedRecordError) -> PublishedSource {
        let s: PublishedSource
        do {
            s = try JSONDecoder().decode(PublishedSource.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw PublishedRecordError(file: origin, reason: "missing field \(path(ctx.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw PublishedRecordError(file: origin, reason: "wrong type at \(path(ctx.codingPath)): \(ctx.debugDescription)")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw PublishedRecordError(file: origin, reason: "null at \(path(ctx.codingPath))")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw PublishedRecordError(file: origin, reason: "\(path(ctx.codingPath)): \(ctx.debugDescription)")
        } catch {
            throw PublishedRecordError(file: origin, reason: "\(error)")
        }
        try s.check(origin: origin)
        return s
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    /// Range and consistency checks: every size and figure finite and positive, units known,
    /// ids unique, counting rules known.
    func check(origin: String) throws(PublishedRecordError) {
        func fail(_ r: String) -> PublishedRecordError { PublishedRecordError(file: origin, reason: r) }
        guard schemaVersion == 1 else { throw fail("schemaVersion \(schemaVersion): this reader knows 1") }
        guard !id.isEmpty, !profile.isEmpty, !citation.url.isEmpty, !measures.isEmpty else { throw fail("id, profile, citation.url and measures must be non-empty") }
        guard !records.isEmpty else { throw fail("records: at least one record") }
        var ids = Set<String>()
        for (i, r) in records.enumerated() {
            let at = "records[\(i)] (\(r.id))"
            guard ids.insert(r.id).inserted else { throw fail("\(at).id: used twice") }
            guard r.published.value.isFinite, r.published.value > 0 else { throw fail("\(at).published.value: \(r.published.value), expected a finite number > 0") }
            guard ["TFLOPS", "GB/s", "us", "ms", "s"].contains(r.published.unit) else {
                throw fail("\(at).published.unit: '\(r.published.unit)', expected TFLOPS, GB/s, us, ms or s")
            }
            func positive(_ xs: [(String, Double)]) throws(PublishedRecordError) {
                for (name, x) in xs where !(x.isFinite && x > 0) { throw fail("\(at).setting.\(name): \(x), expected a finite number > 0") }
            }
            func dtype(_ d: String) throws(PublishedRecordError) {
                guard ProfileDType(rawValue: d) != nil else { throw fail("\(at).setting.dtype: '\(d)' is not a profile dtype") }
            }
            let limit = Double(1 << 40)
            switch r.setting {
            case .gemm(let g):
                try dtype(g.dtype)
                try positive([("m", Double(g.m)), ("n", Double(g.n)), ("k", Double(g.k)), ("groups", Double(g.groups ?? 1)), ("outputBytes", g.outputBytes ?? 2)])
                guard Double(g.m) * Double(g.n) * Double(g.k) * Double(g.groups ?? 1) < limit * limit else { throw fail("\(at).setting: problem too large") }
            case .attention(let a):
                try dtype(a.dtype)
                try positive([("batch", Double(a.batch)), ("heads", Double(a.heads)), ("seqQ", Double(a.seqQ)), ("seqK", Double(a.seqK)),
                              ("headDimQK", Double(a.headDimQK)), ("headDimV", Double(a.headDimV))])
                if a.causal && a.seqQ > a.seqK { throw fail("\(at).setting: causal with seqQ > seqK") }
            case .sparseAttention(let a):
                try dtype(a.dtype)
                try positive([("batch", Double(a.batch)), ("heads", Double(a.heads)), ("seqQ", Double(a.seqQ)), ("topk", Double(a.topk)),
                              ("headDimQK", Double(a.headDimQK)), ("headDimV", Double(a.headDimV)), ("kvBytesPerToken", a.kvBytesPerToken)])
            case .stream(let s):
                try dtype(s.dtype)
                try positive([("elements", s.elements), ("readBytesPerElement", s.readBytesPerElement), ("countedBytesPerElement", s.countedBytesPerElement)])
                guard s.writeBytesPerElement >= 0, s.flopsPerElement >= 0, s.elements < limit else { throw fail("\(at).setting: negative bytes or flops, or too many elements") }
            case .collective(let c):
                guard ["allReduce", "allGather"].contains(c.operation) else { throw fail("\(at).setting.operation: '\(c.operation)', expected allReduce or allGather") }
                guard ["algbw", "busbw"].contains(c.counted) else { throw fail("\(at).setting.counted: '\(c.counted)', expected algbw or busbw") }
                guard c.devices >= 2, c.devices <= TimeModel.maxCollectiveDevices else { throw fail("\(at).setting.devices: \(c.devices), expected 2…\(TimeModel.maxCollectiveDevices)") }
                try positive([("bytes", c.bytes)])
            case .expertAllToAll(let e):
                guard ["dispatch", "combine"].contains(e.phase) else { throw fail("\(at).setting.phase: '\(e.phase)', expected dispatch or combine") }
                guard ExpertExchangeScheme(rawValue: e.scheme) != nil else { throw fail("\(at).setting.scheme: '\(e.scheme)', expected perExpert, perRank or perNode") }
                guard e.epSize >= 2, e.epSize <= 1024, e.experts % e.epSize == 0 else { throw fail("\(at).setting.epSize: \(e.epSize), expected 2…1024 dividing experts (\(e.experts))") }
                guard e.topK >= 1, e.topK <= e.experts, e.tokensPerRank >= 1, e.tokensPerRank <= 1 << 20 else { throw fail("\(at).setting: topK 1…experts and tokensPerRank 1…2²⁰") }
                if let g = e.topkGroups { guard g >= 1, g <= e.epSize else { throw fail("\(at).setting.topkGroups: \(g), expected 1…epSize") } }
                try positive([("bytesPerMessage", e.bytesPerMessage)])
                if r.published.unit == "GB/s" {
                    guard let u = e.countedUnit, ["selections", "rankRows", "nodeRows", "expertRows"].contains(u),
                          let b = e.countedBytesPerUnit, b.isFinite, b > 0 else {
                        throw fail("\(at).setting: a GB/s figure needs countedUnit (selections, rankRows, nodeRows, expertRows) and countedBytesPerUnit > 0")
                    }
                }
            }
        }
    }

    /// The bundled sources: embedded in the binary, newest from the source tree where a file
    /// was added after the build.
    public static func bundled() throws(PublishedRecordError) -> [PublishedSource] {
        var files = EmbeddedPublishedRecords.files
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(bundledDirectory).path
        if let names = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            for n in names where n.hasSuffix(".json") && files[n] == nil {
                if let d = FileManager.default.contents(atPath: dir + "/" + n) { files[n] = String(decoding: d, as: UTF8.self) }
            }
        }
        return try files.keys.sorted().map { name throws(PublishedRecordError) in
            try decode(Data((files[name] ?? "").utf8), origin: "embedded:\(bundledDirectory)/\(name)")
        }
    }

    /// Every `*.json` of a directory.
    public static func load(directory: String) throws(PublishedRecordError) -> [PublishedSource] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw PublishedRecordError(file: directory, reason: "cannot list the directory: \(error.localizedDescription)")
        }
        var out: [PublishedSource] = []
        for n in names.sorted() where n.hasSuffix(".json") {
            let p = (directory as NSString).appendingPathComponent(n)
            guard let d = FileManager.default.contents(atPath: p) else { throw PublishedRecordError(file: p, reason: "unreadable") }
            out.append(try decode(d, origin: p))
        }
        guard !out.isEmpty else { throw PublishedRecordError(file: directory, reason: "no *.json record files") }
        return out
    }
}
