import Foundation

// How a device's kernels block their work: the block sizes and path thresholds along each
// dimension of a kernel, as the implementation really uses them.
//
// Kernel bugs live at block boundaries and path switches (a K remainder block, the second M
// block, the first query row past a path threshold), and those depend on the machine and on
// the chip. A device reports them here; the conformance suite derives boundary shapes from
// them (`1, b−1, b, b+1`, several blocks with a remainder), so that a case reaches every
// block edge and every path whatever the device's tile sizes are. See docs/conformance.md.

/// One block size or path threshold of a kernel along one dimension.
public struct TileBoundary: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What the size means for the dimension.
    public enum Role: String, Sendable, Hashable, Codable {
        /// The dimension is cut into blocks of `size`: the edges are at every multiple, and a
        /// remainder block exists unless the dimension is a multiple.
        case block
        /// A different code path is taken from `size` on (`dim ≥ size`).
        case threshold
    }

    /// The kernel dimension, by the name the case generator and `polychip bench --shape`
    /// use (`M`, `N`, `K`, `Lq`, `Lk`, `D`, `T`, `S`, `k`, `R`, `E`, …).
    public var dim: String
    /// The block size or threshold, in elements of `dim`.
    public var size: Int
    /// Whether `size` cuts the dimension into blocks or switches paths.
    public var role: Role
    /// The implementation's name for it (`gemm.kc`, `attention.bc`).
    public var name: String
    /// Other dimensions a case needs (at least) for the call to take the path this boundary
    /// belongs to, e.g. a GEMM's K block on the parallel path needs enough M·N.
    public var context: [String: Int]

    /// Creates a boundary.
    public init(_ dim: String, _ size: Int, _ role: Role = .block, name: String, context: [String: Int] = [:]) {
        self.dim = dim; self.size = size; self.role = role; self.name = name; self.context = context
    }

    public var description: String {
        let ctx = context.isEmpty ? "" : " with " + context.sorted { $0.key < $1.key }.map { "\($0.key)≥\($0.value)" }.joined(separator: ",")
        return "\(name): \(dim) \(role == .block ? "block" : "threshold") \(size)\(ctx)"
    }
}

/// The boundaries of one kernel on one device, and the variant it runs.
public struct KernelTiling: Sendable, Hashable, Codable {
    /// The kernel.
    public var kernel: OpKind
    /// Block sizes and path thresholds, in the order the implementation applies them.
    public var boundaries: [TileBoundary]
    /// The variant or microkernel in use (`avx512 14×32`, `attention_fwd_rows 96/64/6/1`).
    public var variant: String?

    /// Creates a kernel's tiling.
    public init(_ kernel: OpKind, _ boundaries: [TileBoundary], variant: String? = nil) {
        self.kernel = kernel; self.boundaries = boundaries; self.variant = variant
    }
}

/// Everything a device says about its tiling.
public struct DeviceTiling: Sendable, Hashable, Codable {
    /// Per kernel; a kernel without an entry has no boundaries the device knows of.
    public var kernels: [KernelTiling]
    /// How to override the block sizes (an environment variable or selector option), so
    /// the suite can rerun with small blocks; `nil` when they cannot be overridden.
    public var overrides: String?

    /// Creates a report.
    public init(kernels: [KernelTiling] = [], overrides: String? = nil) { self.kernels = kernels; self.overrides = overrides }

    /// No boundaries (the reference: plain loops).
    public static let none = DeviceTiling()

    /// The boundaries of `kind` (empty when the device reports none).
    public func boundaries(_ kind: OpKind) -> [TileBoundary] {
        kernels.filter { $0.kernel == kind }.flatMap(\.boundaries)
    }

    /// The variant `kind` runs, if the device says.
    public func variant(_ kind: OpKind) -> String? { kernels.first { $0.kernel == kind }?.variant }

    /// This report with `other`'s entries appended (a simulated device: its own tile
    /// granularity plus the engine it computes with).
    public func merged(with other: DeviceTiling) -> DeviceTiling {
        var out = self
        for k in other.kernels {
            if let i = out.kernels.firstIndex(where: { $0.kernel == k.kernel }) {
                out.kernels[i].boundaries += k.boundaries
                if out.kernels[i].variant == nil { out.kernels[i].variant = k.variant }
            } else {
                out.kernels.append(k)
            }
        }
        if out.overrides == nil { out.overrides = other.overrides }
        return out
    }
}

/// Parses `key=value` tiling overrides (`"gemm.kc=16,attention.bc=8"` or the preset
/// `small`), the shared grammar of `POLYCHIP_CPU_TILING` and the other backends' overrides.
public enum TilingOverrides {
    /// The `key=value` pairs of `spec`, in order; `small` (or `small,key=value…`) expands to
    /// `presetSmall` first. A malformed item or a value outside `1…limit` is a typed error
    /// naming `source`; keys are checked by the caller, which knows its own.
    public static func parse(_ spec: String, source: String, presetSmall: [(String, Int)], limit: Int = 1 << 20) throws -> [(String, Int)] {
        var out: [(String, Int)] = []
        for raw in spec.split(separator: ",") {
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item.isEmpty { continue }
            if item == "small" { out += presetSmall; continue }
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let v = Int(kv[1]) else {
                throw PolychipError.invalidArgument(kernel: "tiling", argument: source,
                                                    reason: "expected key=value or 'small', got '\(String(item.prefix(64)))'")
            }
            guard v >= 1, v <= limit else {
                throw PolychipError.invalidArgument(kernel: "tiling", argument: source,
                                                    reason: "\(kv[0]) must be in 1…\(limit), got \(v)")
            }
            out.append((kv[0], v))
        }
        return out
    }
}
