// ProfileValidation.swift — semantic validation of a decoded profile (figures in range,
// consistent with each other).

import Foundation
import PolychipCore

// MARK: - Semantic validation

extension DeviceProfile {
    /// Checks every figure for meaning: positive rates and bandwidths, efficiencies in (0, 1],
    /// non-negative overheads and latencies, tiles ≥ 1, valid dtype keys, emulation chains that
    /// end, a consistent interconnect (twoLevel has a node topology and an inter-node network;
    /// a full mesh has at least one link per peer), fault probabilities in [0, 1], and a source
    /// on every figure. Called by every loader; call it yourself on a profile built in code.
    /// - Throws: the first `ProfileError` found.
    public func validate() throws(ProfileError) {
        let v = ProfileValidator(file: origin)
        try v.check(schemaVersion == 1, "schemaVersion", "\(schemaVersion)", "1 (the only schema version this loader knows)")
        try v.check(!name.isEmpty && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) },
                    "name", "\"\(name)\"", "a non-empty name of ASCII letters, digits, '.', '_' or '-' (it appears in sim:NAME:INDEX)")
        try v.check(!vendor.isEmpty, "vendor", "\"\"", "a non-empty vendor name")

        for (kind, unit) in [(ComputeUnitKind.matrix, compute.matrix), (.vector, compute.vector)] {
            let base = "compute.\(kind.rawValue)"
            try v.check(!unit.peak.isEmpty, base + ".peak", "{}", "at least one dtype with a peak rate")
            for key in unit.peak.keys.sorted() {
                try v.dtypeKey(key, base + ".peak")
                if let f = unit.peak[key] { try v.positive(f, base + ".peak.\(key)") }
            }
            try v.tile(unit.tile, base + ".tile")
            for key in (unit.tileByDtype ?? [:]).keys.sorted() {
                try v.dtypeKey(key, base + ".tileByDtype")
                if let t = unit.tileByDtype?[key] { try v.tile(t, base + ".tileByDtype.\(key)") }
            }
            try v.curve(unit.efficiency, base + ".efficiency")
            try v.nonNegative(unit.launchOverhead, base + ".launchOverhead")
            if let c = unit.cores { try v.atLeast(c, 1, base + ".cores") }
            if let c = unit.clockHz { try v.positive(c, base + ".clockHz") }
        }

        try v.atLeast(memory.capacity, 1, "memory.capacity")
        try v.positive(memory.bandwidth, "memory.bandwidth")
        if let rb = memory.readBandwidth {
            try v.positive(rb, "memory.readBandwidth")
            try v.check(rb.value >= memory.bandwidth.value / 2, "memory.readBandwidth", "\(rb.value)",
                        "≥ memory.bandwidth / 2 = \(memory.bandwidth.value / 2) (a written byte cannot cost less than nothing)")
        }
        try v.curve(memory.efficiency, "memory.efficiency")
        var bufferNames: Set<String> = []
        for (i, b) in memory.onChipBuffers.enumerated() {
            let p = "memory.onChipBuffers[\(i)]"
            try v.check(!b.name.isEmpty, p + ".name", "\"\"", "a non-empty name")
            try v.check(!bufferNames.contains(b.name), p + ".name", "\"\(b.name)\"", "a name not used by another buffer")
            bufferNames.insert(b.name)
            try v.check(b.bytes > 0, p + ".bytes", "\(b.bytes)", "an integer > 0")
            try v.source(b.source, p + ".source")
        }

        try v.atLeast(hostLink.pcieGeneration, 1, "hostLink.pcieGeneration")
        try v.positive(hostLink.bandwidth, "hostLink.bandwidth")

        try v.check(!numerics.storageDtypes.value.isEmpty, "numerics.storageDtypes", "[]", "at least one storage dtype")
        try v.source(numerics.storageDtypes.source, "numerics.storageDtypes.source")
        try v.source(numerics.accumulator.matmul.source, "numerics.accumulator.matmul.source")
        try v.source(numerics.accumulator.attention.source, "numerics.accumulator.attention.source")
        try v.source(numerics.accumulator.vector.source, "numerics.accumulator.vector.source")
        for key in numerics.missingDtypePolicy.keys.sorted() {
            try v.dtypeKey(key, "numerics.missingDtypePolicy")
            guard let pol = numerics.missingDtypePolicy[key] else { continue }
            let p = "numerics.missingDtypePolicy.\(key)"
            try v.source(pol.source, p + ".source")
            if pol.action == .emulate {
                guard let via = pol.via else {
                    throw .missingField(file: origin, path: p + ".via")
                }
                try v.check(via.rawValue != key, p + ".via", via.rawValue, "a dtype other than \(key) itself")
                // On every unit, following the policy from this dtype must reach a dtype the
                // unit has, a reject, or a dtype without a policy — never loop.
                if let d = ProfileDType(rawValue: key) {
                    for kind in ComputeUnitKind.allCases {
                        let r = resolveDtype(unit: kind, dtype: d)
                        if r.looped {
                            try v.check(false, p + ".via", via.rawValue,
                                        "an emulation chain that ends on the \(kind) unit (\(r.chain.map(\.rawValue).joined(separator: " → ")) loops)")
                        }
                    }
                }
            }
        }

        let ic = interconnect
        try v.source(ic.topology.source, "interconnect.topology.source")
        try v.atLeast(ic.devicesPerNode, 1, "interconnect.devicesPerNode")
        try v.atLeast(ic.linksPerDevice, 1, "interconnect.linksPerDevice")
        try v.check(ic.devicesPerNode.value <= 1 << 20, "interconnect.devicesPerNode", "\(ic.devicesPerNode.value)", "at most 1048576")
        if ic.topology.value == .twoLevel {
            guard let nt = ic.nodeTopology else { throw .missingField(file: origin, path: "interconnect.nodeTopology") }
            try v.check(nt.value != .twoLevel, "interconnect.nodeTopology", nt.value.rawValue, "fullMesh, ring or switch (the wiring inside one node)")
            try v.source(nt.source, "interconnect.nodeTopology.source")
            guard ic.interNode != nil else { throw .missingField(file: origin, path: "interconnect.interNode") }
        }
        if ic.intraNodeTopology == .fullMesh && ic.devicesPerNode.value > 1 {
            try v.check(ic.linksPerDevice.value >= ic.devicesPerNode.value - 1, "interconnect.linksPerDevice", "\(ic.linksPerDevice.value)",
                        "≥ devicesPerNode − 1 = \(ic.devicesPerNode.value - 1) (a full mesh needs a link to every peer)")
        }
        try v.positive(ic.link.bandwidth, "interconnect.link.bandwidth")
        try v.nonNegative(ic.link.latency, "interconnect.link.latency")
        try v.fraction(ic.link.efficiency, "interconnect.link.efficiency")
        if let n = ic.interNode {
            try v.positive(n.bandwidth, "interconnect.interNode.bandwidth")
            try v.nonNegative(n.latency, "interconnect.interNode.latency")
            try v.fraction(n.efficiency, "interconnect.interNode.efficiency")
            try v.atLeast(n.nicsPerNode, 1, "interconnect.interNode.nicsPerNode")
        }
        try v.nonNegative(ic.collectiveOverhead, "interconnect.collectiveOverhead")
        try v.check(!ic.collectiveAlgorithms.value.isEmpty, "interconnect.collectiveAlgorithms", "[]", "at least one algorithm")
        try v.source(ic.collectiveAlgorithms.source, "interconnect.collectiveAlgorithms.source")
        if ic.collectiveAlgorithms.value.contains(.hierarchical) {
            try v.check(ic.topology.value == .twoLevel, "interconnect.collectiveAlgorithms", "hierarchical", "hierarchical only with topology twoLevel")
        }

        try validateTuningAndStatus(v)
        try validateKernelNumerics(v)

        for key in (kernelEfficiency ?? [:]).keys.sorted() {
            let p = "kernelEfficiency.\(key)"
            if KernelClass(rawValue: key) == nil {
                throw .unknownValue(file: origin, path: p, value: key, allowed: KernelClass.allCases.map(\.rawValue))
            }
            guard let e = kernelEfficiency?[key] else { continue }
            if let c = e.compute { try v.fraction(c, p + ".compute") }
            if let m = e.memory { try v.fraction(m, p + ".memory") }
        }

        if let f = faults {
            if let s = f.seed { try v.check(s >= 0, "faults.seed", "\(s)", "an integer ≥ 0") }
            for kind in FaultKind.allCases {
                guard let t = f.trigger(for: kind) else { continue }
                let p = "faults.\(kind.rawValue)"
                if let pr = t.probability { try v.check(pr.isFinite && pr >= 0 && pr <= 1, p + ".probability", "\(pr)", "a probability in [0, 1]") }
                if let a = t.atEvent { try v.check(a >= 1, p + ".atEvent", "\(a)", "an event number ≥ 1") }
                if let d = t.device { try v.check(d >= 0, p + ".device", "\(d)", "a device index ≥ 0") }
                if let l = t.link {
                    try v.check(kind == .linkDown, p + ".link", "\(l)", "no 'link' (only linkDown names a link)")
                    try v.check(l.count == 2 && l[0] >= 0 && l[1] >= 0 && l[0] != l[1], p + ".link", "\(l)", "two distinct device indices ≥ 0")
                }
            }
        }
    }
}

struct ProfileValidator {
    let file: String

    func check(_ ok: Bool, _ path: String, _ value: @autoclosure () -> String, _ expected: String) throws(ProfileError) {
        if !ok { throw .invalidValue(file: file, path: path, value: value(), expected: expected) }
    }

    func source(_ s: String, _ path: String) throws(ProfileError) {
        if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw .invalidValue(file: file, path: path, value: "\"\(s)\"", expected: "a non-empty source for the figure")
        }
    }

    /// A rate (FLOP/s, bytes/s, Hz): 1…1e30, so modeled times stay finite (1e-300 B/s once
    /// made every time infinite and the report print nan).
    func positive(_ f: Sourced<Double>, _ path: String) throws(ProfileError) {
        try check(f.value.isFinite && f.value >= 1 && f.value <= 1e30, path, "\(f.value)", "a rate in 1…1e30 per second")
        try source(f.source, path + ".source")
    }

    /// A time in seconds (latency, overhead): 0…1000. With `work: true`, an amount of work
    /// (FLOPs or bytes): 0…1e30.
    func nonNegative(_ f: Sourced<Double>, _ path: String, work: Bool = false) throws(ProfileError) {
        let limit = work ? 1e30 : 1e3
        try check(f.value.isFinite && f.value >= 0 && f.value <= limit, path, "\(f.value)",
                  work ? "a finite amount ≥ 0 and ≤ 1e30" : "a time in 0…1000 s")
        try source(f.source, path + ".source")
    }

    func fraction(_ f: Sourced<Double>, _ path: String) throws(ProfileError) {
        try check(f.value.isFinite && f.value > 0 && f.value <= 1, path, "\(f.value)", "an efficiency in (0, 1]")
        try source(f.source, path + ".source")
    }

    func atLeast(_ f: Sourced<Int>, _ minimum: Int, _ path: String) throws(ProfileError) {
        try check(f.value >= minimum, path, "\(f.value)", "an integer ≥ \(minimum)")
        try source(f.source, path + ".source")
    }

    func curve(_ c: DeviceProfile.EfficiencyCurve, _ path: String) throws(ProfileError) {
        try fraction(c.max, path + ".max")
        try nonNegative(c.halfSaturation, path + ".halfSaturation", work: true)
    }

    func tile(_ t: DeviceProfile.Tile, _ path: String) throws(ProfileError) {
        for (name, x) in [("m", t.m), ("n", t.n), ("k", t.k)] {
            try check(x >= 1 && x <= 65536, path + ".\(name)", "\(x)", "an integer in 1…65536")
        }
        try source(t.source, path + ".source")
    }

    func dtypeKey(_ key: String, _ path: String) throws(ProfileError) {
        if ProfileDType(rawValue: key) == nil {
            throw .unknownValue(file: file, path: path + ".\(key)", value: key, allowed: ProfileDType.allCases.map(\.rawValue))
        }
    }
}
