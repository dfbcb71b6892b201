// DeviceProfile.swift — the device-profile schema, its JSON loader, `--set` overrides and
// semantic validation. Foundation only; every public type is Sendable.
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

        /// Creates the numerics section.
        public init(storageDtypes: Sourced<[ProfileDType]>, accumulator: Accumulators, missingDtypePolicy: [String: DtypePolicy]) {
            self.storageDtypes = storageDtypes
            self.accumulator = accumulator
            self.missingDtypePolicy = missingDtypePolicy
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

        /// Creates a fault section.
        public init(seed: Int? = nil, kernelLaunchFailure: FaultTrigger? = nil, linkDown: FaultTrigger? = nil,
                    memoryError: FaultTrigger? = nil, deviceLost: FaultTrigger? = nil) {
            self.seed = seed
            self.kernelLaunchFailure = kernelLaunchFailure
            self.linkDown = linkDown
            self.memoryError = memoryError
            self.deviceLost = deviceLost
        }

        /// Decodes the fault section; `seed` must be a whole number.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            seed = try c.decodeProfileIntIfPresent(.seed)
            kernelLaunchFailure = try c.decodeIfPresent(FaultTrigger.self, forKey: .kernelLaunchFailure)
            linkDown = try c.decodeIfPresent(FaultTrigger.self, forKey: .linkDown)
            memoryError = try c.decodeIfPresent(FaultTrigger.self, forKey: .memoryError)
            deviceLost = try c.decodeIfPresent(FaultTrigger.self, forKey: .deviceLost)
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
            x = profileSplitMix64(x &+ UInt64(bitPattern: Int64(device)) &* 0x9E37_79B9_7F4A_7C15)
            x = profileSplitMix64(x ^ UInt64(bitPattern: Int64(event)))
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
                        throw ProfileIntegerFailure(path: path, found: "number " + formatProfileJSONNumber(d))
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

/// SplitMix64 finalizer (Steele, Lea, Flood 2014): a fixed bijective mix of 64 bits.
@inline(__always)
func profileSplitMix64(_ v: UInt64) -> UInt64 {
    var z = v &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

// MARK: - Errors

/// A profile that cannot be used, with the file, the JSON path (dotted, `[i]` for array
/// elements, a figure's `.value` left off) and what was expected.
public enum ProfileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read.
    case unreadable(file: String, reason: String)
    /// The bytes are not valid JSON; `line` and `column` are 1-based.
    case malformedJSON(file: String, line: Int, column: Int, reason: String)
    /// A required field is absent.
    case missingField(file: String, path: String)
    /// A field has the wrong JSON type.
    case wrongType(file: String, path: String, expected: String, found: String)
    /// A field the schema does not know (a typo?). Keys starting with `_` or `$` are comments.
    case unknownField(file: String, path: String)
    /// A name outside its enumeration (topology, dtype, algorithm, policy action).
    case unknownValue(file: String, path: String, value: String, allowed: [String])
    /// A value of the right type that makes no sense (negative bandwidth, efficiency > 1, …).
    case invalidValue(file: String, path: String, value: String, expected: String)
    /// A `--set` argument that is not `PATH=VALUE`.
    case malformedOverride(file: String, setting: String, reason: String)
    /// A `--set` path that names no field of the schema.
    case unknownOverridePath(file: String, path: String)
    /// A `--set` value that cannot become the field's type.
    case overrideWrongType(file: String, path: String, value: String, expected: String)
    /// No profile of that name in the searched directories.
    case profileNotFound(name: String, searched: [String])

    /// The file (or origin) the error is about.
    public var file: String {
        switch self {
        case .unreadable(let f, _), .malformedJSON(let f, _, _, _), .missingField(let f, _),
             .wrongType(let f, _, _, _), .unknownField(let f, _), .unknownValue(let f, _, _, _),
             .invalidValue(let f, _, _, _), .malformedOverride(let f, _, _), .unknownOverridePath(let f, _),
             .overrideWrongType(let f, _, _, _):
            return f
        case .profileNotFound(let name, _):
            return name
        }
    }

    /// The JSON path the error is about, when there is one.
    public var path: String? {
        switch self {
        case .missingField(_, let p), .wrongType(_, let p, _, _), .unknownField(_, let p),
             .unknownValue(_, let p, _, _), .invalidValue(_, let p, _, _), .unknownOverridePath(_, let p),
             .overrideWrongType(_, let p, _, _):
            return p
        default:
            return nil
        }
    }

    /// A one-line message naming file, path and expectation (every part bounded, so a huge
    /// name or value is quoted by its prefix only).
    public var description: String {
        // (PolychipCore's Quoted.bounded, inlined: this file depends on Foundation only.)
        func b(_ s: String) -> String { s.count <= 256 ? s : String(s.prefix(256)) + "… (\(s.count) characters)" }
        switch self {
        case let .unreadable(file, reason):
            return "\(b(file)): cannot read profile: \(b(reason))"
        case let .malformedJSON(file, line, column, reason):
            return "\(b(file)):\(line):\(column): malformed JSON: \(b(reason))"
        case let .missingField(file, path):
            return "\(b(file)): missing required field '\(b(path))'"
        case let .wrongType(file, path, expected, found):
            return "\(b(file)): field '\(b(path))' has the wrong type: expected \(expected), found \(b(found))"
        case let .unknownField(file, path):
            return "\(b(file)): unknown field '\(b(path))' (not part of the profile schema; prefix a key with '_' to keep it as a comment)"
        case let .unknownValue(file, path, value, allowed):
            return "\(b(file)): field '\(b(path))': '\(b(value))' is not one of \(allowed.joined(separator: ", "))"
        case let .invalidValue(file, path, value, expected):
            return "\(b(file)): field '\(b(path))' = \(b(value)): expected \(expected)"
        case let .malformedOverride(file, setting, reason):
            return "\(b(file)): bad override '\(b(setting))': \(b(reason))"
        case let .unknownOverridePath(file, path):
            return "\(b(file)): override path '\(b(path))' names no field of the profile schema"
        case let .overrideWrongType(file, path, value, expected):
            return "\(b(file)): override '\(b(path))=\(b(value))': expected \(expected)"
        case let .profileNotFound(name, searched):
            return "no profile named '\(b(name))' (searched: \(searched.map { b($0) }.joined(separator: ", ")))"
        }
    }
}

// MARK: - Loading

extension DeviceProfile {
    /// Reads, decodes, overrides and validates the profile at `path`.
    ///
    /// - Parameter overrides: dotted-path overrides applied before validation (see `applying(overrides:)`).
    /// - Throws: `ProfileError` naming `path`.
    public static func load(path: String, overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(file: path, reason: error.localizedDescription)
        }
        return try decode(data: data, origin: path, overrides: overrides)
    }

    /// Decodes, overrides and validates a profile from JSON bytes.
    ///
    /// - Parameters:
    ///   - data: the JSON document (UTF-8).
    ///   - origin: the name used in errors (a path, `"--profile FILE"`, `"<stdin>"`).
    ///   - overrides: dotted-path overrides, applied in sorted path order.
    /// - Throws: `ProfileError`.
    public static func decode(data: Data, origin: String, overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
        let tree = try parseJSON(data, origin: origin)
        let settings = overrides.keys.sorted().map { (path: $0, value: overrides[$0] ?? "") }
        return try build(tree: tree, origin: origin, settings: settings)
    }

    /// Loads every `*.json` profile in `directory`, sorted by file name.
    /// - Throws: the first `ProfileError` met.
    public static func loadDirectory(_ directory: String) throws(ProfileError) -> [DeviceProfile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .unreadable(file: directory, reason: error.localizedDescription)
        }
        var out: [DeviceProfile] = []
        for n in names.sorted() where n.hasSuffix(".json") {
            out.append(try load(path: (directory as NSString).appendingPathComponent(n)))
        }
        return out
    }

    /// Finds `NAME.json` in `directories` (in order) and loads it; `name` may also be a path
    /// to a file (anything containing `/` or ending in `.json`).
    /// - Throws: `ProfileError.profileNotFound` or the load error.
    public static func load(named name: String, searching directories: [String], overrides: [String: String] = [:]) throws(ProfileError) -> DeviceProfile {
        if name.contains("/") || name.hasSuffix(".json") {
            return try load(path: name, overrides: overrides)
        }
        for d in directories {
            let p = (d as NSString).appendingPathComponent(name + ".json")
            if FileManager.default.fileExists(atPath: p) { return try load(path: p, overrides: overrides) }
        }
        throw .profileNotFound(name: name, searched: directories)
    }

    /// A copy with dotted-path overrides applied (`--set memory.bandwidth=2.0e12`), then
    /// decoded and validated again. Overrides are applied in sorted path order.
    ///
    /// Path syntax: keys separated by `.`; array elements by index (`onChipBuffers.0` or
    /// `onChipBuffers[0]`) or by their `name` (`onChipBuffers.L2`). A path that ends at a
    /// sourced figure (`memory.bandwidth`) sets its `value` and records the override in its
    /// `source`. The value is converted to the field's JSON type (number, integer, boolean,
    /// string; a comma-separated list for arrays); a value starting with `[` or `{` is parsed
    /// as JSON and replaces the field. Absent optional fields may be created
    /// (`faults.kernelLaunchFailure.probability=0.01`).
    ///
    /// - Throws: `ProfileError.unknownOverridePath`, `.overrideWrongType`, `.malformedOverride`,
    ///   or any validation error the new values cause.
    public func applying(overrides: [String: String]) throws(ProfileError) -> DeviceProfile {
        let settings = overrides.keys.sorted().map { (path: $0, value: overrides[$0] ?? "") }
        return try applying(settings: settings)
    }

    /// Like `applying(overrides:)` with raw `PATH=VALUE` strings applied in the given order
    /// (as repeated `--set` options arrive).
    /// - Throws: `ProfileError.malformedOverride` for a string without `=`, or as `applying(overrides:)`.
    public func applying(settings: [String]) throws(ProfileError) -> DeviceProfile {
        var parsed: [(path: String, value: String)] = []
        for s in settings { parsed.append(try DeviceProfile.parseSetting(s, origin: origin)) }
        return try applying(settings: parsed)
    }

    /// Splits `"a.b.c=value"` into path and value (at the first `=`; both trimmed of spaces).
    /// - Throws: `ProfileError.malformedOverride` when there is no `=` or the path is empty.
    public static func parseSetting(_ setting: String, origin: String = "--set") throws(ProfileError) -> (path: String, value: String) {
        guard let eq = setting.firstIndex(of: "=") else {
            throw .malformedOverride(file: origin, setting: setting, reason: "expected PATH=VALUE")
        }
        let path = setting[..<eq].trimmingCharacters(in: .whitespaces)
        let value = setting[setting.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard !path.isEmpty else {
            throw .malformedOverride(file: origin, setting: setting, reason: "empty path before '='")
        }
        return (path, value)
    }

    /// The profile as pretty-printed JSON in the bundled schema (sorted keys), e.g. for the
    /// `calibrate` command. Round-trips through `decode(data:origin:)`.
    /// - Throws: `ProfileError.invalidValue` if a figure cannot be represented (NaN/infinity).
    public func encoded() throws(ProfileError) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return try enc.encode(self)
        } catch {
            throw .invalidValue(file: origin, path: "", value: "\(error)", expected: "finite figures that JSON can represent")
        }
    }

    private func applying(settings: [(path: String, value: String)]) throws(ProfileError) -> DeviceProfile {
        let data = try encoded()
        let tree = try DeviceProfile.parseJSON(data, origin: origin)
        return try DeviceProfile.build(tree: tree, origin: origin, settings: settings)
    }
}

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

// MARK: - Build pipeline (parse → override → decode → unknown-field check → validate)

/// A value-level failure raised inside `init(from:)` of the schema's enums; mapped to
/// `ProfileError.unknownValue` by the loader.
struct ProfileEnumFailure: Error {
    let path: String
    let value: String
    let allowed: [String]
}

func decodeProfileEnum<E: RawRepresentable & CaseIterable>(_ type: E.Type, from decoder: any Decoder) throws -> E where E.RawValue == String {
    let c = try decoder.singleValueContainer()
    let s = try c.decode(String.self)
    guard let v = E(rawValue: s) else {
        throw ProfileEnumFailure(path: renderProfileCodingPath(decoder.codingPath), value: s, allowed: E.allCases.map(\.rawValue))
    }
    return v
}

/// An integer field holding a fraction or an out-of-range number; mapped to
/// `ProfileError.wrongType(expected: "an integer")` by the loader. (Decoding `Int` directly
/// would, on some Foundation versions, lose the field's path.)
struct ProfileIntegerFailure: Error {
    let path: [ProfilePathComponent]
    let found: String?
}

/// `d` as an Int when it is a whole number within ±2^53.
func profileInteger(_ d: Double) -> Int? {
    guard d.isFinite, d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else { return nil }
    return Int(exactly: d)
}

extension KeyedDecodingContainer {
    func decodeProfileInt(_ key: Key) throws -> Int {
        let d: Double
        do {
            d = try decode(Double.self, forKey: key)
        } catch DecodingError.typeMismatch {
            throw ProfileIntegerFailure(path: profileCodingPathComponents(codingPath + [key]), found: nil)
        }
        guard let i = profileInteger(d) else {
            throw ProfileIntegerFailure(path: profileCodingPathComponents(codingPath + [key]), found: "number " + formatProfileJSONNumber(d))
        }
        return i
    }

    func decodeProfileIntIfPresent(_ key: Key) throws -> Int? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decodeProfileInt(key)
    }
}

/// One component of a JSON path.
enum ProfilePathComponent: Equatable, Sendable {
    case key(String)
    case index(Int)
}

/// Renders a path as `a.b[0].c`, dropping `.value` components (a sourced figure's payload).
func renderProfilePath(_ comps: [ProfilePathComponent]) -> String {
    var s = ""
    for (i, comp) in comps.enumerated() {
        if i > 0, case .key("value") = comp { continue }
        switch comp {
        case .key(let k):
            if !s.isEmpty { s += "." }
            s += k
        case .index(let i):
            s += "[\(i)]"
        }
    }
    return s
}

func profileCodingPathComponents(_ path: [any CodingKey]) -> [ProfilePathComponent] {
    path.map { key in
        if let i = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(i)" { return .index(i) }
        return .key(key.stringValue)
    }
}

func renderProfileCodingPath(_ path: [any CodingKey]) -> String { renderProfilePath(profileCodingPathComponents(path)) }

extension DeviceProfile {
    struct AppliedOverride {
        let written: String
        let value: String
        /// Rendered path of the field the override set.
        let target: String
        /// Rendered path of the first component the override had to create, if any.
        let createdAt: String?
    }

    static func parseJSON(_ data: Data, origin: String) throws(ProfileError) -> ProfileJSON {
        var parser = ProfileJSONParser(bytes: [UInt8](data))
        do {
            return try parser.parseDocument()
        } catch {
            throw .malformedJSON(file: origin, line: error.line, column: error.column, reason: error.message)
        }
    }

    static func build(tree input: ProfileJSON, origin: String, settings: [(path: String, value: String)]) throws(ProfileError) -> DeviceProfile {
        guard case .object = input else {
            throw .wrongType(file: origin, path: "(document)", expected: "a JSON object", found: input.typeDescription)
        }
        var tree = input
        var applied: [AppliedOverride] = []
        for s in settings {
            applied.append(try applyOverride(&tree, path: s.path, value: s.value, origin: origin))
        }
        let profile: DeviceProfile
        do {
            profile = try JSONDecoder().decode(DeviceProfile.self, from: Data(tree.serialized().utf8))
        } catch let failure as ProfileEnumFailure {
            throw .unknownValue(file: origin, path: failure.path, value: failure.value, allowed: failure.allowed)
        } catch let failure as ProfileIntegerFailure {
            let path = renderProfilePath(failure.path)
            if let o = applied.last(where: { $0.target == path }) {
                throw .overrideWrongType(file: origin, path: o.written, value: o.value, expected: "an integer")
            }
            throw .wrongType(file: origin, path: path, expected: "an integer",
                             found: failure.found ?? tree.lookup(failure.path)?.typeDescription ?? "nothing")
        } catch let error as DecodingError {
            throw mapDecodingError(error, tree: tree, origin: origin, applied: applied)
        } catch {
            throw .invalidValue(file: origin, path: "(document)", value: "", expected: "a decodable profile (\(error))")
        }
        // Unknown fields: anything in the input that the decoded profile does not carry.
        let canonicalData: Data
        do {
            canonicalData = try JSONEncoder().encode(profile)
        } catch {
            throw .invalidValue(file: origin, path: "(document)", value: "", expected: "finite figures (\(error))")
        }
        let canonical = try parseJSON(canonicalData, origin: origin)
        if let unknown = firstUnknownField(input: tree, canonical: canonical, prefix: []) {
            let rendered = renderProfilePath(unknown)
            for o in applied {
                if let c = o.createdAt, rendered == c || rendered.hasPrefix(c + ".") || rendered.hasPrefix(c + "[") {
                    throw .unknownOverridePath(file: origin, path: o.written)
                }
            }
            throw .unknownField(file: origin, path: rendered)
        }
        var result = profile
        result.origin = origin
        try result.validate()
        return result
    }

    static func mapDecodingError(_ error: DecodingError, tree: ProfileJSON, origin: String, applied: [AppliedOverride]) -> ProfileError {
        func overrideFor(_ path: String) -> AppliedOverride? { applied.last { $0.target == path } }
        switch error {
        case .keyNotFound(let key, let ctx):
            return .missingField(file: origin, path: renderProfileCodingPath(ctx.codingPath + [key]))
        case .typeMismatch(let type, let ctx):
            let comps = profileCodingPathComponents(ctx.codingPath)
            let path = renderProfilePath(comps)
            let expected = jsonTypeName(type)
            if let o = overrideFor(path) {
                if o.createdAt != nil && expected == "an object" {
                    return .overrideWrongType(file: origin, path: o.written, value: o.value,
                                              expected: "a new sourced figure: give a JSON object literal, e.g. {\"value\": 1e15, \"source\": \"…\"}")
                }
                return .overrideWrongType(file: origin, path: o.written, value: o.value, expected: expected)
            }
            return .wrongType(file: origin, path: path, expected: expected, found: tree.lookup(comps)?.typeDescription ?? "nothing")
        case .valueNotFound(let type, let ctx):
            let path = renderProfileCodingPath(ctx.codingPath)
            return .wrongType(file: origin, path: path, expected: jsonTypeName(type), found: "null")
        case .dataCorrupted(let ctx):
            let comps = profileCodingPathComponents(ctx.codingPath)
            let path = renderProfilePath(comps)
            let found = tree.lookup(comps)
            if case .number? = found {
                // Only integer fields reject a JSON number: a fraction, or out of Int's range.
                if let o = overrideFor(path) {
                    return .overrideWrongType(file: origin, path: o.written, value: o.value, expected: "an integer")
                }
                return .wrongType(file: origin, path: path, expected: "an integer", found: found?.typeDescription ?? "nothing")
            }
            return .invalidValue(file: origin, path: path, value: found?.typeDescription ?? "", expected: ctx.debugDescription)
        @unknown default:
            return .invalidValue(file: origin, path: "(document)", value: "", expected: "\(error)")
        }
    }

    static func jsonTypeName(_ type: Any.Type) -> String {
        let d = String(describing: type)
        if d.hasPrefix("Dictionary") || d.hasPrefix("KeyedDecodingContainer") { return "an object" }
        if d.hasPrefix("Array") || d.hasPrefix("UnkeyedDecodingContainer") { return "an array" }
        if d == "Double" || d == "Float" { return "a number" }
        if d.hasPrefix("Int") || d.hasPrefix("UInt") { return "an integer" }
        if d == "String" { return "a string" }
        if d == "Bool" { return "a boolean" }
        return d
    }

    /// The first key present (and non-null) in `input` but absent from `canonical`, depth first
    /// in document order. Keys starting with `_` or `$` are comments.
    static func firstUnknownField(input: ProfileJSON, canonical: ProfileJSON, prefix: [ProfilePathComponent]) -> [ProfilePathComponent]? {
        switch (input, canonical) {
        case let (.object(inMembers), .object(canMembers)):
            for (k, v) in inMembers {
                if k.hasPrefix("_") || k.hasPrefix("$") { continue }
                if case .null = v { continue }
                guard let cv = canMembers.first(where: { $0.0 == k })?.1 else { return prefix + [.key(k)] }
                if let u = firstUnknownField(input: v, canonical: cv, prefix: prefix + [.key(k)]) { return u }
            }
            return nil
        case let (.array(inItems), .array(canItems)):
            for (i, v) in inItems.enumerated() where i < canItems.count {
                if let u = firstUnknownField(input: v, canonical: canItems[i], prefix: prefix + [.index(i)]) { return u }
            }
            return nil
        default:
            return nil
        }
    }

    // MARK: Overrides on the JSON tree

    static func applyOverride(_ tree: inout ProfileJSON, path written: String, value: String, origin: String) throws(ProfileError) -> AppliedOverride {
        let normalized = written.replacingOccurrences(of: "[", with: ".").replacingOccurrences(of: "]", with: "")
        let comps = normalized.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if comps.isEmpty || comps.contains(where: { $0.isEmpty }) {
            throw .malformedOverride(file: origin, setting: "\(written)=\(value)", reason: "path has an empty component")
        }
        var resolved: [ProfilePathComponent] = []
        var createdAt: [ProfilePathComponent]? = nil
        tree = try setNode(tree, comps[...], written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)
        return AppliedOverride(written: written, value: value, target: renderProfilePath(resolved), createdAt: createdAt.map(renderProfilePath))
    }

    private static func setNode(_ node: ProfileJSON, _ comps: ArraySlice<String>, written: String, value: String, origin: String,
                                resolved: inout [ProfilePathComponent], createdAt: inout [ProfilePathComponent]?) throws(ProfileError) -> ProfileJSON {
        guard let head = comps.first else {
            return try replacement(for: node, written: written, value: value, origin: origin, resolved: &resolved)
        }
        let rest = comps.dropFirst()
        switch node {
        case .object(var members):
            resolved.append(.key(head))
            if let i = members.firstIndex(where: { $0.0 == head }) {
                members[i].1 = try setNode(members[i].1, rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)
            } else {
                if createdAt == nil { createdAt = resolved }
                let fresh: ProfileJSON = rest.isEmpty ? .null : .object([])
                members.append((head, try setNode(fresh, rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)))
            }
            return .object(members)
        case .array(var items):
            var index: Int? = nil
            if let i = Int(head), i >= 0, i < items.count {
                index = i
            } else {
                index = items.firstIndex { item in
                    if case .object(let m) = item, case .string(let n)? = m.first(where: { $0.0 == "name" })?.1 { return n == head }
                    return false
                }
            }
            guard let i = index else { throw .unknownOverridePath(file: origin, path: written) }
            resolved.append(.index(i))
            items[i] = try setNode(items[i], rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt)
            return .array(items)
        case .null:
            // Creating a missing intermediate object.
            resolved.append(.key(head))
            let fresh: ProfileJSON = rest.isEmpty ? .null : .object([])
            return .object([(head, try setNode(fresh, rest, written: written, value: value, origin: origin, resolved: &resolved, createdAt: &createdAt))])
        default:
            throw .unknownOverridePath(file: origin, path: written)
        }
    }

    private static func replacement(for node: ProfileJSON, written: String, value: String, origin: String,
                                    resolved: inout [ProfilePathComponent]) throws(ProfileError) -> ProfileJSON {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        var literal: ProfileJSON? = nil
        if trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
            var p = ProfileJSONParser(bytes: Array(trimmed.utf8))
            do {
                literal = try p.parseDocument()
            } catch {
                throw .overrideWrongType(file: origin, path: written, value: value, expected: "valid JSON (\(error.message) at column \(error.column))")
            }
        }
        // A sourced figure: set its value, record the override in its source.
        if case .object(var members) = node,
           let vi = members.firstIndex(where: { $0.0 == "value" }),
           members.contains(where: { $0.0 == "source" }) {
            if let lit = literal, case .object = lit { return lit }
            let newValue: ProfileJSON
            if let lit = literal {
                newValue = lit
            } else {
                newValue = try convert(value, like: members[vi].1, written: written, origin: origin)
            }
            members[vi].1 = newValue
            if let si = members.firstIndex(where: { $0.0 == "source" }) {
                var previous = ""
                if case .string(let s) = members[si].1 { previous = s }
                members[si].1 = .string("override --set \(written)=\(value)" + (previous.isEmpty ? "" : " (was: \(previous))"))
            }
            resolved.append(.key("value"))
            return .object(members)
        }
        if let lit = literal { return lit }
        if case .object = node {
            throw .overrideWrongType(file: origin, path: written, value: value, expected: "an object: set one of its fields, or give a JSON object literal")
        }
        return try convert(value, like: node, written: written, origin: origin)
    }

    private static func convert(_ text: String, like existing: ProfileJSON, written: String, origin: String) throws(ProfileError) -> ProfileJSON {
        let t = text.trimmingCharacters(in: .whitespaces)
        func number() throws(ProfileError) -> ProfileJSON {
            guard let d = parseOverrideNumber(t) else {
                throw .overrideWrongType(file: origin, path: written, value: text, expected: "a number")
            }
            guard d.isFinite else {
                throw .invalidValue(file: origin, path: written, value: text, expected: "a finite number")
            }
            return .number(d)
        }
        switch existing {
        case .number:
            return try number()
        case .bool:
            switch t {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw .overrideWrongType(file: origin, path: written, value: text, expected: "true or false")
            }
        case .string:
            return .string(text)
        case .array(let items):
            if t.isEmpty { return .array([]) }
            let parts = t.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            var isNumeric = false
            if case .number? = items.first { isNumeric = true }
            var out: [ProfileJSON] = []
            for p in parts {
                if isNumeric {
                    guard let d = parseOverrideNumber(p), d.isFinite else {
                        throw .overrideWrongType(file: origin, path: written, value: text, expected: "a comma-separated list of finite numbers")
                    }
                    out.append(.number(d))
                } else {
                    out.append(.string(p))
                }
            }
            return .array(out)
        case .null, .object:
            // A field that did not exist: infer the type from the text.
            if t == "true" { return .bool(true) }
            if t == "false" { return .bool(false) }
            if let d = parseOverrideNumber(t) {
                guard d.isFinite else { throw .invalidValue(file: origin, path: written, value: text, expected: "a finite number") }
                return .number(d)
            }
            return .string(text)
        }
    }

    /// Parses a decimal number (`2.0e12`, `-3`, `.5`); rejects hex floats and words other than
    /// `nan`/`inf`/`infinity` (returned non-finite so the caller can say so).
    static func parseOverrideNumber(_ s: String) -> Double? {
        let lower = s.lowercased()
        if ["nan", "+nan", "-nan"].contains(lower) { return .nan }
        if ["inf", "+inf", "infinity", "+infinity"].contains(lower) { return .infinity }
        if ["-inf", "-infinity"].contains(lower) { return -.infinity }
        guard !s.isEmpty, s.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 101 || $0 == 69 || $0 == 43 || $0 == 45 }) else { return nil }
        return Double(s)
    }
}

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

// MARK: - Minimal JSON tree, strict parser (with line/column) and serializer

/// A JSON document as a tree; object members keep document order.
enum ProfileJSON: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([ProfileJSON])
    case object([(String, ProfileJSON)])

    var typeDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "boolean \(b)"
        case .number(let d): return "number \(formatProfileJSONNumber(d))"
        case .string(let s): return "string \"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    func lookup(_ path: [ProfilePathComponent]) -> ProfileJSON? {
        var node = self
        for c in path {
            switch (c, node) {
            case let (.key(k), .object(m)):
                guard let v = m.first(where: { $0.0 == k })?.1 else { return nil }
                node = v
            case let (.index(i), .array(a)):
                guard i >= 0, i < a.count else { return nil }
                node = a[i]
            default:
                return nil
            }
        }
        return node
    }

    func serialized() -> String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += formatProfileJSONNumber(d)
        case .string(let s): writeProfileJSONString(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out += "," }
                writeProfileJSONString(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }
}

func formatProfileJSONNumber(_ d: Double) -> String {
    guard d.isFinite else { return "null" }
    if d == d.rounded(), abs(d) < 9.0e15 { return String(Int64(d)) }
    return "\(d)"
}

func writeProfileJSONString(_ s: String, into out: inout String) {
    out += "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out += "\""
}

/// A strict RFC 8259 parser over UTF-8 bytes that reports 1-based line and column (in
/// characters) of the first error. Nesting is limited to 256 levels so hostile input cannot
/// exhaust the stack; duplicate object keys are errors.
struct ProfileJSONParser {
    struct Failure: Error {
        let line: Int
        let column: Int
        let message: String
    }

    let bytes: [UInt8]
    var pos = 0
    var line = 1
    var column = 1
    var depth = 0
    static let maxDepth = 256

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(Failure) -> ProfileJSON {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { pos = 3 }
        skipWhitespace()
        if pos >= bytes.count { throw fail("empty document") }
        let v = try parseValue()
        skipWhitespace()
        if pos < bytes.count { throw fail("unexpected \(describe(bytes[pos])) after the JSON value") }
        return v
    }

    private func fail(_ message: String) -> Failure { Failure(line: line, column: column, message: message) }

    private func describe(_ b: UInt8) -> String {
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return String(format: "byte 0x%02X", b)
    }

    private mutating func advance() {
        guard pos < bytes.count else { return }
        let b = bytes[pos]
        pos += 1
        if b == 0x0A {
            line += 1
            column = 1
        } else if b & 0xC0 != 0x80 {
            column += 1
        }
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { advance() } else { break }
        }
    }

    private mutating func parseValue() throws(Failure) -> ProfileJSON {
        guard pos < bytes.count else { throw fail("unexpected end of input, expected a value") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected \(describe(bytes[pos])), expected a value")
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        for b in word.utf8 {
            guard pos < bytes.count, bytes[pos] == b else { throw fail("invalid literal, expected '\(word)'") }
            advance()
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > ProfileJSONParser.maxDepth { throw fail("nesting deeper than \(ProfileJSONParser.maxDepth) levels") }
    }

    private mutating func parseObject() throws(Failure) -> ProfileJSON {
        try enter()
        advance()  // {
        var members: [(String, ProfileJSON)] = []
        var keys: Set<String> = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            advance()
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input inside an object") }
            guard bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key, found \(describe(bytes[pos]))") }
            let keyLine = line, keyColumn = column
            let key = try parseString()
            if keys.contains(key) { throw Failure(line: keyLine, column: keyColumn, message: "duplicate key \"\(key)\"") }
            keys.insert(key)
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                throw fail(pos < bytes.count ? "expected ':' after key \"\(key)\", found \(describe(bytes[pos]))" : "unexpected end of input after key \"\(key)\"")
            }
            advance()
            skipWhitespace()
            members.append((key, try parseValue()))
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input inside an object, expected ',' or '}'") }
            if bytes[pos] == UInt8(ascii: ",") { advance(); continue }
            if bytes[pos] == UInt8(ascii: "}") { advance(); break }
            throw fail("expected ',' or '}' in an object, found \(describe(bytes[pos]))")
        }
        depth -= 1
        return .object(members)
    }

    private mutating func parseArray() throws(Failure) -> ProfileJSON {
        try enter()
        advance()  // [
        var items: [ProfileJSON] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            advance()
            depth -= 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input inside an array, expected ',' or ']'") }
            if bytes[pos] == UInt8(ascii: ",") { advance(); continue }
            if bytes[pos] == UInt8(ascii: "]") { advance(); break }
            throw fail("expected ',' or ']' in an array, found \(describe(bytes[pos]))")
        }
        depth -= 1
        return .array(items)
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard pos < bytes.count else { throw fail("unexpected end of input in a \\u escape") }
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit \(describe(b)) in a \\u escape")
            }
            v = v * 16 + d
            advance()
        }
        return v
    }

    private mutating func parseString() throws(Failure) -> String {
        advance()  // opening quote
        var buf: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw fail("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { advance(); break }
            if b < 0x20 { throw fail("control character \(describe(b)) in a string (escape it)") }
            if b == UInt8(ascii: "\\") {
                advance()
                guard pos < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[pos]
                advance()
                switch e {
                case UInt8(ascii: "\""): buf.append(0x22)
                case UInt8(ascii: "\\"): buf.append(0x5C)
                case UInt8(ascii: "/"): buf.append(0x2F)
                case UInt8(ascii: "b"): buf.append(0x08)
                case UInt8(ascii: "f"): buf.append(0x0C)
                case UInt8(ascii: "n"): buf.append(0x0A)
                case UInt8(ascii: "r"): buf.append(0x0D)
                case UInt8(ascii: "t"): buf.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired high surrogate in a \\u escape")
                        }
                        advance(); advance()
                        let low = try parseHex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid low surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("unpaired low surrogate in a \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    buf.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                }
                continue
            }
            buf.append(b)
            advance()
        }
        let s = String(decoding: buf, as: UTF8.self)
        if !s.utf8.elementsEqual(buf) { throw fail("invalid UTF-8 in a string") }
        return s
    }

    private mutating func parseNumber() throws(Failure) -> ProfileJSON {
        let start = pos
        let startLine = line, startColumn = column
        func digit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        if bytes[pos] == UInt8(ascii: "-") { advance() }
        guard pos < bytes.count, digit(bytes[pos]) else { throw fail("invalid number: expected a digit") }
        if bytes[pos] == UInt8(ascii: "0") {
            advance()
            if pos < bytes.count, digit(bytes[pos]) { throw fail("invalid number: leading zero") }
        } else {
            while pos < bytes.count, digit(bytes[pos]) { advance() }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            advance()
            guard pos < bytes.count, digit(bytes[pos]) else { throw fail("invalid number: expected a digit after '.'") }
            while pos < bytes.count, digit(bytes[pos]) { advance() }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            advance()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { advance() }
            guard pos < bytes.count, digit(bytes[pos]) else { throw fail("invalid number: expected a digit in the exponent") }
            while pos < bytes.count, digit(bytes[pos]) { advance() }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw Failure(line: startLine, column: startColumn, message: "number \(text) is out of range")
        }
        return .number(d)
    }
}
