import ArgumentParser
import Foundation
import Polychip
import PolychipBench
import PolychipMPI

/// `bench --collective …` options (measured collectives across the ranks of `--mesh mpi`).
struct CollectiveBenchOptions: ParsableArguments {
    @Option(name: .customLong("collective"), help: ArgumentHelp("With --mesh mpi: all-reduce, all-gather, reduce-scatter or all-to-all (repeatable; default all four).", valueName: "name"))
    var collectives: [String] = []

    @Option(help: ArgumentHelp("With --collective: sizes MIN:MAX[:FACTOR] (powers of FACTOR, default 2) or a comma list; K, M, G = 2¹⁰, 2²⁰, 2³⁰ bytes.", valueName: "sizes"))
    var sizes: String = "4K:256M:4"

    @Option(help: ArgumentHelp("With --collective: timing rounds per size (ours and Open MPI's alternate).", valueName: "n"))
    var rounds: Int = 5

    @Flag(name: .customLong("no-peer"), help: "With --collective: do not time Open MPI's own collective beside ours.")
    var noPeer = false

    func validate() throws {
        for c in collectives where CollectiveKind(rawValue: c) == nil {
            throw ValidationError("unknown collective '\(c)'; use \(CollectiveKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard rounds >= 1, rounds <= 1000 else { throw ValidationError("--rounds must be 1…1000, got \(rounds)") }
        do { _ = try CollectiveBenchmark.sizes(parsing: sizes) } catch { throw ValidationError("--sizes: \(error)") }
    }

    /// The selected collectives (all four when none is named).
    var kinds: [CollectiveKind] {
        collectives.isEmpty ? CollectiveKind.allCases : collectives.compactMap(CollectiveKind.init(rawValue:))
    }

    /// Measures `kinds` on `group` at `sizes`; checks the memory they need first.
    func measure(_ kinds: [CollectiveKind], sizes list: [Int], group: MPIProcessGroup, dtype: DType, minTime: Double,
                 comparePeer: Bool) throws -> [CollectiveBenchRow] {
        // Input, output and our scratch per rank (≤ 3 × the largest buffer), times the ranks on this host.
        let largest = list.max() ?? 0
        let perHost = Double(largest) * 3 * Double(group.localSize)
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard perHost <= memory * 0.6 else {
            throw ValidationError(String(format: "--sizes up to %@ need about %.1f GiB on this host (%d ranks × 3 buffers); it has %.1f GiB: lower the largest size",
                                         CollectiveBenchmark.byteLabel(largest), perHost / 1_073_741_824, group.localSize, memory / 1_073_741_824))
        }
        let target = MPIBenchTarget(group)
        var rows: [CollectiveBenchRow] = []
        for k in kinds {
            if group.rank == 0 { eprint("bench: \(k) across \(group.size) ranks, \(list.count) sizes…") }
            rows += try CollectiveBenchmark.run(k, sizes: list, dtype: dtype, target: target, hosts: group.hostCount,
                                               options: .init(rounds: rounds, minTime: minTime, comparePeer: comparePeer),
                                               progress: { if group.rank == 0 { eprint($0) } })
        }
        // #wrong over every rank, so every rank reports (and exits) the same.
        let wrong = try group.allGather(ints: rows.map(\.wrong))
        for i in rows.indices { rows[i].wrong = wrong.reduce(0) { $0 + ($1.count > i ? $1[i] : 0) } }
        return rows
    }
}

/// ``CollectiveBenchTarget`` on an MPI group: our collectives against Open MPI's own.
final class MPIBenchTarget: CollectiveBenchTarget {
    let group: MPIProcessGroup
    init(_ group: MPIProcessGroup) { self.group = group }
    var rank: Int { group.rank }
    var size: Int { group.size }

    func runOurs(_ kind: CollectiveKind, dtype: DType, input: UnsafeRawPointer, output: UnsafeMutableRawPointer, sizeBytes: Int) throws {
        let p = group.size, es = dtype.bitWidth / 8
        switch kind {
        case .allReduce: try group.allReduce(input, output, count: sizeBytes / es, dtype: dtype)
        case .reduceScatter: try group.reduceScatter(input, output, count: sizeBytes / es / p, dtype: dtype)
        case .allGather: try group.allGather(input, output, bytes: sizeBytes / p)
        case .allToAll:
            let each = Array(repeating: sizeBytes / p, count: p)
            try group.allToAll(input, sendBytes: each, output, recvBytes: each)
        }
    }

    func runPeer(_ kind: CollectiveKind, dtype: DType, input: UnsafeRawPointer, output: UnsafeMutableRawPointer, sizeBytes: Int) throws {
        try group.mpiCollective(kind, input, output, sizeBytes: sizeBytes)
    }

    func peerName(for kind: CollectiveKind, dtype: DType) -> String? {
        if kind.reduces && dtype != .f32 { return nil }  // MPI has no f16/bf16 sums
        let call = ["all-reduce": "MPI_Allreduce", "all-gather": "MPI_Allgather", "reduce-scatter": "MPI_Reduce_scatter_block",
                    "all-to-all": "MPI_Alltoall"][kind.rawValue] ?? ""
        return "\(MPIProcessGroup.libraryVersion) \(call)"
    }

    func barrier() throws { try group.barrier() }
    func maximum(_ value: Double) throws -> Double { try group.maximum(value) }
}

extension BenchCommand {
    /// `bench --mesh mpi [--collective …] [--validate]`: measured collectives across the ranks,
    /// nccl-tests style, beside Open MPI's own; with `--validate`, against the time model of a
    /// profile (`--profile FILE` from `calibrate --interconnect`, else fitted to this run).
    func runCollectives(files: OutputFiles) throws {
        // --collective implies --mesh mpi under mpirun.
        guard mesh.isMPI || MPIProcessGroup.launchedByMPIRun else {
            throw ValidationError("--collective runs across the ranks of an MPI job: start with mpirun -np N … --mesh mpi")
        }
        guard kernels.isEmpty, shape == nil else { throw ValidationError("with --mesh mpi, bench measures collectives: use --collective, not --kernel") }
        guard !csv else { throw ValidationError("with --mesh mpi, use --json (CSV is not written for collectives)") }
        guard let dt = DType(rawValue: dtype), dt.isFloat else { throw ValidationError("--dtype must be f32, f16 or bf16") }
        let list = try CollectiveBenchmark.sizes(parsing: collectiveOptions.sizes)
        let group = try mesh.group()
        try MeshOptions.asRank(group) {
            let lead = group.rank == 0
            // The model's view of the job (only --validate needs it: every host the same rank count).
            let layout = validateModel ? try group.interconnectLayout() : InterconnectModel.Layout(hosts: 1, ranksPerHost: group.size)
            // One level can be fitted to the job's own collectives; two cannot be told apart in them.
            if validateModel && simulation.profiles.isEmpty && layout.hosts > 1 && layout.ranksPerHost > 1 {
                throw ValidationError("--validate on \(layout) needs --profile FILE: one job's collectives mix the intra- and inter-host levels; calibrate --interconnect measures each on its own sub-communicator")
            }
            let rows = try collectiveOptions.measure(collectiveOptions.kinds, sizes: list, group: group, dtype: dt, minTime: minTime,
                                                     comparePeer: !collectiveOptions.noPeer)
            let cpu = HostReport.cpuModelName ?? "unknown CPU"
            let title = "polychip bench --mesh mpi: \(group.size) ranks on \(group.hostCount) host\(group.hostCount == 1 ? "" : "s") (\(cpu)), \(dt)"
            var modeled: [String: [Int: Double]] = [:]
            var points: [InterconnectModel.Point] = []
            var profileName = ""
            if validateModel {
                let profile: DeviceProfile
                if let file = simulation.profiles.first {
                    profile = try SimulatedBackend.loadProfile(file, settings: simulation.settings)
                    profileName = profile.name
                } else {
                    let base = try SimulatedBackend.loadProfile("h100-sxm")
                    let fit = try InterconnectModel.fit(intraHost: layout.hosts == 1 ? rows : [], interHost: layout.hosts == 1 ? [] : rows,
                                                        base: base, layout: layout)
                    profile = try InterconnectModel.profile(base: base, fit: fit, source: "fitted to this run (in sample)")
                    profileName = "an interconnect fitted to this run (in sample; pass --profile FILE from calibrate --interconnect)"
                }
                points = try InterconnectModel.compare(rows, profile: profile, devices: group.modelDevices(layout))
                for p in points { modeled[p.collective, default: [:]][p.size] = p.modeledSeconds }
            }
            if rows.contains(where: { $0.wrong > 0 }) && !lead { throw ExitCode(1) }
            guard lead else { return }
            if let plot {
                try files.stage(plot, Data(CollectiveBenchmark.plot(rows, modeled: modeled, title: title).utf8))
                try files.commit()
                eprint("wrote \(plot)")
            }
            if json {
                if validateModel {
                    struct Validation: Encodable { var rows: [CollectiveBenchRow]; var profile: String; var points: [InterconnectModel.Point]; var medianAbsoluteError: Double }
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                    enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                    print(String(decoding: try enc.encode(Validation(rows: rows, profile: profileName, points: points,
                                                                     medianAbsoluteError: InterconnectModel.medianAbsoluteError(points))), as: UTF8.self))
                } else {
                    print(String(decoding: try CollectiveBenchmark.json(rows), as: UTF8.self))
                }
            } else {
                print(CollectiveBenchmark.table(rows, title: title), terminator: "")
                if validateModel { print(InterconnectModel.table(points, profile: profileName), terminator: "") }
            }
            if rows.contains(where: { $0.wrong > 0 }) { throw ExitCode(1) }
        }
    }
}
