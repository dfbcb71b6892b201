import Foundation
import PolychipCore
import PolychipSimulated

// The simulator's timeline: one virtual clock per device of the stage, per-name time
// accounts, trace slices, and collectives as barriers over groups of devices.
extension ModelSimulator {
    mutating func nameID(_ name: String, _ group: String) -> Int {
        if let i = nameIndex[name] { return i }
        let i = names.count
        names.append(name); nameGroup.append(group); nameIndex[name] = i
        for r in tl.acc.indices { tl.acc[r] += [0, 0, 0, 0, 0] }
        return i
    }

    mutating func compute(_ r: Int, _ id: Int, _ t: OpTime, layer: Int) {
        let start = tl.clock[r]
        tl.clock[r] += t.total
        tl.acc[r][id * 5 + 2] += t.launch
        tl.acc[r][id * 5 + (t.computeBound ? 0 : 1)] += t.busy
        if tl.slices != nil {
            tl.slices!.append(TraceSlice(device: tl.ranksBase + r, name: names[id], group: nameGroup[id], layer: layer,
                                         start: tl.offset + start, seconds: t.total, bound: t.total > 0 && t.launch >= t.busy ? "launch" : (t.computeBound ? "compute" : "memory")))
        }
    }

    /// A collective over disjoint groups of stage ranks, all issued at once: each group starts
    /// when its last member arrives; member `i` of a group finishes `times[g][i]` later.
    mutating func collective(_ groups: [[Int]], _ times: [[Double]], _ id: Int, layer: Int) {
        let waitID = nameID("wait for slower devices", "load imbalance")
        for (g, members) in groups.enumerated() {
            let start = members.reduce(0.0) { max($0, tl.clock[$1]) }
            for (i, r) in members.enumerated() {
                let wait = start - tl.clock[r]
                tl.acc[r][waitID * 5 + 4] += wait
                tl.acc[r][id * 5 + 3] += times[g][i]
                if tl.slices != nil, times[g][i] > 0 {
                    tl.slices!.append(TraceSlice(device: tl.ranksBase + r, name: names[id], group: nameGroup[id], layer: layer,
                                                 start: tl.offset + start, seconds: times[g][i], bound: "communication"))
                }
                tl.clock[r] = start + times[g][i]
            }
        }
    }

    /// Model device index (node · profile devices-per-node + local) of stage rank `r` in stage `s`.
    func globalIndex(stage s: Int, rank r: Int) -> Int {
        let g = s * req.plan.stageSize + r
        return (g / req.devicesPerNode) * req.profile.interconnect.devicesPerNode.value + g % req.devicesPerNode
    }

    mutating func collectiveTimes(_ op: CollectiveOperation, bytes: Double, group: [Int]) throws -> [Double] {
        guard group.count > 1, bytes > 0 else { return [Double](repeating: 0, count: group.count) }
        let key = "\(op.rawValue)|\(bytes)|\(group)"
        if let hit = collCache[key] { return hit }
        do {
            let c = try model.collective(op, bytes: bytes, group: group)
            let times = group.indices.map { $0 < c.perDevice.count ? c.perDevice[$0] : c.total }
            collCache[key] = times
            return times
        } catch {
            throw PolychipError.collectiveMismatch(collective: op.rawValue, reason: "\(error)")
        }
    }

    /// An all-to-all; with a `phase`, expert dispatch or combine of rows of `messageBytes`,
    /// priced with the profile's all-to-all tuning for the phase (CollectiveTuning.swift).
    func allToAllTimes(_ bytes: [[Double]], group: [Int], messageBytes: Double = 1, phase: ExpertPhase? = nil) throws -> [Double] {
        guard group.count > 1 else { return [0] }
        do {
            let c = try phase.map { try model.expertAllToAll(bytes: bytes, group: group, messageBytes: messageBytes, phase: $0) }
                ?? model.allToAll(bytes: bytes, group: group)
            return group.indices.map { $0 < c.perDevice.count ? c.perDevice[$0] : c.total }
        } catch {
            throw PolychipError.collectiveMismatch(collective: "all-to-all", reason: "\(error)")
        }
    }
}
