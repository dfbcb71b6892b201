import PolychipCore
import PolychipReference

/// What to run.
public struct ConformanceOptions: Sendable {
    /// Kernels to check (nil: all).
    public var kernels: [OpKind]?
    /// Dtypes to check (nil: each kernel's default set).
    public var dtypes: [DType]?
    /// Include the collectives (all-reduce, all-gather, reduce-scatter, all-to-all).
    public var collectives: Bool
    /// Base seed; each case derives its own from it.
    public var seed: UInt64
    /// How many cases: the quick set, or also the device's tiling boundaries and the
    /// adversarial cases (`standard`, the default), or every boundary value (`thorough`).
    public var level: ConformanceLevel
    /// Creates options.
    public init(kernels: [OpKind]? = nil, dtypes: [DType]? = nil, collectives: Bool = true, seed: UInt64 = 0x5EED,
                level: ConformanceLevel = .standard) {
        self.kernels = kernels; self.dtypes = dtypes; self.collectives = collectives; self.seed = seed; self.level = level
    }
}

/// Runs conformance cases on devices and classifies each result.
public enum ConformanceRunner {
    /// Bytes of guard region before and after every output (a multiple of 64 so views stay aligned).
    public static let guardBytes = 256
    static let guardByte: UInt8 = 0x5A

    /// Runs every selected case on `device`. `progress` receives one line per case.
    public static func run(on device: any Device, options: ConformanceOptions = .init(),
                           expected: ExpectedFailures = .init(), progress: (@Sendable (String) -> Void)? = nil) -> [CaseResult] {
        var results: [CaseResult] = []
        let tiling = device.tiling
        for kind in options.kernels ?? OpKind.allCases {
            let dtypes = CaseGenerator.dtypes(for: kind).filter { options.dtypes?.contains($0) ?? true }
            for dt in dtypes {
                let cases: [ConformanceCase]
                var skipped = 0
                do {
                    cases = try CaseGenerator.cases(kind, dtype: dt, seed: options.seed, level: options.level, tiling: tiling, skipped: &skipped)
                } catch {
                    results.append(CaseResult(kernel: kind.name, device: device.id, dtype: dt.rawValue, shape: "-", status: .fail,
                                              seed: options.seed, message: "case generation failed: \(error)"))
                    continue
                }
                for c in cases {
                    let r = classify(runCase(c, on: device), expected: expected.reason(kind.name, dt))
                    progress?("\(r.status.rawValue.uppercased()) \(kind.name) \(dt) \(c.label) on \(device.id)\(r.path.map { " — " + $0 } ?? "")")
                    results.append(r)
                }
                if skipped > 0 {
                    progress?("SKIPPED \(kind.name) \(dt): \(skipped) boundary case(s) over the \(options.level) cost budget")
                }
            }
        }
        return results + collectiveResults(on: device, options: options, expected: expected)
    }

    /// The collectives' cases when `options` asks for them (every kernel, collectives on).
    static func collectiveResults(on device: any Device, options: ConformanceOptions, expected: ExpectedFailures) -> [CaseResult] {
        guard options.collectives && options.kernels == nil else { return [] }
        return CollectiveConformance.run(devices: [device], seed: options.seed).map { r in
            classify(r, expected: expected.reason(r.kernel, DType(rawValue: r.dtype) ?? .f32))
        }
    }

    static func classify(_ r: CaseResult, expected reason: String?) -> CaseResult {
        guard let reason, r.status == .pass || r.status == .fail else { return r }
        var out = r
        out.status = r.status == .pass ? .xpass : .xfail
        out.message = (r.message.map { $0 + "; " } ?? "") + "expected failure: \(reason)"
        return out
    }

    /// Runs one case: reference on the host, the same inputs on the device with guarded
    /// outputs, then the comparison.
    public static func runCase(_ c: ConformanceCase, on device: any Device) -> CaseResult {
        // Only a simulated device's declared numerics widen the bound, never a real device's.
        let accumulator = device.supportsDryRun ? device.accumulator(for: c.op.kind) : nil
        var result = CaseResult(kernel: c.op.kind.name, device: device.id, dtype: c.dtype.rawValue, shape: c.label,
                                status: .fail, threshold: Comparison.tolerance(c, accumulator: accumulator), seed: c.seed)
        result.path = device.path(of: c.op, inputs: c.inputs.map(\.desc))
        // Validated once: the support query and the device call use this (an invalid case is
        // unsupported with the reason, as `support(for:inputs:)` says).
        let call: ValidatedCall
        do { call = try c.op.validated(c.inputs.map(\.desc)) } catch {
            result.status = .unsupported
            result.support = Support.unsupported("invalid call: \(error)").description
            result.message = "invalid call: \(error)"
            return result
        }
        let support = device.support(for: call)
        result.support = support.description
        if case .unsupported(let why) = support {
            result.status = .unsupported
            result.message = why
            return result
        }
        do {
            let expected = try Reference.evaluate(c.op, c.inputs)
            let ins = try c.inputs.map { try c.offsetViews ? offsetView($0, on: device) : poisonedTail($0, on: device) }
            let outs = try expected.map { try guardedOutput($0.desc, on: device) }
            try Queue(device: device).enqueue(call, inputs: ins, outputs: outs.map(\.tensor))
            var got: [HostTensor] = []
            for (i, o) in outs.enumerated() {
                let (value, damaged) = try readGuarded(o, on: device)
                if let damaged {
                    result.message = "\(c.op.outputNames[i]): wrote outside its output (\(damaged))"
                    return result
                }
                got.append(value)
            }
            for (i, t) in ins.enumerated() where try device.download(t) != c.inputs[i] {
                result.message = "input '\(c.op.inputNames[i])' was modified"
                return result
            }
            let outcome = Comparison.compare(c, expected: expected, got: got, accumulator: accumulator)
            result.nmse = outcome.nmse
            if let f = outcome.failure { result.message = f } else { result.status = .pass; result.message = outcome.note }
        } catch PolychipError.unsupported(_, _, let why) {
            // A shape beyond what the device runs (head dims past its local memory): lost
            // coverage, reported as such, never a pass.
            result.status = .unsupported
            result.message = why
        } catch {
            result.message = "threw: \(error)"
        }
        return result
    }

    /// Uploads `host` as a view at an odd element offset (plus 64 bytes) inside a larger
    /// buffer whose other bytes hold a pattern, so a kernel that ignores the offset reads
    /// the pattern.
    static func offsetView(_ host: HostTensor, on device: any Device) throws -> Tensor {
        let n = try host.desc.checkedByteCount()
        let offset = 64 + 3 * max(1, host.desc.dtype.bitWidth / 8)
        let buffer = try device.allocateBuffer(byteCount: n + offset + 64)
        var bytes = [UInt8](repeating: poison(host.desc.dtype), count: n + offset + 64)
        bytes.replaceSubrange(offset..<(offset + n), with: host.bytes)
        try bytes.withUnsafeBytes { try device.write($0, to: buffer, at: 0) }
        return Tensor(desc: host.desc, buffer: buffer, byteOffset: offset)
    }

    /// An input followed by `inputTailBytes` of poison in the same buffer: a kernel that
    /// reads past the end of an input (a vector load over a K tail, a row overrun) picks up
    /// NaN for a float input, which survives a multiplication by a zero-padded operand, so
    /// the case fails instead of passing on whatever memory happened to follow.
    static func poisonedTail(_ host: HostTensor, on device: any Device) throws -> Tensor {
        let n = try host.desc.checkedByteCount()
        let buffer = try device.allocateBuffer(byteCount: n + inputTailBytes)
        var bytes = host.bytes
        bytes += [UInt8](repeating: poison(host.desc.dtype), count: inputTailBytes)
        try bytes.withUnsafeBytes { try device.write($0, to: buffer, at: 0) }
        return Tensor(desc: host.desc, buffer: buffer, byteOffset: 0)
    }

    /// Bytes of poison after every input.
    static let inputTailBytes = 256

    /// The byte inputs are surrounded with: NaN (all ones) for float dtypes, a large
    /// out-of-range pattern for integers (data-dependent inputs are validated on the data).
    static func poison(_ dtype: DType) -> UInt8 { dtype.isFloat ? 0xFF : 0x7B }

    struct Guarded { var tensor: Tensor; var buffer: any DeviceBuffer; var bytes: Int; var fill: UInt8 }

    /// An output view with guard regions on both sides; the body is pre-filled with a
    /// pattern (NaN bytes for floats) so unwritten elements show up as failures.
    static func guardedOutput(_ desc: TensorDesc, on device: any Device) throws -> Guarded {
        let n = try desc.checkedByteCount()
        let buffer = try device.allocateBuffer(byteCount: n + 2 * guardBytes)
        let fill: UInt8 = desc.dtype.isFloat ? 0xFF : 0xA5
        let init0 = [UInt8](repeating: guardByte, count: guardBytes) + [UInt8](repeating: fill, count: n)
            + [UInt8](repeating: guardByte, count: guardBytes)
        try init0.withUnsafeBytes { try device.write($0, to: buffer, at: 0) }
        return Guarded(tensor: Tensor(desc: desc, buffer: buffer, byteOffset: guardBytes), buffer: buffer, bytes: n, fill: fill)
    }

    /// Reads a guarded output; returns its value and a description of guard damage, if any.
    static func readGuarded(_ g: Guarded, on device: any Device) throws -> (HostTensor, String?) {
        var all = [UInt8](repeating: 0, count: g.bytes + 2 * guardBytes)
        try all.withUnsafeMutableBytes { try device.read(from: g.buffer, at: 0, into: $0) }
        let before = all[0..<guardBytes], after = all[(guardBytes + g.bytes)...]
        var damage: String? = nil
        if let i = before.firstIndex(where: { $0 != guardByte }) { damage = "\(guardBytes - i) bytes before the start" }
        else if let i = after.firstIndex(where: { $0 != guardByte }) { damage = "byte \(i - guardBytes - g.bytes) past the end" }
        return (try HostTensor(g.tensor.desc, bytes: Array(all[guardBytes..<(guardBytes + g.bytes)])), damage)
    }
}
