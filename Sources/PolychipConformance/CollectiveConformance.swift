import PolychipCore

/// Conformance of the collectives on a mesh built from the given devices (a single
/// device is used at three ranks).
public enum CollectiveConformance {
    /// Runs all-reduce, all-gather, reduce-scatter and all-to-all cases per float dtype.
    public static func run(devices: [any Device], seed: UInt64) -> [CaseResult] {
        let ranks = devices.count == 1 ? Array(repeating: devices[0], count: 3) : devices
        let p = ranks.count
        let label = ranks.map(\.id).joined(separator: ",")
        var results: [CaseResult] = []
        for dt in DType.floats {
            var rng = SeededRandom(seed: caseSeed(seed, "collectives", dt.rawValue))
            let counts = (0..<p).map { _ in (0..<p).map { _ in rng.int(0..<4) } }
            let cases: [(Collective, [Int])] = [(.allReduce, [5, 7]), (.allGather, [3, 4]), (.reduceScatter, [2 * p, 3]), (.allToAll(counts: counts), [0, 6])]
            for (coll, shape) in cases {
                var r = CaseResult(kernel: coll.description, device: label, dtype: dt.rawValue, shape: "P\(p) \(shape)",
                                   status: .fail, threshold: OpKind.add.tolerance(dt), seed: seed, support: "native")
                do {
                    let inputs = try caseInputs(coll, shape: shape, ranks: p, dtype: dt, rng: &rng)
                    let expected = try coll.evaluate(inputs)
                    let mesh = try Mesh(devices: ranks)
                    let got = try mesh.run(coll, inputs)
                    var worst = 0.0
                    var failure: String? = nil
                    for (i, (e, g)) in zip(expected, got).enumerated() {
                        switch Comparison.floatNMSE(e.floats, g.floats) {
                        case .failure(let why): failure = "rank \(i): \(why)"
                        case .value(let v): worst = max(worst, v); if v > r.threshold! { failure = "rank \(i): NMSE \(v)" }
                        }
                    }
                    r.nmse = worst
                    if let failure { r.message = failure } else { r.status = .pass }
                } catch {
                    r.message = "threw: \(error)"
                }
                results.append(r)
            }
        }
        return results
    }

    /// Every rank's seeded input of a collective case: `shape` (all-to-all: with dimension 0
    /// set to the rank's row total).
    static func caseInputs(_ coll: Collective, shape: [Int], ranks p: Int, dtype: DType, rng: inout SeededRandom) throws -> [HostTensor] {
        try (0..<p).map { i in
            var s = shape
            if case .allToAll(let c) = coll { s[0] = c[i].reduce(0, +) }
            return try HostTensor(s, dtype, floats: rng.floats(s.reduce(1, *)))
        }
    }
}
