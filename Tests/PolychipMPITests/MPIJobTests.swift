// MPIJobTests.swift — process-per-rank meshes end to end: the built `polychip` binary under
// `mpirun` (conformance with 2 and 4 ranks, a killed rank, a silent rank, the collective
// benchmark, interconnect calibration on one host and on two named hosts, the expert-parallel
// layer through `run`).
//
// CI installs openmpi-bin, so these run there; where `mpirun` is absent they are skipped with
// that reason. As root, mpirun needs --allow-run-as-root; --oversubscribe lets 4 ranks share
// 2 cores. About 2 minutes in a debug build on 2 cores.

import Foundation
import Testing
import Polychip
import PolychipBench
import PolychipReference
import PolychipTestSupport

/// `mpirun` on this machine, if any.
let mpirunPath: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
        let p = "\(dir)/mpirun"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}()

/// The outcome of one mpirun job.
struct MPIJob {
    var status: Int32
    var out: String
    var err: String
    var seconds: Double

    /// The lines of stderr that rank `r` wrote as its error.
    func errorLine(rank r: Int, of p: Int) -> String? {
        err.split(separator: "\n").first { $0.contains("polychip: rank \(r) of \(p): error:") }.map(String.init)
    }
}

/// Runs `mpirun -np N [LAUNCHER…] polychip ARGS` (killing it after `limit` seconds).
func mpirun(_ n: Int, _ args: [String], recovery: Bool = true, limit: Double = 600, launcher: [String] = []) throws -> MPIJob {
    guard let mpirun = mpirunPath, let bin = TestSupport.binary else { throw PolychipError.io(path: "mpirun", reason: "not found") }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: mpirun)
    p.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "\(n)"] + (recovery ? ["--enable-recovery"] : []) + launcher + [bin.path] + args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let t0 = Date()
    try p.run()
    let errData = Locked(Data())
    let reader = Thread { let d = err.fileHandleForReading.readDataToEndOfFile(); errData.withLock { $0 = d } }
    reader.start()
    let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: killer)
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    killer.cancel()
    while reader.isExecuting { usleep(1000) }
    return MPIJob(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self),
                  err: String(decoding: errData.withLock { $0 }, as: UTF8.self), seconds: Date().timeIntervalSince(t0))
}

let hasMPI = mpirunPath != nil && TestSupport.binary != nil

/// Whether this process may give a child a host name of its own (`unshare --uts`: root).
let canNameHosts: Bool = {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
    p.arguments = ["--uts", "/bin/true"]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}()

/// Starts each rank in a UTS namespace of its own named `pc-test-hH`, H = rank / `ranksPerHost`:
/// the ranks see `ranks / ranksPerHost` hosts (their messages still go through shared memory).
func hostNaming(ranksPerHost: Int) -> [String] {
    ["/usr/bin/unshare", "--uts", "/bin/sh", "-c",
     "hostname pc-test-h$((OMPI_COMM_WORLD_RANK / \(ranksPerHost))) && exec \"$0\" \"$@\""]
}

@Suite(.serialized, .enabled(if: hasMPI, "mpirun not found: install openmpi-bin (CI installs it) to run the MPI tests"))
struct MPIJobTests {
    /// A generous timeout for passing runs: a loaded CI machine must not be mistaken for a dead rank.
    let patient = ["--mpi-timeout", "120"]

    @Test func conformanceWithTwoAndFourRanks() throws {
        for n in [2, 4] {
            let job = try mpirun(n, ["conform", "--mesh", "mpi"] + patient)
            #expect(job.status == 0 && job.err.isEmpty == false, "\(n) ranks: \(job.err)")
            #expect(job.out.contains("0 failed"), "\(n) ranks:\n\(job.out)\n\(job.err)")
            // Every rank checked every case: one matrix per rank, the MoE layer included.
            for r in 0..<n { #expect(job.out.contains("mpi \(r)/\(n) ")) }
            #expect(job.out.contains("moe-layer-ep") && job.out.contains("all-to-all"))
            #expect(!job.out.contains("FAIL"))
        }
    }

    @Test func aKilledRankGivesEverySurvivorATypedErrorWithinTenSeconds() throws {
        let job = try mpirun(3, ["conform", "--mesh", "mpi", "--kernel", "all-reduce", "--dtype", "f32", "--mpi-fault", "kill:1@2"] + patient,
                             limit: 120)
        #expect(job.err.contains("injected fault kill:1@2"), "\(job.err)")
        var blamed: [String] = []
        for r in [0, 2] {
            let line = try #require(job.errorLine(rank: r, of: 3), "rank \(r) reported nothing:\n\(job.err)")
            // A survivor names the first dead rank it sees: rank 1, or the other survivor if
            // that one has already failed the collective and exited (both are true).
            #expect(line.contains("deviceLost fault on mpi:1@") || line.contains("deviceLost fault on mpi:\(2 - r)@"), "\(line)")
            blamed.append(line)
            // "stopped waiting for it after X s": bounded well inside the 10 s target.
            let after = line.components(separatedBy: "after ").last.flatMap { Double($0.split(separator: " ").first ?? "") }
            #expect((after ?? 99) <= 10, "\(line)")
        }
        #expect(blamed.contains { $0.contains("deviceLost fault on mpi:1@") }, "no survivor named the killed rank:\n\(blamed)")
    }

    @Test func aKilledRankWithoutRecoveryStillEndsEveryRankWithAMessage() throws {
        let job = try mpirun(3, ["conform", "--mesh", "mpi", "--kernel", "all-reduce", "--dtype", "f32", "--mpi-fault", "kill:2@2"] + patient,
                             recovery: false, limit: 120)
        // mpirun ends the job (non-zero, promptly); a survivor it terminates says so rather
        // than vanishing (one may be killed outright before it can write).
        #expect(job.status != 0 && job.seconds < 60)
        #expect([0, 1].contains { job.errorLine(rank: $0, of: 3) != nil }, "\(job.err)")
    }

    @Test func aSilentRankTimesOutEverySurvivor() throws {
        let job = try mpirun(2, ["conform", "--mesh", "mpi", "--kernel", "all-gather", "--dtype", "f32", "--mpi-fault", "stall:1@2:6",
                                 "--mpi-timeout", "2"], limit: 120)
        let line = try #require(job.errorLine(rank: 0, of: 2), "\(job.err)")
        #expect(line.contains("linkDown fault") && line.contains("for 2.0 s (timeout)"), "\(line)")
    }

    @Test func collectiveBenchmarkAgainstOpenMPI() throws {
        let job = try mpirun(2, ["bench", "--mesh", "mpi", "--collective", "all-reduce", "--collective", "all-to-all",
                                 "--sizes", "4K:64K:4", "--rounds", "2", "--min-time", "0.02", "--json"] + patient)
        #expect(job.status == 0, "\(job.err)")
        let rows = try JSONDecoder().decode([CollectiveBenchRow].self, from: Data(job.out.utf8))
        #expect(rows.count == 6)
        for r in rows {
            #expect(r.wrong == 0 && r.seconds > 0 && r.busbw > 0 && r.ranks == 2)
            #expect(r.peer?.contains("Open MPI") == true && (r.peerSeconds ?? 0) > 0)
        }
        #expect(rows.map(\.size) == [4096, 16384, 65536, 4096, 16384, 65536])
        let table = try mpirun(2, ["bench", "--mesh", "mpi", "--collective", "reduce-scatter", "--collective", "all-gather",
                                   "--sizes", "8K,100000", "--rounds", "1", "--min-time", "0.01", "--validate"] + patient)
        #expect(table.status == 0, "\(table.err)")
        #expect(table.out.contains("#       size") && table.out.contains("busbw") && table.out.contains("out of bounds values : 0 OK"))
        #expect(table.out.contains("median |error|"), "\(table.out)")
    }

    @Test func interconnectCalibrationWritesAProfileTheSimulatorLoads() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-mpi")
        let file = dir.appendingPathComponent("mpi2.json").path
        let job = try mpirun(2, ["calibrate", "--interconnect", "--base-profile", "h100-sxm", "--sizes", "16K:1M:4",
                                 "--min-time", "0.02", "--out", file] + patient)
        #expect(job.status == 0, "\(job.err)")
        // One host: the inter-host level is not measured, and calibrate says so.
        #expect(job.err.contains("inter-host: not measured (all 2 ranks on one host)"), "\(job.err)")
        let profile = try SimulatedBackend.loadProfile(file)
        #expect(profile.name == "mpi2")
        #expect(profile.interconnect.topology.value == .switch && profile.interconnect.devicesPerNode.value == 2)
        #expect(profile.interconnect.collectiveAlgorithms.value == [.direct])
        #expect(profile.interconnect.link.bandwidth.value > 1e6 && profile.interconnect.link.bandwidth.source.contains("calibrate --interconnect"))
        let validated = try mpirun(2, ["bench", "--mesh", "mpi", "--collective", "all-reduce", "--sizes", "64K", "--rounds", "1",
                                       "--min-time", "0.01", "--validate", "--profile", file] + patient)
        #expect(validated.status == 0 && validated.out.contains("modeled (mpi2)"), "\(validated.err)")
    }

    @Test(.enabled(if: canNameHosts, "unshare --uts is not permitted here (needs root): ranks cannot name hosts of their own"))
    func twoLevelCalibrationOnRanksOfTwoNamedHosts() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-mpi")
        let file = dir.appendingPathComponent("two.json").path
        // 2 hosts × 2 ranks: each level measured on its own sub-communicator, then the whole job.
        let job = try mpirun(4, ["calibrate", "--interconnect", "--base-profile", "h100-sxm", "--sizes", "16K:256K:4",
                                 "--min-time", "0.02", "--out", file] + patient, launcher: hostNaming(ranksPerHost: 2))
        #expect(job.status == 0, "\(job.err)")
        for line in ["intra-host (2 ranks): latency", "inter-host (2 ranks): latency", "the whole job, out of sample"] {
            #expect(job.err.contains(line), "\(line)\n\(job.err)")
        }
        let ic = try SimulatedBackend.loadProfile(file).interconnect
        #expect(ic.topology.value == .twoLevel && ic.nodeTopology?.value == .switch && ic.devicesPerNode.value == 2)
        #expect(ic.link.bandwidth.source.contains("fitted intra-host") && ic.interNode?.bandwidth.source.contains("fitted inter-host") == true)
        #expect(ic.interNode?.nicsPerNode.value == 1)
        // The profile prices the whole job: each rank is device host × 2 + local rank.
        let validated = try mpirun(4, ["bench", "--mesh", "mpi", "--collective", "all-to-all", "--sizes", "64K", "--rounds", "1",
                                       "--min-time", "0.01", "--no-peer", "--validate", "--profile", file] + patient,
                                   launcher: hostNaming(ranksPerHost: 2))
        #expect(validated.status == 0 && validated.out.contains("modeled (two)") && validated.out.contains("median |error|"), "\(validated.err)")
        // Without a profile the two levels cannot be told apart in the job's own collectives: refused.
        let refused = try mpirun(4, ["bench", "--mesh", "mpi", "--collective", "all-to-all", "--sizes", "64K", "--rounds", "1",
                                     "--min-time", "0.01", "--no-peer", "--validate"] + patient,
                                 recovery: false, launcher: hostNaming(ranksPerHost: 2))
        #expect(refused.status != 0 && refused.err.contains("needs --profile FILE") && !refused.err.contains("bench: all-to-all"), "\(refused.err)")

        // 2 hosts × 1 rank: the intra-host level is not measured, and the profile says so.
        let columns = dir.appendingPathComponent("columns.json").path
        let one = try mpirun(2, ["calibrate", "--interconnect", "--base-profile", "h100-sxm", "--sizes", "16K:256K:4",
                                 "--min-time", "0.02", "--out", columns] + patient, launcher: hostNaming(ranksPerHost: 1))
        #expect(one.status == 0 && one.err.contains("intra-host: not measured (one rank per host)"), "\(one.err)")
        let kept = try SimulatedBackend.loadProfile(columns).interconnect
        #expect(kept.topology.value == .twoLevel && kept.devicesPerNode.value == 1 && kept.link.bandwidth.source.hasPrefix("not measured"))
    }

    @Test func runMoELayerExpertParallelMatchesTheReference() throws {
        let dir = try TestSupport.tempDir(prefix: "polychip-mpi")
        let params = MoELayerParams(router: RouterParams(scoring: .softmax, topK: 2, renormalize: true), experts: .float, hasShared: false)
        let (t, h, f, e) = (7, 16, 8, 4)
        func fl(_ shape: [Int], _ seed: Double) throws -> HostTensor {
            try HostTensor(shape, .f32, floats: (0..<shape.reduce(1, *)).map { Float(sin(Double($0) * 0.37 + seed)) * 0.5 })
        }
        let inputs = [try fl([t, h], 1), try fl([e, h], 2), try fl([e, f, h], 3), try fl([e, f, h], 4), try fl([e, h, f], 5)]
        let names = Op.moeLayer(params).inputNames
        var args = ["run", "moe-layer", "--mesh", "mpi", "--device", "cpu"] + patient
        for (n, v) in zip(names, inputs) {
            let path = dir.appendingPathComponent("\(n).npy").path
            try NumPyFile.write(v, path: path)
            args += ["--input", "\(n)=\(path)"]
        }
        let outPath = dir.appendingPathComponent("out.npy").path
        args += ["--top-k", "2", "--output", "\(Op.moeLayer(params).outputNames[0])=\(outPath)"]
        let job = try mpirun(2, args)
        #expect(job.status == 0 && job.out.contains("expert-parallel on 2 MPI ranks"), "\(job.out)\n\(job.err)")
        let got = try NumPyFile.read(path: outPath)
        let expected = try Reference.evaluate(.moeLayer(params), inputs)[0]
        #expect(got.desc == expected.desc)
        let err = zip(got.floats, expected.floats).map { Double(abs($0 - $1)) }.max() ?? 1
        #expect(err < 1e-4, "max |error| \(err)")
    }
}
