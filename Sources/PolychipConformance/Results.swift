import PolychipCore

/// The outcome of one conformance case.
public enum CaseStatus: String, Sendable, Codable, CaseIterable {
    /// Matches the reference within tolerance.
    case pass
    /// Differs from the reference, wrote outside its output, produced NaN, or threw.
    case fail
    /// The device answered `unsupported` — lost coverage, never a pass.
    case unsupported
    /// Failed, as the backend's expected-failure manifest says it will.
    case xfail
    /// Passed although the manifest expects a failure: the manifest is stale.
    case xpass
}

/// One case's result, as written to JSON.
public struct CaseResult: Sendable, Codable {
    public var kernel: String
    public var device: String
    public var dtype: String
    public var shape: String
    public var status: CaseStatus
    /// Worst NMSE over the case's float outputs (nil when there were none or it did not run).
    public var nmse: Double?
    public var threshold: Double?
    public var seed: UInt64
    /// Why it failed, was unsupported or is expected to fail.
    public var message: String?
    /// How the device runs it: native, or emulated with the reason.
    public var support: String?
    /// The code path the device took, in its words (``Device/path(of:inputs:)``).
    public var path: String?

    /// Creates a result.
    public init(kernel: String, device: String, dtype: String, shape: String, status: CaseStatus, nmse: Double? = nil,
                threshold: Double? = nil, seed: UInt64, message: String? = nil, support: String? = nil) {
        self.kernel = kernel; self.device = device; self.dtype = dtype; self.shape = shape; self.status = status
        self.nmse = nmse; self.threshold = threshold; self.seed = seed; self.message = message; self.support = support
    }
}

/// Expected failures of one backend, each with its reason. Keys are `kernel` or
/// `kernel/dtype` (kebab-case kernel names).
public struct ExpectedFailures: Sendable {
    public var entries: [String: String]
    /// Creates a manifest.
    public init(_ entries: [String: String] = [:]) { self.entries = entries }
    /// The reason `kernel` in `dtype` is expected to fail, if it is.
    public func reason(_ kernel: String, _ dtype: DType) -> String? {
        entries["\(kernel)/\(dtype)"] ?? entries[kernel]
    }
}

/// A whole run: every case on every device.
public struct ConformanceReport: Sendable, Codable {
    public var results: [CaseResult]

    /// Creates a report from case results.
    public init(results: [CaseResult]) { self.results = results }

    /// Whether the run should exit non-zero: any fail or unexpected pass.
    public var failed: Bool { results.contains { $0.status == .fail || $0.status == .xpass } }

    /// Count per status.
    public func count(_ s: CaseStatus) -> Int { results.filter { $0.status == s }.count }
}
