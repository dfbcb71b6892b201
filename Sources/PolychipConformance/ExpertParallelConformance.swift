import PolychipCore
import PolychipModels
import PolychipReference

/// Conformance of the expert-parallel MoE layer (``ExpertParallelMoE``) on a mesh: the same
/// seeded inputs through the single-device reference `moeLayer` and through the layer sharded
/// over the mesh's ranks, compared under the `moeLayer` tolerance (docs/kernels.md).
public enum ExpertParallelConformance {
    /// The kernel name results carry.
    public static let kernelName = "moe-layer-ep"

    /// The most ranks (and, separately, spares) one mesh of `polychip conform
    /// --expert-parallel` may have: each simulated rank is a fresh device with its own
    /// buffers, and the cases have 16 experts, so ranks past that hold none and test nothing new.
    public static let maxRanks = 256

    /// The cases: the `moeLayer` conformance cases plus expert-parallel ones with more experts
    /// than ranks (16), an uneven token split (13 tokens), group-limited sigmoid routing with a
    /// selection bias, float and INT4 (symmetric and asymmetric) experts and a shared expert.
    public static func cases(dtype: DType, seed: UInt64) throws -> [ConformanceCase] {
        var out = try CaseGenerator.cases(.moeLayer, dtype: dtype, seed: seed)
        let router = RouterParams(scoring: .sigmoid, topK: 4, nGroup: 4, topkGroup: 2, renormalize: true, routedScale: 2.5, hasBias: true)
        let configs: [(Int, Int, Int, Int, Int, ExpertFormat)] = [
            (13, 32, 16, 16, 16, .float),
            (13, 32, 16, 16, 16, .int4(Int4Format(groupSize: 16, symmetric: true))),
            (9, 16, 8, 16, 8, .int4(Int4Format(groupSize: 8, symmetric: false))),
        ]
        for (t, h, f, e, fs, fmt) in configs {
            let p = MoELayerParams(router: router, experts: fmt, hasShared: true)
            let fmtName: String = { if case .int4(let x) = fmt { return " int4 \(x)" }; return "" }()
            let label = "EP T\(t) H\(h) F\(f) E\(e) k\(router.topK) g\(router.nGroup)/\(router.topkGroup) shared\(fs)\(fmtName)"
            let s = caseSeed(seed, kernelName, dtype.rawValue, label)
            var r = SeededRandom(seed: s)
            func fl(_ shape: [Int], _ lo: Float = 0.05, _ hi: Float = 1) throws -> HostTensor {
                try HostTensor(shape, dtype, floats: r.floats(shape.reduce(1, *), lo, hi))
            }
            var ins = [try fl([t, h]), try fl([e, h])]
            ins.append(try HostTensor([e], .f32, floats: r.floats(e, 0.001, 0.1)))
            for (n, k) in [(f, h), (f, h), (h, f)] {
                switch fmt {
                case .float: ins.append(try fl([e, n, k], 0.05, 0.5))
                case .int4(let x): ins += try CaseGenerator.int4Weights([e], n, k, x, &r)
                }
            }
            ins += [try fl([fs, h], 0.05, 0.5), try fl([fs, h], 0.05, 0.5), try fl([h, fs], 0.05, 0.5)]
            out.append(ConformanceCase(op: .moeLayer(p), inputs: ins, dtype: dtype, label: label, seed: s))
        }
        return out
    }

    /// A case with its reference output, computed once and reused for every mesh.
    public struct PreparedCase: Sendable {
        /// The case (a `moeLayer` op and its inputs).
        public var testCase: ConformanceCase
        /// The layer's parameters.
        public var params: MoELayerParams
        /// The reference output, or why the reference could not produce it.
        public var expected: Result<HostTensor, PolychipError>
    }

    /// Generates the cases for `dtypes` and evaluates the reference on each.
    public static func prepare(dtypes: [DType] = DType.floats, seed: UInt64 = 0x5EED) throws -> [PreparedCase] {
        var out: [PreparedCase] = []
        for dt in dtypes {
            for c in try cases(dtype: dt, seed: seed) {
                guard case .moeLayer(let p) = c.op else { continue }
                let expected: Result<HostTensor, PolychipError>
                do { expected = .success(try Reference.evaluate(c.op, c.inputs)[0]) } catch let e as PolychipError {
                    expected = .failure(e)
                } catch {
                    expected = .failure(.invalidTensor(reason: "\(error)"))
                }
                out.append(PreparedCase(testCase: c, params: p, expected: expected))
            }
        }
        return out
    }

    /// Runs every case (each with a shared expert once locally and once tensor-parallel) on
    /// `mesh`, comparing with the reference `moeLayer`.
    public static func run(mesh: Mesh, dtypes: [DType] = DType.floats, seed: UInt64 = 0x5EED) -> [CaseResult] {
        do { return run(mesh: mesh, prepared: try prepare(dtypes: dtypes, seed: seed)) } catch {
            return [CaseResult(kernel: kernelName, device: meshLabel(mesh), dtype: "-", shape: "-", status: .fail,
                               seed: seed, message: "case generation failed: \(error)")]
        }
    }

    /// Runs prepared cases on `mesh` (the reference outputs are reused, so several meshes cost
    /// one reference evaluation per case), each under `retry` with `spares` replacing lost
    /// devices; failed attempts go to `log`.
    public static func run(mesh: Mesh, prepared: [PreparedCase], retry: RetryPolicy = .none, spares: [any Device] = [],
                           log: RetryLog = RetryLog()) -> [CaseResult] {
        let label = meshLabel(mesh)
        var results: [CaseResult] = []
        var current = (mesh: mesh, spares: spares)
        for pc in prepared {
            let variants: [ExpertParallelOptions] = pc.params.hasShared
                ? [.init(retry: retry), .init(sharedTensorParallel: true, retry: retry)] : [.init(retry: retry)]
            for v in variants {
                let (result, after) = runCase(pc.testCase, params: pc.params, on: current, options: v, label: label,
                                              expected: pc.expected, log: log)
                results.append(result)
                current = after
            }
        }
        return results
    }

    /// Runs one case; returns its result and the mesh and spares the next case should use (a
    /// lost device stays lost, so after a failover later cases run on the spare that replaced it).
    static func runCase(_ c: ConformanceCase, params p: MoELayerParams, on placement: (mesh: Mesh, spares: [any Device]),
                        options: ExpertParallelOptions, label: String?, expected known: Result<HostTensor, PolychipError>?,
                        log: RetryLog) -> (CaseResult, (mesh: Mesh, spares: [any Device])) {
        let mesh = placement.mesh
        let shape = "P\(mesh.size) \(c.label)\(options.sharedTensorParallel ? " shared-TP" : "")"
        var r = CaseResult(kernel: kernelName, device: label ?? meshLabel(mesh), dtype: c.dtype.rawValue, shape: shape,
                           status: .fail, threshold: OpKind.moeLayer.tolerance(c.dtype), seed: c.seed, support: "native")
        var layer: ExpertParallelMoE? = nil
        do {
            let expected = try known?.get() ?? Reference.evaluate(c.op, c.inputs)[0]
            let logged = log.attempts.count
            let built = try ExpertParallelMoE(mesh: mesh, params: p, weights: Array(c.inputs.dropFirst()), options: options,
                                              spares: placement.spares, log: log)
            layer = built
            let step = try built.forward(c.inputs[0])
            let verdict = verify(step.output, expected: expected, dtype: c.dtype)
            r.nmse = verdict.nmse
            if let why = verdict.failure { r.message = why } else { r.status = .pass }
            let failed = log.attempts.count - logged
            if failed > 0 {
                let note = "\(failed) failed attempt\(failed == 1 ? "" : "s") retried; ran on \(step.devices.joined(separator: ","))"
                r.message = r.message.map { "\($0); \(note)" } ?? note
            }
        } catch {
            r.message = "threw: \(error)"
        }
        guard let now = layer?.mesh, now !== mesh else { return (r, placement) }
        let used = Set(now.devices.map(\.id))
        return (r, (now, placement.spares.filter { !used.contains($0.id) }))
    }

    /// Runs one case on `mesh` (with `spares` replacing lost devices; failed attempts go to `log`).
    public static func runCase(_ c: ConformanceCase, params p: MoELayerParams, mesh: Mesh, options: ExpertParallelOptions,
                               label: String? = nil, expected known: Result<HostTensor, PolychipError>? = nil,
                               spares: [any Device] = [], log: RetryLog = RetryLog()) -> CaseResult {
        runCase(c, params: p, on: (mesh, spares), options: options, label: label, expected: known, log: log).0
    }

    /// Compares a layer output with the reference `moeLayer` output under the `moeLayer`
    /// tolerance for `dtype` (docs/kernels.md): the NMSE when it could be computed, and why the
    /// output fails (nil when it passes).
    public static func verify(_ output: HostTensor, expected: HostTensor, dtype: DType) -> (nmse: Double?, failure: String?) {
        guard output.desc == expected.desc else { return (nil, "output is \(output.desc), expected \(expected.desc)") }
        switch Comparison.floatNMSE(expected.floats, output.floats) {
        case .failure(let why): return (nil, why)
        case .value(let v): return (v, v > OpKind.moeLayer.tolerance(dtype) ? "NMSE \(v)" : nil)
        }
    }

    /// `cpu:0×8` for a device repeated at every rank, else the ids joined.
    static func meshLabel(_ mesh: Mesh) -> String {
        let ids = mesh.devices.map(\.id)
        if Set(ids).count == 1, let first = ids.first { return "\(first)×\(ids.count)" }
        return ids.joined(separator: ",")
    }
}
