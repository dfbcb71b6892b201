import ArgumentParser
import Foundation
import Polychip
import PolychipBench
import PolychipMPI

/// `calibrate --interconnect` options.
struct InterconnectCalibrationOptions: ParsableArguments {
    @Flag(help: "Fit the profile's interconnect (overhead, latency, bandwidth) to collectives measured across the ranks of an MPI job (start with mpirun -np N; implies --mesh mpi).")
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

extension CalibrateCommand {
    /// `calibrate --interconnect`: all-reduce, all-gather, reduce-scatter and all-to-all measured
    /// across the ranks, the one-switch interconnect fitted to them (``InterconnectModel``), and
    /// the base profile written with that interconnect by rank 0.
    func runInterconnect(files: OutputFiles) throws {
        if let m = mesh.mesh, m != "mpi" { throw ValidationError("--interconnect runs on --mesh mpi") }
        let list = try CollectiveBenchmark.sizes(parsing: interconnectOptions.sizes)
        let group = try mesh.group()
        try MeshOptions.asRank(group) {
            let lead = group.rank == 0
            let measureOptions = try CollectiveBenchOptions.parse(["--sizes", interconnectOptions.sizes, "--rounds", "3"])
            let rows = try measureOptions.measure(CollectiveKind.allCases, sizes: list, group: group, dtype: .f32,
                                                  minTime: minTime ?? 0.3, comparePeer: false)
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
            try group.barrier(timeout: 3600)
            guard lead, let base else { return }
            let fit = try InterconnectModel.fit(rows, base: base, ranks: group.size)
            let date = ISO8601DateFormatter().string(from: Date()).prefix(10)
            let hosts = "\(group.size) ranks on \(group.hostCount) host\(group.hostCount == 1 ? "" : "s")"
            let command = "polychip calibrate --interconnect --sizes \(interconnectOptions.sizes) (\(hosts), \(CollectiveBenchmark.byteLabel(list.first ?? 0))–\(CollectiveBenchmark.byteLabel(list.last ?? 0)))"
            let profileName = name ?? out.map(Self.name(fromPath:)) ?? "calibrated-mpi-\(group.size)"
            var profile = try InterconnectModel.profile(base: base, ranks: group.size, overhead: fit.overhead, latency: fit.latency,
                                                        bandwidth: fit.bandwidth, name: profileName,
                                                        source: "fitted by \(command) on \(date)")
            profile.note = (profile.note.map { $0 + " " } ?? "") + String(format:
                "Interconnect fitted by polychip calibrate --interconnect on %@ over %d measured collectives (%@): overhead %.3g s, latency %.3g s, bandwidth %.4g B/s, in-sample median |error| %.1f%%.",
                String(date), fit.points, hosts, fit.overhead, fit.latency, fit.bandwidth, fit.medianAbsoluteError * 100)
            let points = try InterconnectModel.compare(rows, profile: profile)
            eprint(String(format: "calibrate: interconnect of %@: overhead %.2f us, latency %.2f us per phase, bandwidth %.3f GB/s per port; in-sample median |error| %.1f%% over %d points",
                          hosts, fit.overhead * 1e6, fit.latency * 1e6, fit.bandwidth / 1e9, fit.medianAbsoluteError * 100, fit.points))
            eprint(InterconnectModel.table(points, profile: profileName))
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
