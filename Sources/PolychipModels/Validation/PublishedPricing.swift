// PublishedPricing.swift — turns a published record into two times: the published one (the
// figure converted with the record's own definition of FLOPs or counted bytes) and the one
// the profile's time model predicts for the same setting. Errors are modeled/published − 1,
// as in `bench --validate`.

import Foundation
import PolychipCore
import PolychipSimulated

/// Converts records to published and modeled seconds.
public enum PublishedPricing {
    /// FLOPs of a setting (nil for collectives and exchanges).
    public static func flops(_ s: RecordSetting) -> Double? {
        switch s {
        case .gemm(let g):
            return 2 * Double(g.m) * Double(g.n) * Double(g.k) * Double(g.groups ?? 1)
        case .attention(let a):
            let pairs: Double
            if a.causal {
                // Query i (aligned to the end of the keys) sees seqK − seqQ + i + 1 keys.
                let q = Double(a.seqQ), k = Double(a.seqK)
                pairs = q * (k - q) + q * (q + 1) / 2
            } else {
                pairs = Double(a.seqQ) * Double(a.seqK)
            }
            return 2 * Double(a.batch) * Double(a.heads) * Double(a.headDimQK + a.headDimV) * pairs
        case .sparseAttention(let a):
            return 2 * Double(a.batch) * Double(a.seqQ) * Double(a.heads) * Double(a.topk) * Double(a.headDimQK + a.headDimV)
        case .stream(let s):
            return s.elements * s.flopsPerElement
        case .collective, .expertAllToAll:
            return nil
        }
    }

    static func elementBytes(_ d: String) -> Double {
        Double(ProfileDType(rawValue: d)?.bitWidth ?? 16) / 8
    }

    /// The kernel-cost query of a kernel setting (nil for collectives and exchanges).
    public static func query(_ s: RecordSetting) -> KernelCostQuery? {
        guard let f = flops(s) else { return nil }
        switch s {
        case .gemm(let g):
            let e = elementBytes(g.dtype), gr = Double(g.groups ?? 1), ob = g.outputBytes ?? 2
            let write = gr * Double(g.m) * Double(g.n) * ob
            let read = gr * (Double(g.m) * Double(g.k) + Double(g.n) * Double(g.k)) * e
            let one = PolychipSimulated.GemmShape(m: g.m, n: g.n, k: g.k, batch: 1)
            let shape: KernelShape = (g.groups ?? 1) > 1 ? .groupedGemm([PolychipSimulated.GemmShape](repeating: one, count: g.groups ?? 1)) : .gemm(one)
            return KernelCostQuery(name: "gemm", unit: .matrix, dtype: ProfileDType(rawValue: g.dtype) ?? .bf16, flops: f,
                                   bytes: read + write, shape: shape, kernelClass: .gemm, writeBytes: write)
        case .attention(let a):
            let e = elementBytes(a.dtype), bh = Double(a.batch * a.heads)
            let write = bh * Double(a.seqQ * a.headDimV) * e
            let read = bh * Double(a.seqQ * a.headDimQK + a.seqK * (a.headDimQK + a.headDimV)) * e
            return KernelCostQuery(name: "attention", unit: .matrix, dtype: ProfileDType(rawValue: a.dtype) ?? .bf16, flops: f,
                                   bytes: read + write, kernelClass: .attention, writeBytes: write)
        case .sparseAttention(let a):
            let q = Double(a.batch * a.seqQ)
            let write = q * Double(a.heads * a.headDimV) * 2
            let read = q * Double(a.topk) * a.kvBytesPerToken + q * Double(a.heads * a.headDimQK) * 2
            return KernelCostQuery(name: "sparse-attention", unit: .matrix, dtype: ProfileDType(rawValue: a.dtype) ?? .bf16, flops: f,
                                   bytes: read + write, kernelClass: .sparseAttention, writeBytes: write)
        case .stream(let s):
            return KernelCostQuery(name: "stream", unit: .vector, dtype: ProfileDType(rawValue: s.dtype) ?? .f32, flops: f,
                                   bytes: s.elements * (s.readBytesPerElement + s.writeBytesPerElement),
                                   kernelClass: .elementwise, writeBytes: s.elements * s.writeBytesPerElement)
        case .collective, .expertAllToAll:
            return nil
        }
    }

    /// The sampled routing of an expert all-to-all record (nil for other kinds); sample once
    /// and pass it to both `publishedSeconds` and `modeledSeconds`.
    public static func traffic(_ r: PublishedRecord, profile: DeviceProfile, seed: UInt64) -> ExpertTraffic? {
        guard case .expertAllToAll(let e) = r.setting else { return nil }
        return ExpertRouting.sample(e, devicesPerNode: profile.interconnect.devicesPerNode.value, seed: seed)
    }

    /// The published figure as seconds, with the setting's definition of FLOPs or counted bytes.
    public static func publishedSeconds(_ r: PublishedRecord, profile: DeviceProfile, traffic: ExpertTraffic?) -> Double? {
        let v = r.published.value
        switch r.published.unit {
        case "us": return v * 1e-6
        case "ms": return v * 1e-3
        case "s": return v
        case "TFLOPS":
            guard let f = flops(r.setting) else { return nil }
            return f / (v * 1e12)
        case "GB/s":
            guard let b = countedBytes(r.setting, profile: profile, traffic: traffic) else { return nil }
            return b / (v * 1e9)
        default:
            return nil
        }
    }

    /// The bytes a published bandwidth counts.
    static func countedBytes(_ s: RecordSetting, profile: DeviceProfile, traffic: ExpertTraffic?) -> Double? {
        switch s {
        case .stream(let st):
            return st.elements * st.countedBytesPerElement
        case .collective(let c):
            let p = Double(c.devices)
            guard c.counted == "busbw" else { return c.bytes }
            return c.bytes * (c.operation == "allReduce" ? 2 * (p - 1) / p : (p - 1) / p)
        case .expertAllToAll(let e):
            guard let unit = e.countedUnit, let per = e.countedBytesPerUnit, let t = traffic else { return nil }
            return ExpertRouting.countedUnits(t, unit: unit, epSize: e.epSize, devicesPerNode: profile.interconnect.devicesPerNode.value) * per
        case .gemm, .attention, .sparseAttention:
            return nil
        }
    }

    /// The time the profile predicts for the setting, seconds.
    public static func modeledSeconds(_ r: PublishedRecord, model: TimeModel, traffic: ExpertTraffic?) throws -> Double {
        if let q = query(r.setting) { return try model.kernelTime(q).total }
        switch r.setting {
        case .collective(let c):
            let op: CollectiveOperation = c.operation == "allReduce" ? .allReduce : .allGather
            return try model.collective(op, bytes: c.bytes, group: Array(0..<c.devices)).total
        case .expertAllToAll(let e):
            guard let t = traffic else {
                throw PolychipError.invalidArgument(kernel: "simulate --validate", argument: r.id, reason: "no routing sample for an expert all-to-all")
            }
            let scheme = ExpertExchangeScheme(rawValue: e.scheme) ?? .perExpert
            return try model.expertExchange(t, scheme: scheme, phase: e.phase == "combine" ? .combine : .dispatch, balanced: true).total
        default:
            throw PolychipError.invalidArgument(kernel: "simulate --validate", argument: r.id, reason: "no pricing for kind \(r.setting.kind)")
        }
    }
}

/// The routing the expert-parallel benchmarks use: iid random scores per (token, expert) and
/// the top-k (DeepEP and DeepEP-Ascend tests), optionally limited to the `topkGroups` node
/// groups with the highest group maximum (DeepEP's internode test). Seeded; at most
/// `maxSampledTokens` tokens in all, each standing for `tokensPerRank / sampled` real ones.
/// Records are priced on the expected (balanced) traffic of the sample, so the cap adds no
/// load imbalance that a full-size run would not have.
public enum ExpertRouting {
    /// Upper bound on sampled tokens over all ranks.
    public static let maxSampledTokens = 8192

    /// Samples the traffic of a setting (dispatch direction).
    public static func sample(_ e: RecordSetting.ExpertAllToAll, devicesPerNode: Int, seed: UInt64) -> ExpertTraffic {
        var rng = SplitMix64(seed: seed)
        let perRank = e.experts / e.epSize
        let sampled = max(1, min(e.tokensPerRank, maxSampledTokens / e.epSize))
        let nodes = max(1, (e.epSize + devicesPerNode - 1) / devicesPerNode)
        let groupSize = e.experts / nodes
        var dest: [[[Int]]] = []
        let limited = (e.topkGroups.map { $0 < nodes } ?? false) && nodes > 1 && e.experts % nodes == 0
        var scores = [UInt64](repeating: 0, count: e.experts)
        var pool = Array(0..<e.experts)
        for _ in 0..<e.epSize {
            var tokens: [[Int]] = []
            tokens.reserveCapacity(sampled)
            for _ in 0..<sampled {
                var chosen: [Int] = []
                chosen.reserveCapacity(e.topK)
                if limited, let g = e.topkGroups {
                    // iid scores: keep the g groups with the highest maximum, then the top k in them.
                    for x in 0..<e.experts { scores[x] = rng.next() }
                    var maxima: [(UInt64, Int)] = []
                    for n in 0..<nodes {
                        var m: UInt64 = 0
                        for x in (n * groupSize)..<((n + 1) * groupSize) where scores[x] > m { m = scores[x] }
                        maxima.append((m, n))
                    }
                    let keep = maxima.sorted { $0.0 > $1.0 }.prefix(g).map(\.1)
                    var best: [(UInt64, Int)] = []
                    for n in keep {
                        for x in (n * groupSize)..<((n + 1) * groupSize) {
                            if best.count < e.topK { best.append((scores[x], x)); best.sort { $0.0 > $1.0 } }
                            else if scores[x] > best[e.topK - 1].0 { best[e.topK - 1] = (scores[x], x); best.sort { $0.0 > $1.0 } }
                        }
                    }
                    chosen = best.map(\.1)
                } else {
                    // The top k of iid scores is a uniform k-subset: a partial Fisher–Yates shuffle.
                    for i in 0..<e.topK {
                        let j = i + Int(rng.next() % UInt64(e.experts - i))
                        pool.swapAt(i, j)
                        chosen.append(pool[i])
                    }
                }
                tokens.append(chosen.map { $0 / perRank })
            }
            dest.append(tokens)
        }
        return ExpertTraffic(destinations: dest, bytesPerMessage: e.bytesPerMessage,
                             tokenWeight: Double(e.tokensPerRank) / Double(sampled))
    }

    /// Counted units per rank (averaged over ranks) under a counting rule.
    public static func countedUnits(_ t: ExpertTraffic, unit: String, epSize: Int, devicesPerNode: Int) -> Double {
        let per = max(devicesPerNode, 1)
        var total = 0.0
        switch unit {
        case "selections":
            total = t.destinations.reduce(0) { $0 + $1.reduce(0) { $0 + Double($1.count) } }
        case "rankRows":
            total = t.destinations.reduce(0) { $0 + $1.reduce(0) { $0 + Double(Set($1).count) } }
        case "nodeRows":
            total = t.destinations.reduce(0) { $0 + $1.reduce(0) { $0 + Double(Set($1.map { $0 / per }).count) } }
        case "expertRows":
            total = t.destinations.reduce(0) { $0 + $1.reduce(0) { $0 + Double($1.count) } }
        default:
            return 0
        }
        return total * t.tokenWeight / Double(max(epSize, 1))
    }
}
