// KernelNumerics.swift — the parts of a chip's arithmetic that differ per kernel rather than per
// kernel family, and a planted silent-corruption fault, as profile fields:
//
//   numerics.kernels.<kernel>.accumulator   the kernel's accumulator (replaces its family's):
//                                           f16/bf16 in moe-router and moe-combine are modeled
//                                           (KernelNumericsArithmetic.swift); tf32/hf32 round a
//                                           GEMM-like kernel's float inputs to that format
//   numerics.kernels.<kernel>.output        the dtype the kernel's float results are held in
//                                           before they are stored (lightning-indexer scores in
//                                           f16 on a chip that keeps them in half precision)
//   faults.outputPerturbation               {kernel, relativeError, seed?}: every output element
//                                           of that kernel scaled by 1 ± relativeError
//
// Fields may be sourced figures or, from `--set`, bare dtype names (their source then says so).

import PolychipCore

/// A kernel's own numerics (`numerics.kernels.<kernel>`).
public struct KernelNumerics: Codable, Sendable, Equatable {
    /// The accumulator this kernel uses instead of its family's (`numerics.accumulator.*`).
    public var accumulator: Sourced<ProfileDType>?
    /// The dtype the kernel's float outputs are rounded to before they are stored.
    public var output: Sourced<ProfileDType>?

    /// Creates per-kernel numerics.
    public init(accumulator: Sourced<ProfileDType>? = nil, output: Sourced<ProfileDType>? = nil) {
        self.accumulator = accumulator
        self.output = output
    }

    private enum CodingKeys: String, CodingKey { case accumulator, output }

    /// Decodes sourced figures, or bare dtype names (`--set numerics.kernels.moe-router.accumulator=bf16`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func field(_ key: CodingKeys) throws -> Sourced<ProfileDType>? {
            guard c.contains(key) else { return nil }
            if (try? c.decode(String.self, forKey: key)) != nil {
                return Sourced(try c.decode(ProfileDType.self, forKey: key), source: "set without a source (a bare dtype name)")
            }
            return try c.decodeIfPresent(Sourced<ProfileDType>.self, forKey: key)
        }
        accumulator = try field(.accumulator)
        output = try field(.output)
    }
}

/// Silent data corruption of one kernel's outputs (`faults.outputPerturbation`): element `i` of
/// every float output becomes `x · (1 + relativeError · z_i)`, `z_i = ±1` drawn from `seed` and
/// `i` alone, so the same call is corrupted the same way in every run (the output's relative
/// RMS error is `relativeError`).
public struct OutputPerturbation: Codable, Sendable, Equatable {
    /// The kernel (kebab-case name).
    public var kernel: String
    /// Relative error per element (≥ 0, finite).
    public var relativeError: Double
    /// Seed of the signs (default 0).
    public var seed: Int?

    /// Creates a perturbation.
    public init(kernel: String, relativeError: Double, seed: Int? = nil) {
        self.kernel = kernel; self.relativeError = relativeError; self.seed = seed
    }
}

extension DeviceProfile {
    /// The kernel's own numerics, if the profile sets any.
    public func kernelNumerics(_ kind: OpKind) -> KernelNumerics? { numerics.kernels?[kind.name] }

    /// Checks `numerics.kernels` (known kernel names, float dtypes, outputs in a storage
    /// format) and `faults.outputPerturbation`.
    func validateKernelNumerics(_ v: ProfileValidator) throws(ProfileError) {
        let kernelNames = OpKind.allCases.map(\.name)
        for key in (numerics.kernels ?? [:]).keys.sorted() {
            let p = "numerics.kernels.\(key)"
            guard OpKind(name: key) != nil, kernelNames.contains(key) else {
                throw .unknownValue(file: origin, path: p, value: key, allowed: kernelNames)
            }
            guard let k = numerics.kernels?[key] else { continue }
            if let a = k.accumulator {
                try v.check([.f64, .f32, .tf32, .hf32, .f16, .bf16].contains(a.value), p + ".accumulator", a.value.rawValue,
                            "a float accumulator: f64, f32, tf32, hf32, f16 or bf16")
                try v.source(a.source, p + ".accumulator.source")
            }
            if let o = k.output {
                try v.check([.f32, .f16, .bf16].contains(o.value), p + ".output", o.value.rawValue, "f32, f16 or bf16")
                try v.source(o.source, p + ".output.source")
            }
        }
        if let pert = faults?.outputPerturbation {
            try v.check(kernelNames.contains(pert.kernel), "faults.outputPerturbation.kernel", pert.kernel,
                        "a kernel name (\(kernelNames.joined(separator: ", ")))")
            try v.check(pert.relativeError.isFinite && pert.relativeError >= 0 && pert.relativeError < 1,
                        "faults.outputPerturbation.relativeError", "\(pert.relativeError)", "a relative error in [0, 1)")
            if let s = pert.seed { try v.check(s >= 0, "faults.outputPerturbation.seed", "\(s)", "an integer ≥ 0") }
        }
    }
}
