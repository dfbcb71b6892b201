import ArgumentParser
import Foundation
import Polychip
import PolychipBench
import PolychipMPI

/// `calibrate --interconnect` options.
struct InterconnectCalibrationOptions: ParsableArguments {
    @Flag(help: "Fit the profile's interconnect to collectives measured across the ranks of an MPI job, per level: latency and bandwidth within a host (its ranks) and between hosts (one rank per host), and the per-collective overhead (start with mpirun -np N; implies --mesh mpi).")
    var interconnect = false

    @Option(name: .customLong("base-profile"), help: ArgumentHelp("With --interconnect: the profile whose compute and memory sections are kept (a file or bundled name; default: a quick calibration of rank 0's device).", valueName: "file"))
    var baseProfile: String?

    @Option(name: .customLong("sizes"), help: ArgumentHelp("With --interconnect: sizes of the measured collectives, MIN:MAX[:FACTOR] or a list.", valueName: "sizes"))
    var sizes: String = "64K:64M:4"

    func validate() throws {
        if !interconnect && baseProfile != nil { throw ValidationError("--base-profile is used with --interconnect") }
        do { _ = try CollectiveBenchmark.sizes(parsing: sizes) } catch { throw ValidationError("--sizes: \(error)") }
    }
}

extension MPIProcessGroup {
    /// The job's hosts and ranks per host, as the interconnect model places them; every host
    /// must hold the same number of ranks (a typed error names the counts otherwise).
    func interconnectLayout() throws -> InterconnectModel.Layout {
        let perHost = (0..<hostCount).map { h in hostIndex.filter { $0 == h }.count }
        guard let k = perHost.first, perHost.allSatisfy({ $0 == k }) else {
            throw PolychipError.invalidArgument(kernel: "interconnect model", argument: "ranks per host",
                                                reason: "the model needs the same number of ranks on every host, got \(perHost) on hosts \(Set(hostNames).sorted())")
        }
        return InterconnectModel.Layout(hosts: hostCount, ranksPerHost: k)
    }

    /// Each rank's device in the model of `layout`: host index × ranks per host + host-local rank.
    func modelDevices(_ layout: InterconnectModel.Layout) -> [Int] {
        var seen = [Int](repeating: 0, count: hostCount)
        return hostIndex.map { h in
            defer { seen[h] += 1 }
            return h * layout.ranksPerHost + seen[h]
        }
    }
}

extension CalibrateCommand {
    /// `calibrate --interconnect`: all-reduce, all-gather, reduce-scatter and all-to-all measured
    /// per level of the job's interconnect — the intra-host level on the ranks of host 0 (a
    /// sub-communicator split by host name), the inter-host level on one rank per host (split by
    /// host-local rank), one level at a time so they do not share the host — each level fitted
    /// (``InterconnectModel/fit(intraHost:interHost:base:layout:)``), and the base profile
    /// written with that interconnect by rank 0. A level the job does not have (one host; one
    /// rank per host) is said to be not measured. With both levels, the whole job's collectives
    /// are measured too and compared with the two-level model (not fitted to them).
    func runInterconnect(files: OutputFiles) throws {
        if let m = mesh.mesh, m != "mpi" { throw ValidationError("--interconnect runs on --mesh mpi") }
        let list = try CollectiveBenchmark.sizes(parsing: interconnectOptions.sizes)
        let group = try mesh.group()
        try MeshOptions.asRank(group) {
            let lead = group.rank == 0
            let layout = try group.interconnectLayout()
            let measureOptions = try CollectiveBenchOptions.parse(["--sizes", interconnectOptions.sizes, "--rounds", "3"])
            func measure(_ g: MPIProcessGroup) throws -> [CollectiveBenchRow] {
                try measureOptions.measure(CollectiveKind.allCases, sizes: list, group: g, dtype: .f32, minTime: minTime ?? 0.3, comparePeer: false)
            }
            // Every rank takes part in both splits (MPI_Comm_split is collective).
            let hostGroup = try group.split(color: group.hostIndex[group.rank], key: group.rank)
            let column = try group.split(color: group.localRank, key: group.rank)
            var intra: [CollectiveBenchRow] = [], inter: [CollectiveBenchRow] = [], whole: [CollectiveBenchRow] = []
            if layout.ranksPerHost >= 2 {
                if lead { eprint("calibrate: intra-host level: the \(layout.ranksPerHost) ranks on \(group.hostNames[0])…") }
                if group.hostIndex[group.rank] == 0 { intra = try measure(hostGroup) }
                try group.barrier(timeout: 3600, idle: true)
            }
            if layout.hosts >= 2 {
                if lead { eprint("calibrate: inter-host level: one rank on each of the \(layout.hosts) hosts…") }
                if group.localRank == 0 { inter = try measure(column) }
                try group.barrier(timeout: 3600, idle: true)
            }
            if layout.ranksPerHost >= 2 && layout.hosts >= 2 {
                if lead { eprint("calibrate: the whole job (\(layout)), to check the two-level model (not fitted)…") }
                whole = try measure(group)
            }
            // The base: a file or bundled profile, or rank 0's device calibrated now (the other
            // ranks wait for it, so that it has the host to itself).
            var base: DeviceProfile? = nil
            if let b = interconnectOptions.baseProfile {
                base = try SimulatedBackend.loadProfile(b)
            } else if lead {
                let dev = try Polychip.registry.device(device)
                eprint("calibrate: no --base-profile; a quick calibration of \(dev.id) supplies compute and memory…")
                let result = try Calibrator.calibrate(dev, plan: CalibrationPlan.quick(for: dev), command: "polychip calibrate --interconnect (quick base)",
                                                      progress: { eprint($0) })
                base = try result.profile(name: "base")
            }
            try group.barrier(timeout: 3600, idle: true)
            guard lead, let base else { return }
            let fit = try InterconnectModel.fit(intraHost: intra, interHost: inter, base: base, layout: layout)
            let date = ISO8601DateFormatter().string(from: Date()).prefix(10)
            let hosts = "\(group.size) ranks on \(group.hostCount) host\(group.hostCount == 1 ? "" : "s")"
            let command = "polychip calibrate --interconnect --sizes \(interconnectOptions.sizes) (\(hosts), \(CollectiveBenchmark.byteLabel(list.first ?? 0))–\(CollectiveBenchmark.byteLabel(list.last ?? 0)))"
            let profileName = name ?? out.map(Self.name(fromPath:)) ?? "calibrated-mpi-\(group.size)"
            var profile = try InterconnectModel.profile(base: base, fit: fit, name: profileName, source: "fitted by \(command) on \(date)")
            let summary = InterconnectModel.summary(fit)
            profile.note = (profile.note.map { $0 + " " } ?? "") + "Interconnect fitted by polychip calibrate --interconnect on \(date) (\(hosts)): \(summary.joined(separator: "; "))."
            for line in summary { eprint("calibrate: \(line)") }
            for (title, rows, devices) in [("intra-host level, in sample", intra, layout.devices(.intraHost)),
                                           ("inter-host level, in sample", inter, layout.devices(.interHost)),
                                           ("the whole job, out of sample", whole, group.modelDevices(layout))] where !rows.isEmpty {
                eprint(InterconnectModel.table(try InterconnectModel.compare(rows, profile: profile, devices: devices), profile: "\(profileName); \(title)"))
            }
            let data: Data
            do { data = try profile.encoded() } catch {
                throw PolychipError.malformedFile(path: out ?? "<stdout>", field: "", reason: "\(error)")
            }
            if let out {
                try files.stage(out, data)
                try files.commit()
                eprint("wrote \(out): use bench --mesh mpi --validate --profile \(out), --device sim:\(out), or simulate --profile \(out)")
            } else {
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }
}
