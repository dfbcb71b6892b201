import Foundation
import PolychipCore

/// `manifest.json` of a portable case bundle (docs/plugins.md, "Case bundles"): what a runner
/// on another framework or device needs to run each case, and what `conform --grade` needs to
/// grade its outputs with the live suite's rules. Derived from ``CaseSpec`` and ``Op`` (their
/// Codable forms), so a kernel added to the catalog reaches bundles without a change here.
public struct BundleManifest: Sendable, Codable {
    /// The value of ``schema``.
    public static let schemaName = "polychip-case-bundle"
    /// The schema version this build writes and the newest it reads.
    public static let currentVersion = 1

    /// Always `polychip-case-bundle`.
    public var schema: String
    /// The schema version (a reader refuses newer ones).
    public var schemaVersion: Int
    /// What wrote it (`polychip conform --export`).
    public var generator: String
    /// The conformance level the cases come from.
    public var level: ConformanceLevel
    /// The run's base seed (each case has its own, derived from it).
    public var seed: UInt64
    /// Whose tiling set the boundary shapes: a device id, or `generic` (blocks of 16 and 64).
    public var tiling: String
    /// Where runners write outputs: `cases/<id>/outputs/<name>.npy` (each case lists its files).
    public var outputConvention: String
    /// The cases, in the order the live suite runs them.
    public var cases: [BundleCase]
}

/// One case of a bundle.
public struct BundleCase: Sendable, Codable {
    /// Unique within the bundle and a directory name: `0007-matmul-bf16`.
    public var id: String
    /// The kebab-case kernel name (`rms-norm`).
    public var kernel: String
    /// The activation dtype.
    public var dtype: DType
    /// The label live reports use (`M33 K65 N17 Bᵀ`).
    public var label: String
    /// The seed the inputs were made from (derived from the run's seed and the label).
    public var seed: UInt64
    /// The case: `op` (the catalog call with every parameter, in its Codable form), `dims`,
    /// `pattern`, `note`, `offsetViews`. Authoritative for grading.
    public var spec: CaseSpec
    /// The op's parameters flattened into one object (`{"transposeB": true}`,
    /// `{"style": "neox", "base": 10000}`), for runners; absent optional parameters mean their
    /// documented default (docs/kernels.md).
    public var params: [String: BundleValue]
    /// Inputs in the kernel's order, each a `.npy` file in the bundle.
    public var inputs: [BundleTensor]
    /// Outputs in the kernel's order: the files a runner writes.
    public var outputs: [BundleTensor]
    /// How outputs are judged.
    public var tolerance: BundleTolerance
}

/// One tensor file of a case.
public struct BundleTensor: Sendable, Codable, Equatable {
    /// The catalog operand name (`a`, `gate.q`).
    public var name: String
    /// Path relative to the bundle root.
    public var file: String
    /// Logical shape (an int4 file stores `[…, K/2]` bytes for `[…, K]`).
    public var shape: [Int]
    /// Storage dtype.
    public var dtype: DType
    /// The `.npy` descr the file has (`<f4`; bf16 is `<u2` bit patterns, int4 packed `|u1`).
    public var npy: String
    /// Inputs: FNV-1a 64 of the file's bytes, so grading notices an input changed after export.
    public var fnv1a64: String?
}

/// The grading rule of a case (docs/kernels.md, "Conformance tolerances").
public struct BundleTolerance: Sendable, Codable, Equatable {
    /// `nmse`: Σ(a−b)²/Σa² over the finite entries of each float output, at most `threshold`;
    /// `bitwise`: float outputs equal the correctly rounded reference bit for bit (rounding-tie
    /// cases), and the NMSE rule as well.
    public var rule: String
    /// The NMSE threshold for float outputs.
    public var threshold: Double
    /// How non-finite values are judged.
    public var nonFinite: String
    /// How integer outputs are judged.
    public var integers: String
}

/// A JSON value in ``BundleCase/params``.
public enum BundleValue: Sendable, Codable, Equatable {
    case bool(Bool), number(Double), string(String), object([String: BundleValue]), array([BundleValue])

    /// Decodes any JSON value except null.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([BundleValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: BundleValue].self)) }
    }

    /// Encodes the value as the JSON value it holds.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try c.encode(b)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .object(let o): try c.encode(o)
        case .array(let a): try c.encode(a)
        }
    }
}

extension BundleCase {
    /// The op's parameters as one flat object: the Codable form of `op` without its case name,
    /// with unlabeled payloads (`_0`) merged into their parent.
    public static func parameters(of op: Op) -> [String: BundleValue] {
        guard let data = try? JSONEncoder().encode(op),
              let obj = try? JSONDecoder().decode([String: BundleValue].self, from: data),
              case .object(let o)? = obj.values.first else { return [:] }
        return flatten(o)
    }

    static func flatten(_ o: [String: BundleValue]) -> [String: BundleValue] {
        var out: [String: BundleValue] = [:]
        for (k, v) in o {
            let value: BundleValue
            if case .object(let inner) = v { value = .object(flatten(inner)) } else { value = v }
            if k.hasPrefix("_"), case .object(let inner) = value {
                for (ik, iv) in inner { out[ik] = iv }
            } else {
                out[k] = value
            }
        }
        return out
    }

    /// The rule of `kind` in `dtype`, in words and numbers; `exact`: float outputs bit for bit.
    static func tolerance(_ kind: OpKind, _ dtype: DType, exact: Bool = false) -> BundleTolerance {
        let integers: String
        switch kind {
        case .quantizeInt4: integers = "exact, except a nibble (or zero point) off by one where x/s lies within 1e-5 of a rounding tie"
        case .moeRouter: integers = "exact ids, except entries whose reference choice scores are within 1e-6 relative (near ties); weights compared per matched id"
        case .topK: integers = "exact indices; equal values: the lower index first; -1 pads rows with fewer than k selectable entries"
        default: integers = "exact"
        }
        return BundleTolerance(rule: exact ? "bitwise" : "nmse", threshold: kind.tolerance(kind == .topK ? .f32 : dtype),
                               nonFinite: "NaN exactly where the reference is NaN; ±Inf equal to the reference's", integers: integers)
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: an integrity check on bundle inputs (not a
/// cryptographic hash).
enum FNV1a64 {
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let s = String(fnv1a(bytes), radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
