// DeviceProfile.swift — the device-profile schema. Loading is ProfileLoading.swift, the
// decode/override pipeline ProfileDecoding.swift, validation ProfileValidation.swift, the JSON
// layer JSONValue.swift, errors ProfileError.swift. Foundation only; every public type is
// Sendable.
//
// A profile is one JSON file per device (backends/profiles/*.json). Every figure is a
// `Sourced` value — `{"value": 376e12, "source": "where the number comes from", "note": "…"}` —
// so a reader can always tell where a number came from. docs/device-profiles.md documents
// every field; TimeModel.swift turns a profile into modeled times.
//
// Loading never traps: malformed JSON, missing fields, wrong types, unknown fields, impossible
// figures and bad overrides all surface as a typed `ProfileError` naming the file, the JSON
// path and what was expected.

import Foundation
import PolychipCore

// MARK: - Enumerations used by the schema

/// A numeric format a profile can name: as a peak-rate key, a storage dtype, an accumulator
/// precision, or the target of an emulation policy.
///
/// `tf32` (NVIDIA) and `hf32` (Huawei) are the reduced-mantissa f32 matrix formats; `fp8`
/// is E4M3/E5M2 (both share one rate).
public enum ProfileDType: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// IEEE binary64.
    case f64
    /// IEEE binary32.
    case f32
    /// NVIDIA TensorFloat-32: f32 range, 10-bit mantissa, matrix units only.
    case tf32
    /// Huawei HiFloat32 / "HF32" cube mode: f32 inputs rounded to a shorter mantissa.
    case hf32
    /// IEEE binary16.
    case f16
    /// bfloat16.
    case bf16
    /// 8-bit float (E4M3 or E5M2).
    case fp8
    /// 32-bit signed integer (typically an accumulator).
    case int32
    /// 8-bit signed integer.
    case int8
    /// 4-bit signed integer (packed two per byte).
    case int4

    /// The dtype's canonical name, as written in profiles.
    public var description: String { rawValue }

    /// Storage width of one element in bits (`tf32`/`hf32` are stored as 32-bit words).
    public var bitWidth: Int {
        switch self {
        case .f64: return 64
        case .f32, .tf32, .hf32, .int32: return 32
        case .f16, .bf16: return 16
        case .fp8, .int8: return 8
        case .int4: return 4
        }
    }

    /// Looks up a dtype by its profile name (`"bf16"`); `nil` when the name is unknown.
    public init?(name: String) { self.init(rawValue: name) }

    /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
    public init(from decoder: any Decoder) throws {
        self = try decodeProfileEnum(Self.self, from: decoder)
    }
}

/// The two kinds of compute unit a profile describes: a `matrix` engine (Ascend cube,
/// tensor cores, MLU tensor units) for GEMM-like work and a `vector`/SIMT unit for everything
/// else (softmax, norms, router, elementwise, the DSA indexer's ReLU).
public enum ComputeUnitKind: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// The matrix engine (GEMMs, attention score/value products, grouped expert GEMMs).
    case matrix
    /// The vector / SIMT unit (elementwise, reductions, norms, softmax, routing).
    case vector

    /// The unit's name as written in profiles.
    public var description: String { rawValue }

    /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
    public init(from decoder: any Decoder) throws {
        self = try decodeProfileEnum(Self.self, from: decoder)
    }
}

/// How the devices of a node (or a whole cluster) are wired.
public enum InterconnectTopology: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// Every device has `linksPerDevice / (devicesPerNode - 1)` dedicated links to every other
    /// device of its node (Ascend HCCS in an Atlas 800T A2, MLU-Link bridges).
    case fullMesh
    /// Devices form a bidirectional ring; half of `linksPerDevice` go to each neighbour.
    case ring
    /// Every device has one port (`linksPerDevice` links wide) into a non-blocking switch
    /// (NVSwitch, Huawei UB switch).
    case `switch`
    /// Nodes of `devicesPerNode` devices wired by `nodeTopology`, joined by an inter-node
    /// network whose NICs (`interNode.nicsPerNode` per node) are shared by the node's devices.
    case twoLevel

    /// The topology's name as written in profiles.
    public var description: String { rawValue }

    /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
    public init(from decoder: any Decoder) throws {
        self = try decodeProfileEnum(Self.self, from: decoder)
    }
}

/// Collective algorithms a device's communication library offers (the profile lists the
/// available ones; TimeModel.swift documents each one's cost).
public enum CollectiveAlgorithm: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// Ring: `p-1` (reduce-scatter / all-gather) or `2(p-1)` (all-reduce) steps of `n/p`
    /// bytes to the ring successor; for all-to-all, the pairwise-exchange schedule.
    case ring
    /// Binomial tree reduce + broadcast: `2⌈log2 p⌉` steps of `n` bytes (all-reduce only).
    case tree
    /// Recursive halving (reduce-scatter) + recursive doubling (all-gather), Rabenseifner.
    case halvingDoubling
    /// Direct / "mesh": every device exchanges its chunks with every peer at once.
    case direct
    /// Two-level: intra-node phase, inter-node ring among same-local-rank devices, intra-node
    /// phase (twoLevel topologies only).
    case hierarchical

    /// The algorithm's name as written in profiles.
    public var description: String { rawValue }

    /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
    public init(from decoder: any Decoder) throws {
        self = try decodeProfileEnum(Self.self, from: decoder)
    }
}

/// The kinds of fault a profile (or the command line) can inject.
public enum FaultKind: String, Codable, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// A kernel launch fails (the kernel does not run; inputs are untouched).
    case kernelLaunchFailure
    /// An interconnect link goes down (collectives reroute or fail).
    case linkDown
    /// A device memory error (an allocation or a kernel's memory access fails).
    case memoryError
    /// The device disappears; every later operation on it fails.
    case deviceLost

    /// The fault's name as written in profiles.
    public var description: String { rawValue }

    /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
    public init(from decoder: any Decoder) throws {
        self = try decodeProfileEnum(Self.self, from: decoder)
    }
}

// MARK: - Sourced figure

/// A figure together with where it comes from. In JSON:
/// `{"value": 1.6e12, "source": "Huawei Atlas 800T A2 datasheet", "note": "optional remark"}`.
///
/// `--set a.b=value` overrides address the figure (`memory.bandwidth`) and replace its
/// `value`; the `source` then records the override.
public struct Sourced<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    /// The figure itself (units are documented on the field that holds it).
    public var value: Value
    /// Where the figure comes from (datasheet, paper, measurement, or "assumption: …").
    public var source: String
    /// Optional remark: which value was chosen where sources disagree, and why.
    public var note: String?
    /// Optional: how far to trust the figure (`high`, `medium`, `low`); estimates carry one,
    /// so a user knows which numbers to replace with their own `calibrate` output.
    public var confidence: FigureConfidence?

    /// Creates a sourced figure.
    public init(_ value: Value, source: String, note: String? = nil, confidence: FigureConfidence? = nil) {
        self.value = value
        self.source = source
        self.note = note
        self.confidence = confidence
    }

    /// Decodes `{"value": …, "source": …, "note": …}`; an integer figure must be a whole number.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if Value.self == Int.self, let v = try c.decodeProfileInt(.value) as? Value {
            value = v
        } else {
            value = try c.decode(Value.self, forKey: .value)
        }
        source = try c.decode(String.self, forKey: .source)
        note = try c.decodeIfPresent(String.self, forKey: .note)
        confidence = try c.decodeIfPresent(FigureConfidence.self, forKey: .confidence)
    }
}

// MARK: - The profile

/// A simulated device's description: compute units, memory, host link, numerics,
/// interconnect and optional fault injection. See docs/device-profiles.md for the schema.
///
/// Load with `DeviceProfile.load(path:)` or `DeviceProfile.decode(data:origin:)`; override
/// any field with `applying(overrides:)` (`["memory.bandwidth": "2.0e12"]`).
public struct DeviceProfile: Codable, Sendable, Equatable {
    /// Schema version; this loader understands version 1.
    public var schemaVersion: Int
    /// Short identifier used in device selectors (`sim:NAME[:INDEX]`): letters, digits, `.`, `_`, `-`.
    public var name: String
    /// Vendor name (`"Huawei"`, `"Cambricon"`, `"Moore Threads"`, `"NVIDIA"`).
    public var vendor: String
    /// One-line human description (SKU, form factor, node type).
    public var description: String
    /// Free-form remarks: which figures were chosen where sources disagree, and why.
    public var note: String?
    /// Compute units (matrix engine and vector unit).
    public var compute: Compute
    /// Device memory.
    public var memory: Memory
    /// Host link (PCIe).
    public var hostLink: HostLink
    /// Storage dtypes, accumulator precisions and the policy for dtypes the device lacks.
    public var numerics: Numerics
    /// Device-to-device interconnect and collective algorithms.
    public var interconnect: Interconnect
    /// Optional fault injection settings.
    public var faults: Faults?
    /// Optional achieved fraction of the roofline per kernel class (keys are ``KernelClass``
    /// names); a class that is absent, or the whole table absent, runs at efficiency 1.
    public var kernelEfficiency: [String: KernelEfficiency]?
    /// Optional: whether published measurements back the profile, and which
    /// (`polychip simulate --validate`; ProfileValidationStatus.swift).
    public var validation: ValidationStatus?
    /// Where the profile was loaded from (a path, or the `origin` given to `decode`); not encoded.
    public var origin: String

    private enum CodingKeys: String, CodingKey {
        case schemaVersion, name, vendor, description, note, compute, memory, hostLink, numerics, interconnect, faults
        case kernelEfficiency, validation
    }

    /// Creates a profile in code (e.g. the `calibrate` command). Call `validate()` before use.
    public init(
        schemaVersion: Int = 1, name: String, vendor: String, description: String, note: String? = nil,
        compute: Compute, memory: Memory, hostLink: HostLink, numerics: Numerics,
        interconnect: Interconnect, faults: Faults? = nil, kernelEfficiency: [String: KernelEfficiency]? = nil,
        validation: ValidationStatus? = nil, origin: String = "<memory>"
    ) {
        self.schemaVersion = schemaVersion
        self.name = name
        self.vendor = vendor
        self.description = description
        self.note = note
        self.compute = compute
        self.memory = memory
        self.hostLink = hostLink
        self.numerics = numerics
        self.interconnect = interconnect
        self.faults = faults
        self.kernelEfficiency = kernelEfficiency
        self.validation = validation
        self.origin = origin
    }

    /// Decodes the profile's fields (the loader validates afterwards; `origin` is set by it).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decodeProfileInt(.schemaVersion)
        name = try c.decode(String.self, forKey: .name)
        vendor = try c.decode(String.self, forKey: .vendor)
        description = try c.decode(String.self, forKey: .description)
        note = try c.decodeIfPresent(String.self, forKey: .note)
        compute = try c.decode(Compute.self, forKey: .compute)
        memory = try c.decode(Memory.self, forKey: .memory)
        hostLink = try c.decode(HostLink.self, forKey: .hostLink)
        numerics = try c.decode(Numerics.self, forKey: .numerics)
        interconnect = try c.decode(Interconnect.self, forKey: .interconnect)
        faults = try c.decodeIfPresent(Faults.self, forKey: .faults)
        kernelEfficiency = try c.decodeIfPresent([String: KernelEfficiency].self, forKey: .kernelEfficiency)
        validation = try c.decodeIfPresent(ValidationStatus.self, forKey: .validation)
        origin = "<memory>"
    }

    /// Encodes the profile's fields in the bundled-file schema (`origin` is not written).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(name, forKey: .name)
        try c.encode(vendor, forKey: .vendor)
        try c.encode(description, forKey: .description)
        try c.encodeIfPresent(note, forKey: .note)
        try c.encode(compute, forKey: .compute)
        try c.encode(memory, forKey: .memory)
        try c.encode(hostLink, forKey: .hostLink)
        try c.encode(numerics, forKey: .numerics)
        try c.encode(interconnect, forKey: .interconnect)
        try c.encodeIfPresent(faults, forKey: .faults)
        try c.encodeIfPresent(kernelEfficiency, forKey: .kernelEfficiency)
        try c.encodeIfPresent(validation, forKey: .validation)
    }

    /// The efficiency entry of `kernelClass`, if the profile has one.
    public func efficiency(of kernelClass: KernelClass) -> KernelEfficiency? {
        kernelEfficiency?[kernelClass.rawValue]
    }

    // MARK: Kernel-class efficiency

    /// The achieved fraction of the roofline for one ``KernelClass``: the model divides the
    /// kernel's compute time by `compute` and its memory time by `memory` (each 1 when absent).
    public struct KernelEfficiency: Codable, Sendable, Equatable {
        /// Fraction of the unit's peak rate (after the unit's size-dependent curve), in (0, 1].
        public var compute: Sourced<Double>?
        /// Fraction of the memory bandwidth (after the memory curve), in (0, 1].
        public var memory: Sourced<Double>?

        /// Creates an entry.
        public init(compute: Sourced<Double>? = nil, memory: Sourced<Double>? = nil) {
            self.compute = compute
            self.memory = memory
        }
    }

    // MARK: Compute

    /// The device's two compute units.
    public struct Compute: Codable, Sendable, Equatable {
        /// The matrix engine (cube / tensor cores).
        public var matrix: ComputeUnit
        /// The vector / SIMT unit.
        public var vector: ComputeUnit

        /// Creates the compute section.
        public init(matrix: ComputeUnit, vector: ComputeUnit) {
            self.matrix = matrix
            self.vector = vector
        }

        /// The unit of the given kind.
        public func unit(_ kind: ComputeUnitKind) -> ComputeUnit {
            switch kind {
            case .matrix: return matrix
            case .vector: return vector
            }
        }
    }

    /// One compute unit: peak rates per dtype, tile granularity, size-dependent efficiency and
    /// launch overhead.
    public struct ComputeUnit: Codable, Sendable, Equatable {
        /// Human name of the unit (`"AI Core cube"`, `"tensor cores"`, `"SIMT FP32 lanes"`).
        public var name: String?
        /// Number of cores of this unit on the device (informative).
        public var cores: Sourced<Int>?
        /// Clock in Hz (informative).
        public var clockHz: Sourced<Double>?
        /// Peak rate per dtype in operations per second (FLOP/s, or OP/s for integers), dense.
        /// Keys are `ProfileDType` names; a dtype that is absent is not executed natively by this
        /// unit (see `Numerics.missingDtypePolicy`).
        public var peak: [String: Sourced<Double>]
        /// Default tile granularity; GEMM dimensions are padded up to multiples of it.
        public var tile: Tile
        /// Per-dtype tiles where they differ from `tile` (e.g. Ascend int8 16×16×32).
        public var tileByDtype: [String: Tile]?
        /// Size-dependent efficiency; `work` is the padded FLOP count of one kernel.
        public var efficiency: EfficiencyCurve
        /// Fixed cost of one kernel launch on this unit, seconds.
        public var launchOverhead: Sourced<Double>

        /// Creates a compute unit.
        public init(
            name: String? = nil, cores: Sourced<Int>? = nil, clockHz: Sourced<Double>? = nil,
            peak: [String: Sourced<Double>], tile: Tile, tileByDtype: [String: Tile]? = nil,
            efficiency: EfficiencyCurve, launchOverhead: Sourced<Double>
        ) {
            self.name = name
            self.cores = cores
            self.clockHz = clockHz
            self.peak = peak
            self.tile = tile
            self.tileByDtype = tileByDtype
            self.efficiency = efficiency
            self.launchOverhead = launchOverhead
        }

        /// Peak rate for `dtype` in op/s, or `nil` when this unit lacks the dtype.
        public func peakRate(_ dtype: ProfileDType) -> Double? { peak[dtype.rawValue]?.value }

        /// The tile used for `dtype`: `tileByDtype[dtype]` if present, else `tile`.
        public func tile(for dtype: ProfileDType) -> Tile { tileByDtype?[dtype.rawValue] ?? tile }

        /// The dtypes this unit runs natively, in `ProfileDType.allCases` order.
        public var nativeDtypes: [ProfileDType] { ProfileDType.allCases.filter { peak[$0.rawValue] != nil } }
    }

    /// Tile granularity of a unit: the (m, n, k) block the hardware computes at once. For a
    /// vector unit use `m = k = 1` and `n` = elements per vector instruction.
    public struct Tile: Codable, Sendable, Equatable, Hashable {
        /// Rows of the output block.
        public var m: Int
        /// Columns of the output block (for a vector unit: lanes per instruction).
        public var n: Int
        /// Reduction depth of the block.
        public var k: Int
        /// Where the tile size comes from.
        public var source: String

        /// Creates a tile.
        public init(m: Int, n: Int, k: Int, source: String) {
            self.m = m
            self.n = n
            self.k = k
            self.source = source
        }

        /// Decodes a tile; m, n and k must be whole numbers.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            m = try c.decodeProfileInt(.m)
            n = try c.decodeProfileInt(.n)
            k = try c.decodeProfileInt(.k)
            source = try c.decode(String.self, forKey: .source)
        }
    }

    /// Size-dependent efficiency: `eff(work) = max · work / (work + halfSaturation)`.
    ///
    /// `max` is the large-kernel efficiency (msmodeling's constant `compute_efficiency` /
    /// `memory_efficiency`); `halfSaturation` is the work (FLOPs for compute, bytes for memory)
    /// at which half of `max` is reached. `halfSaturation = 0` gives a constant efficiency.
    /// Note `work / (rate · eff(work)) = (work + halfSaturation) / (rate · max)`: the curve is
    /// a fixed ramp-up cost of `halfSaturation / (rate · max)` seconds plus throughput at `max`.
    public struct EfficiencyCurve: Codable, Sendable, Equatable {
        /// Asymptotic efficiency for large kernels, in (0, 1].
        public var max: Sourced<Double>
        /// Work at which efficiency is `max / 2` (FLOPs or bytes), ≥ 0.
        public var halfSaturation: Sourced<Double>

        /// Creates an efficiency curve.
        public init(max: Sourced<Double>, halfSaturation: Sourced<Double>) {
            self.max = max
            self.halfSaturation = halfSaturation
        }

        /// `max · work / (work + halfSaturation)`; `max` when `halfSaturation` is 0, 0 when `work ≤ 0`.
        public func efficiency(work: Double) -> Double {
            let h = halfSaturation.value
            if h == 0 { return max.value }
            guard work > 0 else { return 0 }
            return max.value * work / (work + h)
        }
    }

    // MARK: Memory

    /// Device memory: capacity, bandwidth with its efficiency curve, and on-chip buffers.
    public struct Memory: Codable, Sendable, Equatable {
        /// Capacity in bytes.
        public var capacity: Sourced<Int>
        /// Peak bandwidth in bytes per second, of a stream that reads and writes (copy, scale,
        /// add): every byte a kernel moves costs `1 / bandwidth` unless `readBandwidth` is given.
        public var bandwidth: Sourced<Double>
        /// Optional bandwidth of a read-only stream (a GEMV over its weights), bytes per second,
        /// ≥ `bandwidth / 2`. When present a kernel reading `R` and writing `W` bytes costs
        /// `R / readBandwidth + W · (2 / bandwidth − 1 / readBandwidth)`: a written byte costs
        /// what a copy stream leaves after its read. Absent: `(R + W) / bandwidth`.
        public var readBandwidth: Sourced<Double>?
        /// Size-dependent efficiency; `work` is the bytes one kernel moves.
        public var efficiency: EfficiencyCurve
        /// Named on-chip buffers (L0/L1/UB/L2, shared memory, …); may be empty.
        public var onChipBuffers: [OnChipBuffer]

        /// Creates the memory section.
        public init(capacity: Sourced<Int>, bandwidth: Sourced<Double>, readBandwidth: Sourced<Double>? = nil,
                    efficiency: EfficiencyCurve, onChipBuffers: [OnChipBuffer] = []) {
            self.capacity = capacity
            self.bandwidth = bandwidth
            self.readBandwidth = readBandwidth
            self.efficiency = efficiency
            self.onChipBuffers = onChipBuffers
        }
    }

    /// A named on-chip buffer. Address it in overrides by index or by name:
    /// `memory.onChipBuffers.L2.bytes=…`.
    public struct OnChipBuffer: Codable, Sendable, Equatable {
        /// Buffer name (`"L0A"`, `"UB"`, `"L2"`, `"shared"`); unique within the profile.
        public var name: String
        /// Size in bytes (per instance).
        public var bytes: Int
        /// What one instance belongs to: `"perCore"`, `"perCluster"`, `"device"` (free text).
        public var scope: String?
        /// Where the figure comes from.
        public var source: String

        /// Creates an on-chip buffer entry.
        public init(name: String, bytes: Int, scope: String? = nil, source: String) {
            self.name = name
            self.bytes = bytes
            self.scope = scope
            self.source = source
        }

        /// Decodes a buffer entry; `bytes` must be a whole number.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            bytes = try c.decodeProfileInt(.bytes)
            scope = try c.decodeIfPresent(String.self, forKey: .scope)
            source = try c.decode(String.self, forKey: .source)
        }
    }

    // MARK: Host link

    /// The host link (PCIe).
    public struct HostLink: Codable, Sendable, Equatable {
        /// PCIe generation (3, 4, 5, …).
        public var pcieGeneration: Sourced<Int>
        /// One-way bandwidth in bytes per second.
        public var bandwidth: Sourced<Double>

        /// Creates the host link section.
        public init(pcieGeneration: Sourced<Int>, bandwidth: Sourced<Double>) {
            self.pcieGeneration = pcieGeneration
            self.bandwidth = bandwidth
        }
    }

    // MARK: Numerics

    /// Storage dtypes, accumulator precision per kernel family, and what to do with a dtype a
    /// unit lacks.
    public struct Numerics: Codable, Sendable, Equatable {
        /// Dtypes tensors can be stored in on this device.
        public var storageDtypes: Sourced<[ProfileDType]>
        /// Accumulator precision per kernel family.
        public var accumulator: Accumulators
        /// Per-dtype policy applied when a unit has no peak rate for the dtype (keys are dtype
        /// names). A dtype with no entry is rejected.
        public var missingDtypePolicy: [String: DtypePolicy]
        /// Per-kernel numerics where a kernel departs from its family's accumulator (keys are
        /// kernel names: `moe-router`, `moe-combine`, `lightning-indexer`, …); KernelNumerics.swift.
        public var kernels: [String: KernelNumerics]?

        /// Creates the numerics section.
        public init(storageDtypes: Sourced<[ProfileDType]>, accumulator: Accumulators, missingDtypePolicy: [String: DtypePolicy],
                    kernels: [String: KernelNumerics]? = nil) {
            self.storageDtypes = storageDtypes
            self.accumulator = accumulator
            self.missingDtypePolicy = missingDtypePolicy
            self.kernels = kernels
        }

        /// The policy for `dtype`, if the profile has one.
        public func policy(for dtype: ProfileDType) -> DtypePolicy? { missingDtypePolicy[dtype.rawValue] }
    }

    /// Accumulator precision per kernel family.
    public struct Accumulators: Codable, Sendable, Equatable {
        /// GEMM family (matmul, grouped matmul, INT4 matmul).
        public var matmul: Sourced<ProfileDType>
        /// Attention family (attention, sparse attention, lightning indexer).
        public var attention: Sourced<ProfileDType>
        /// Vector family (softmax, norms, reductions, router).
        public var vector: Sourced<ProfileDType>

        /// Creates the accumulator table.
        public init(matmul: Sourced<ProfileDType>, attention: Sourced<ProfileDType>, vector: Sourced<ProfileDType>) {
            self.matmul = matmul
            self.attention = attention
            self.vector = vector
        }
    }

    /// What happens when a unit lacks a dtype: reject the kernel, or emulate it by upcasting
    /// to `via` and running at `via`'s rate (e.g. MTT S4000 W4A16: int4 → bf16).
    public struct DtypePolicy: Codable, Sendable, Equatable {
        /// `reject` or `emulate`.
        public enum Action: String, Codable, Sendable, CaseIterable, Hashable {
            /// The kernel is unsupported for this dtype on this unit.
            case reject
            /// The kernel runs by upcasting to `via` (numerics and rate of `via`).
            case emulate

            /// Decodes from a JSON string, reporting an unknown name as `ProfileError.unknownValue`.
            public init(from decoder: any Decoder) throws {
                self = try decodeProfileEnum(Self.self, from: decoder)
            }
        }

        /// The policy's action.
        public var action: Action
        /// Upcast target for `emulate` (required then; may itself be emulated, no cycles).
        public var via: ProfileDType?
        /// Why (hardware fact, library behaviour).
        public var source: String

        /// Creates a policy.
        public init(action: Action, via: ProfileDType? = nil, source: String) {
            self.action = action
            self.via = via
            self.source = source
        }
    }

    // MARK: Interconnect

    /// Device-to-device interconnect, as the collective cost model sees it.
    public struct Interconnect: Codable, Sendable, Equatable {
        /// The topology: `fullMesh`, `ring`, `switch`, or `twoLevel`.
        public var topology: Sourced<InterconnectTopology>
        /// For `twoLevel`: the wiring inside a node (`fullMesh`, `ring` or `switch`). Required then.
        public var nodeTopology: Sourced<InterconnectTopology>?
        /// Devices per node (≥ 1). For non-`twoLevel` topologies this bounds a mesh's size.
        public var devicesPerNode: Sourced<Int>
        /// Interconnect links per device (≥ 1).
        public var linksPerDevice: Sourced<Int>
        /// One link's one-way bandwidth, latency and achievable efficiency.
        public var link: Link
        /// Inter-node network (required for `twoLevel`).
        public var interNode: InterNode?
        /// Fixed cost of issuing one collective, seconds (msmodeling `comm_op_cost_s`).
        public var collectiveOverhead: Sourced<Double>
        /// Collective algorithms the device's communication library offers.
        public var collectiveAlgorithms: Sourced<[CollectiveAlgorithm]>
        /// Optional: all-to-all costs beyond the fabric model (per-call and per-peer overheads,
        /// bandwidth efficiency by group size), fitted on published measurements
        /// (CollectiveTuning.swift).
        public var allToAllTuning: AllToAllTuning?

        /// Creates the interconnect section.
        public init(
            topology: Sourced<InterconnectTopology>, nodeTopology: Sourced<InterconnectTopology>? = nil,
            devicesPerNode: Sourced<Int>, linksPerDevice: Sourced<Int>, link: Link, interNode: InterNode? = nil,
            collectiveOverhead: Sourced<Double>, collectiveAlgorithms: Sourced<[CollectiveAlgorithm]>,
            allToAllTuning: AllToAllTuning? = nil
        ) {
            self.topology = topology
            self.nodeTopology = nodeTopology
            self.devicesPerNode = devicesPerNode
            self.linksPerDevice = linksPerDevice
            self.link = link
            self.interNode = interNode
            self.collectiveOverhead = collectiveOverhead
            self.collectiveAlgorithms = collectiveAlgorithms
            self.allToAllTuning = allToAllTuning
        }

        /// The wiring inside one node: `nodeTopology` for `twoLevel`, else `topology`.
        public var intraNodeTopology: InterconnectTopology {
            if topology.value == .twoLevel { return nodeTopology?.value ?? .fullMesh }
            return topology.value
        }
    }

    /// One interconnect link.
    public struct Link: Codable, Sendable, Equatable {
        /// One-way bandwidth of one link, bytes per second.
        public var bandwidth: Sourced<Double>
        /// Latency of one hop, seconds.
        public var latency: Sourced<Double>
        /// Achievable fraction of `bandwidth`, in (0, 1] (msmodeling `comm_efficiency`).
        public var efficiency: Sourced<Double>

        /// Creates a link description.
        public init(bandwidth: Sourced<Double>, latency: Sourced<Double>, efficiency: Sourced<Double>) {
            self.bandwidth = bandwidth
            self.latency = latency
            self.efficiency = efficiency
        }
    }

    /// The inter-node network of a `twoLevel` topology.
    public struct InterNode: Codable, Sendable, Equatable {
        /// One NIC's one-way bandwidth, bytes per second.
        public var bandwidth: Sourced<Double>
        /// Device-to-device latency across nodes, seconds.
        public var latency: Sourced<Double>
        /// Achievable fraction of `bandwidth`, in (0, 1].
        public var efficiency: Sourced<Double>
        /// NICs per node, shared by the node's devices (≥ 1).
        public var nicsPerNode: Sourced<Int>

        /// Creates the inter-node section.
        public init(bandwidth: Sourced<Double>, latency: Sourced<Double>, efficiency: Sourced<Double>, nicsPerNode: Sourced<Int>) {
            self.bandwidth = bandwidth
            self.latency = latency
            self.efficiency = efficiency
            self.nicsPerNode = nicsPerNode
        }
    }

    // MARK: Faults

    /// Seeded, deterministic fault injection. Each trigger fires on an *event* — the n-th
    /// kernel launch (kernelLaunchFailure), allocation, write, read or kernel (memoryError),
    /// collective on a mesh (linkDown) or operation of any kind (deviceLost) on a device,
    /// counted from 1. FaultInjection.swift applies the plan; docs/device-profiles.md, "Faults".
    public struct Faults: Codable, Sendable, Equatable {
        /// Seed of the deterministic per-event draw (≥ 0); default 0.
        public var seed: Int?
        /// Kernel launch failures.
        public var kernelLaunchFailure: FaultTrigger?
        /// Downed interconnect links.
        public var linkDown: FaultTrigger?
        /// Device memory errors.
        public var memoryError: FaultTrigger?
        /// Lost devices.
        public var deviceLost: FaultTrigger?
        /// Silent data corruption: one kernel's outputs off by a relative error (KernelNumerics.swift).
        public var outputPerturbation: OutputPerturbation?

        /// Creates a fault section.
        public init(seed: Int? = nil, kernelLaunchFailure: FaultTrigger? = nil, linkDown: FaultTrigger? = nil,
                    memoryError: FaultTrigger? = nil, deviceLost: FaultTrigger? = nil, outputPerturbation: OutputPerturbation? = nil) {
            self.seed = seed
            self.kernelLaunchFailure = kernelLaunchFailure
            self.linkDown = linkDown
            self.memoryError = memoryError
            self.deviceLost = deviceLost
            self.outputPerturbation = outputPerturbation
        }

        /// Decodes the fault section; `seed` must be a whole number.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            seed = try c.decodeProfileIntIfPresent(.seed)
            kernelLaunchFailure = try c.decodeIfPresent(FaultTrigger.self, forKey: .kernelLaunchFailure)
            linkDown = try c.decodeIfPresent(FaultTrigger.self, forKey: .linkDown)
            memoryError = try c.decodeIfPresent(FaultTrigger.self, forKey: .memoryError)
            deviceLost = try c.decodeIfPresent(FaultTrigger.self, forKey: .deviceLost)
            outputPerturbation = try c.decodeIfPresent(OutputPerturbation.self, forKey: .outputPerturbation)
        }

        /// The trigger configured for `kind`, if any.
        public func trigger(for kind: FaultKind) -> FaultTrigger? {
            switch kind {
            case .kernelLaunchFailure: return kernelLaunchFailure
            case .linkDown: return linkDown
            case .memoryError: return memoryError
            case .deviceLost: return deviceLost
            }
        }

        /// Whether fault `kind` fires on event number `event` (1-based) of device `device`, for
        /// kernel `kernel` (nil for non-kernel events). Pure and deterministic:
        /// - a trigger's `device` / `kernel` filters must match (a kernel filter never matches `nil`);
        /// - it fires when `event == atEvent`, or when a SplitMix64 draw of
        ///   `(seed, kind, device, event)` mapped to [0, 1) is `< probability`.
        public func fires(_ kind: FaultKind, event: Int, device: Int, kernel: String? = nil) -> Bool {
            guard let t = trigger(for: kind) else { return false }
            if let d = t.device, d != device { return false }
            if let k = t.kernel, k != kernel { return false }
            if let at = t.atEvent, at == event { return true }
            guard let p = t.probability, p > 0 else { return false }
            let kindSalt: UInt64
            switch kind {
            case .kernelLaunchFailure: kindSalt = 0x6B65_726E_656C_0001
            case .linkDown: kindSalt = 0x6C69_6E6B_646E_0002
            case .memoryError: kindSalt = 0x6D65_6D65_7272_0003
            case .deviceLost: kindSalt = 0x6465_766C_7374_0004
            }
            var x = UInt64(bitPattern: Int64(seed ?? 0)) ^ kindSalt
            x = SplitMix64.mix(x &+ UInt64(bitPattern: Int64(device)) &* 0x9E37_79B9_7F4A_7C15)
            x = SplitMix64.mix(x ^ UInt64(bitPattern: Int64(event)))
            let u = Double(x >> 11) * 0x1.0p-53
            return u < p
        }
    }

    /// When a fault fires. Any combination of fields; filters narrow, triggers widen.
    public struct FaultTrigger: Codable, Sendable, Equatable {
        /// Per-event probability in [0, 1], drawn deterministically from `Faults.seed`.
        public var probability: Double?
        /// Fire exactly on this event number (≥ 1).
        public var atEvent: Int?
        /// Only on this device index (≥ 0).
        public var device: Int?
        /// Only for this kernel name (`"matmul"`, `"softmax"`, …).
        public var kernel: String?
        /// For `linkDown`: the two device indices whose direct link goes down.
        public var link: [Int]?

        /// Creates a trigger.
        public init(probability: Double? = nil, atEvent: Int? = nil, device: Int? = nil, kernel: String? = nil, link: [Int]? = nil) {
            self.probability = probability
            self.atEvent = atEvent
            self.device = device
            self.kernel = kernel
            self.link = link
        }

        /// Decodes a trigger; `atEvent`, `device` and `link` entries must be whole numbers.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            probability = try c.decodeIfPresent(Double.self, forKey: .probability)
            atEvent = try c.decodeProfileIntIfPresent(.atEvent)
            device = try c.decodeProfileIntIfPresent(.device)
            kernel = try c.decodeIfPresent(String.self, forKey: .kernel)
            if c.contains(.link), try !c.decodeNil(forKey: .link) {
                var items = try c.nestedUnkeyedContainer(forKey: .link)
                var out: [Int] = []
                while !items.isAtEnd {
                    let path = profileCodingPathComponents(items.codingPath) + [.index(out.count)]
                    let d: Double
                    do {
                        d = try items.decode(Double.self)
                    } catch DecodingError.typeMismatch {
                        throw ProfileIntegerFailure(path: path, found: nil)
                    }
                    guard let i = profileInteger(d) else {
                        throw ProfileIntegerFailure(path: path, found: "number " + JSONValue.formatNumber(d))
                    }
                    out.append(i)
                }
                link = out
            } else {
                link = nil
            }
        }
    }
}
