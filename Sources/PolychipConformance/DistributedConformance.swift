import Foundation
import PolychipCore
import PolychipModels
import PolychipReference

/// Conformance across the ranks of a ``ProcessGroup`` (one process and device per rank, e.g. an
/// MPI job). Every rank generates every rank's seeded inputs, runs its own part and checks its
/// own result, so each case is checked on every rank; ``gather(_:group:)`` collects the results.
public enum DistributedConformance {
    /// `mpi 1/4 cpu:0`.
    public static func label(_ group: any ProcessGroup, _ device: any Device, transport: String = "mpi") -> String {
        "\(transport) \(group.rank)/\(group.size) \(device.id)"
    }

    /// All-reduce, all-gather, reduce-scatter and all-to-all(v) per dtype, at small shapes and at
    /// shapes of tens to hundreds of kilobytes (several message segments), with uneven blocks
    /// and all-to-all counts that include zeros. A rank's result must equal
    /// ``Collective/evaluate(_:accumulation:)`` with the group's accumulation bit for bit, and
    /// ``Collective/evaluate(_:)`` (f64 sums) bit for bit where the order allows it (data
    /// movement, and sums of two f32 ranks) and within the `add` tolerance elsewhere; the
    /// output's guard regions and the input must be intact.
    /// `kernels` restricts the run to some collectives by name (`all-reduce`, …; nil: all).
    public static func collectives(group: any ProcessGroup, device: any Device, dtypes: [DType] = DType.floats,
                                   kernels: Set<String>? = nil, seed: UInt64, transport: String = "mpi") -> [CaseResult] {
        let p = group.size, me = group.rank
        let dev = label(group, device, transport: transport)
        var results: [CaseResult] = []
        for dt in dtypes {
            var rng = SeededRandom(seed: caseSeed(seed, "distributed-collectives", dt.rawValue, "\(p)"))
            let small = (0..<p).map { _ in (0..<p).map { _ in rng.int(0..<4) } }
            let large = (0..<p).map { i in (0..<p).map { j in i == j ? rng.int(0..<50) : (rng.int(0..<4) == 0 ? 0 : rng.int(1..<900)) } }
            let cases: [(Collective, [Int])] = [
                (.allReduce, [5, 7]), (.allReduce, [3, 50_001]),
                (.allGather, [3, 4]), (.allGather, [1001, 37]),
                (.reduceScatter, [2 * p, 3]), (.reduceScatter, [p * 3001, 17]),
                (.allToAll(counts: small), [0, 6]), (.allToAll(counts: large), [0, 40]),
            ]
            for (coll, shape) in cases {
                var r = CaseResult(kernel: coll.description, device: dev, dtype: dt.rawValue, shape: "P\(p) \(shape)",
                                   status: .fail, threshold: OpKind.add.tolerance(dt), seed: seed, support: "native")
                do {
                    // Every case's inputs are drawn, run or not, so a case's data does not depend on the selection.
                    let inputs = try CollectiveConformance.caseInputs(coll, shape: shape, ranks: p, dtype: dt, rng: &rng)
                    if let kernels, !kernels.contains(coll.description) { continue }
                    let exactOrder = try coll.evaluate(inputs, accumulation: group.accumulation)[me]
                    let f64 = try coll.evaluate(inputs)[me]
                    let got = try runGuarded(coll, input: inputs[me], group: group, device: device)
                    let orderAllowsExact = coll == .allGather || coll.isAllToAll || group.accumulation == .f64 || (p <= 2 && dt == .f32)
                    if let why = bitwiseDifference(got, exactOrder) {
                        r.message = "differs from the \(group.accumulation) rank-order result: \(why)"
                    } else if orderAllowsExact, let why = bitwiseDifference(got, f64) {
                        r.message = "differs from Collective.evaluate where the order allows no difference: \(why)"
                    } else {
                        switch Comparison.floatNMSE(f64.floats, got.floats) {
                        case .failure(let why): r.message = why
                        case .value(let v):
                            r.nmse = v
                            if v > r.threshold! { r.message = "NMSE \(v) against Collective.evaluate" } else { r.status = .pass }
                        }
                    }
                } catch {
                    r.message = "threw: \(error)"
                }
                results.append(r)
            }
        }
        return results
    }

    /// Runs one collective with the output between guard regions; checks the guards and that
    /// the input is unchanged, and returns the output.
    static func runGuarded(_ c: Collective, input: HostTensor, group: any ProcessGroup, device: any Device) throws -> HostTensor {
        let guardBytes = 256, fill: UInt8 = 0xA5
        let outDesc = try c.validate(rank: group.rank, of: group.size, input: input.desc)
        let n = try outDesc.checkedByteCount()
        let buffer = try device.allocateBuffer(byteCount: n + 2 * guardBytes)
        let pattern = [UInt8](repeating: fill, count: n + 2 * guardBytes)
        try pattern.withUnsafeBytes { try device.write($0, to: buffer, at: 0) }
        let inT = try device.tensor(input)
        let out = Tensor(desc: outDesc, buffer: buffer, byteOffset: guardBytes)
        _ = try group.run(c, input: inT, output: out, on: device)
        var all = [UInt8](repeating: 0, count: n + 2 * guardBytes)
        try all.withUnsafeMutableBytes { try device.read(from: buffer, at: 0, into: $0) }
        if let i = all.indices.first(where: { ($0 < guardBytes || $0 >= guardBytes + n) && all[$0] != fill }) {
            throw PolychipError.invalidTensor(reason: "rank \(group.rank) wrote outside its output (guard byte \(i < guardBytes ? i - guardBytes : i - guardBytes - n) changed)")
        }
        guard try device.download(inT).bytes == input.bytes else {
            throw PolychipError.invalidTensor(reason: "rank \(group.rank)'s input changed")
        }
        return try HostTensor(outDesc, bytes: Array(all[guardBytes..<(guardBytes + n)]))
    }

    /// Nil when `a` and `b` hold the same bits, else where they first differ.
    static func bitwiseDifference(_ a: HostTensor, _ b: HostTensor) -> String? {
        guard a.desc == b.desc else { return "shape \(a.desc) vs \(b.desc)" }
        guard a.bytes != b.bytes else { return nil }
        let fa = a.floats, fb = b.floats
        let i = zip(fa, fb).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }?.offset ?? 0
        let diff = zip(fa, fb).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        return "\(diff) of \(fa.count) elements, first at \(i): \(fa.isEmpty ? 0 : fa[i]) vs \(fb.isEmpty ? 0 : fb[i])"
    }

    /// The expert-parallel MoE layer across the group (each prepared case; a shared expert once
    /// local and once tensor-parallel), against the reference `moeLayer`, on every rank.
    public static func expertParallel(group: any ProcessGroup, device: any Device,
                                      prepared: [ExpertParallelConformance.PreparedCase], transport: String = "mpi") -> [CaseResult] {
        let dev = label(group, device, transport: transport)
        var results: [CaseResult] = []
        for pc in prepared {
            let c = pc.testCase
            let variants: [ExpertParallelOptions] = pc.params.hasShared ? [.init(), .init(sharedTensorParallel: true)] : [.init()]
            for v in variants {
                var r = CaseResult(kernel: ExpertParallelConformance.kernelName, device: dev, dtype: c.dtype.rawValue,
                                   shape: "P\(group.size) \(c.label)\(v.sharedTensorParallel ? " shared-TP" : "")", status: .fail,
                                   threshold: OpKind.moeLayer.tolerance(c.dtype), seed: c.seed, support: "native")
                do {
                    let expected = try pc.expected.get()
                    let layer = try ExpertParallelMoE(processGroup: group, device: device, params: pc.params,
                                                      weights: Array(c.inputs.dropFirst()), options: v)
                    let step = try layer.forward(c.inputs[0])
                    let verdict = ExpertParallelConformance.verify(step.output, expected: expected, dtype: c.dtype)
                    r.nmse = verdict.nmse
                    if let why = verdict.failure { r.message = why } else { r.status = .pass }
                } catch {
                    r.message = "threw: \(error)"
                }
                results.append(r)
            }
        }
        return results
    }

    /// Every rank's results, in rank order (each rank encodes its own and the group gathers them).
    public static func gather(_ results: [CaseResult], group: any ProcessGroup) throws -> [CaseResult] {
        let enc = JSONEncoder()
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try group.allGather(bytes: Array(try enc.encode(results))).flatMap { try dec.decode([CaseResult].self, from: Data($0)) }
    }
}

extension Collective {
    var isAllToAll: Bool { if case .allToAll = self { return true }; return false }
}
