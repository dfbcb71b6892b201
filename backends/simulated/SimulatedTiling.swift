import PolychipCore
import PolychipCPU

// What a simulated device reports to the conformance suite: the tile granularity of its
// profile where its numerics depend on it (a 16-bit accumulator rounds after every matrix
// tile of K and every vector lane add), plus the tiling of the CPU engine it computes with,
// whose paths its results go through.

extension SimulatedDevice {
    /// The profile's accumulation chunks (where they change results) and the engine's tiling.
    public var tiling: DeviceTiling {
        var own: [KernelTiling] = []
        let kc = max(1, profile.compute.matrix.tile.k), lanes = max(1, profile.compute.vector.tile.n)
        for kind in OpKind.allCases {
            guard case .lowPrecision(let acc) = profile.arithmeticPath(for: kind) else { continue }
            let name = "\(acc) accumulator"
            switch kind {
            case .matmul, .int4Matmul, .groupedMatmul, .int4GroupedMatmul:
                own.append(KernelTiling(kind, [TileBoundary("K", kc, name: "matrix.tile.k (\(name))")]))
            case .attention: own.append(KernelTiling(kind, [TileBoundary("D", kc, name: "matrix.tile.k (\(name), QKᵀ)"),
                                                            TileBoundary("Lk", kc, name: "matrix.tile.k (\(name), PV)")]))
            case .lightningIndexer: own.append(KernelTiling(kind, [TileBoundary("D", kc, name: "matrix.tile.k (\(name))"),
                                                                   TileBoundary("Hi", lanes, name: "vector.tile.n (\(name))")]))
            case .softmax, .rmsNorm, .addRmsNorm: own.append(KernelTiling(kind, [TileBoundary("D", lanes, name: "vector.tile.n (\(name) lanes)")]))
            default: break
            }
        }
        let engine = (try? CPUBackend.engine())?.tiling ?? .none
        var out = DeviceTiling(kernels: own).merged(with: engine)
        out.overrides = "--set compute.matrix.tile.k=N,compute.vector.tile.n=N (numerics); engine: \(engine.overrides ?? "none")"
        return out
    }

    /// The profile's 16-bit accumulator for `kind` when the device computes it in one
    /// (``ArithmeticPath/lowPrecision(_:)``); nil otherwise.
    public func accumulator(for kind: OpKind) -> DType? {
        if case .lowPrecision(let d) = profile.arithmeticPath(for: kind) { return d }
        return nil
    }

    /// The arithmetic path (engine, reference or a 16-bit accumulator) and the engine's path.
    public func path(of op: Op, inputs: [TensorDesc]) -> String? {
        let arithmetic = profile.arithmeticPath(for: op.kind)
        guard case .cpuEngine = arithmetic, let engine = try? CPUBackend.engine() else { return "\(arithmetic)" }
        return engine.path(of: op, inputs: inputs).map { "\(arithmetic): \($0)" } ?? "\(arithmetic)"
    }
}
