// ProfileDTypeResolution.swift — which dtype a unit really runs a requested dtype in
// (the profile's missing-dtype policy).

import Foundation

// MARK: - Dtype resolution (missing-dtype policy)

/// How a unit executes a requested dtype after applying the profile's `missingDtypePolicy`.
public struct DTypeResolution: Sendable, Equatable, Hashable {
    /// The unit asked about.
    public var unit: ComputeUnitKind
    /// The dtype asked for.
    public var requested: ProfileDType
    /// The dtype the unit actually computes in (`requested` when native).
    public var effective: ProfileDType
    /// The upcast chain from `requested` to `effective` (one element when native).
    public var chain: [ProfileDType]
    /// The unit's peak rate for `effective`, op/s.
    public var rate: Double
    /// Whether the dtype is emulated (`effective != requested`).
    public var emulated: Bool { effective != requested }
}

/// Whether and how a unit supports a dtype.
public enum DTypeSupport: Sendable, Equatable, Hashable {
    /// The unit has a peak rate for the dtype.
    case native(DTypeResolution)
    /// The unit lacks the dtype; the policy upcasts it (the resolution names the chain).
    case emulated(DTypeResolution)
    /// The unit lacks the dtype and the policy rejects it (or has no entry).
    case rejected(reason: String)
}

extension DeviceProfile {
    /// Resolves `dtype` on `unit` through `numerics.missingDtypePolicy`: native if the unit has
    /// a peak rate for it; otherwise follow `emulate via` links (a chain, e.g. int4 → bf16 → f32
    /// on a vector unit without bf16) until a dtype with a rate is found; `reject`, a missing
    /// policy entry or a cycle gives `.rejected` with the reason.
    public func dtypeSupport(unit: ComputeUnitKind, dtype: ProfileDType) -> DTypeSupport {
        resolveDtype(unit: unit, dtype: dtype).support
    }

    func resolveDtype(unit: ComputeUnitKind, dtype: ProfileDType) -> (support: DTypeSupport, chain: [ProfileDType], looped: Bool) {
        let u = compute.unit(unit)
        var chain: [ProfileDType] = [dtype]
        var current = dtype
        while true {
            if let r = u.peakRate(current) {
                let res = DTypeResolution(unit: unit, requested: dtype, effective: current, chain: chain, rate: r)
                return (current == dtype ? .native(res) : .emulated(res), chain, false)
            }
            guard let policy = numerics.policy(for: current) else {
                return (.rejected(reason: "\(name): the \(unit) unit has no \(current) rate and numerics.missingDtypePolicy has no entry for \(current)"), chain, false)
            }
            switch policy.action {
            case .reject:
                return (.rejected(reason: "\(name): \(current) is rejected on the \(unit) unit (\(policy.source))"), chain, false)
            case .emulate:
                guard let via = policy.via else {
                    return (.rejected(reason: "\(name): policy for \(current) says emulate but names no 'via' dtype"), chain, false)
                }
                if chain.contains(via) {
                    let loop = chain + [via]
                    return (.rejected(reason: "\(name): emulation chain \(loop.map(\.rawValue).joined(separator: " → ")) loops on the \(unit) unit"), loop, true)
                }
                chain.append(via)
                current = via
            }
        }
    }

    /// Whether tensors of `dtype` can be stored on this device.
    public func canStore(_ dtype: ProfileDType) -> Bool { numerics.storageDtypes.value.contains(dtype) }
}
