// FaultEndToEndTests.swift — seeded fault campaigns over the expert-parallel MoE layer on a
// simulated mesh, and the retry policy (in place, failover, never for validation errors).
//
// Every test builds its own `SimulatedDevice`s (not the registry's cached ones), so the faults
// it injects never reach another test running in parallel.

import Foundation
import Testing
import Polychip
import PolychipConformance
import PolychipModels
import PolychipReference

/// `count` fresh Ascend 910B devices with indices `first..<first+count`, under `plan`.
private func freshDevices(_ count: Int, first: Int = 0, plan: DeviceProfile.Faults? = nil) throws -> [SimulatedDevice] {
    let profile = try SimulatedBackend.loadProfile("ascend-910b")
    return try (first..<(first + count)).map { i in
        let d = try SimulatedDevice(profile: profile, index: i)
        d.injectFaults(plan)
        return d
    }
}

/// A mesh over `devices` with a simulated communicator under `plan` (link faults).
private func mesh(_ devices: [SimulatedDevice], plan: DeviceProfile.Faults? = nil) throws -> Mesh {
    let first = try #require(devices.first)
    let m = try Mesh(devices: devices, topology: .fullMesh, communicator: SimulatedCommunicator(model: first.model))
    m.simulated?.injectFaults(plan)
    return m
}

/// The float expert-parallel conformance case (13 tokens, 16 experts, top-4 of grouped sigmoid
/// routing, shared expert) and its reference output.
private struct EPCase {
    var testCase: ConformanceCase
    var params: MoELayerParams
    var expected: HostTensor

    static func make() throws -> EPCase {
        let cases = try ExpertParallelConformance.cases(dtype: .f32, seed: 0x5EED)
        let c = try #require(cases.first { $0.label.hasPrefix("EP T13") && !$0.label.contains("int4") })
        guard case .moeLayer(let p) = c.op else { throw PolychipError.invalidTensor(reason: "not a moe-layer case") }
        return EPCase(testCase: c, params: p, expected: try Reference.evaluate(c.op, c.inputs)[0])
    }

    /// The caller's inputs, as bytes, to compare after a run.
    var inputBytes: [[UInt8]] { testCase.inputs.map(\.bytes) }

    func verify(_ output: HostTensor) -> String? {
        ExpertParallelConformance.verify(output, expected: expected, dtype: .f32).failure
    }
}

private let epCase: Result<EPCase, any Error> = Result { try EPCase.make() }

/// The campaign's fault plan for `seed`: launch failures, memory errors (ECC) and lost devices
/// drawn at random on every device, links dropped at random on the mesh.
private func campaignPlan(_ seed: Int) -> DeviceProfile.Faults {
    DeviceProfile.Faults(seed: seed,
                         kernelLaunchFailure: .init(probability: 0.01),
                         linkDown: .init(probability: 0.05),
                         memoryError: .init(probability: 0.003),
                         deviceLost: .init(probability: 0.001))
}

/// What one campaign run did.
private struct RunOutcome {
    var verified = false
    var error: PolychipError?
    var faultsFired = 0
    var summary = RetrySummary()
}

/// Runs the layer on a fresh 4-device mesh (plus `spares` spare devices) under seed `seed`'s
/// plan; checks that the result is verified or a typed error, and that the caller's inputs are
/// byte-identical afterwards.
private func campaignRun(seed: Int, retry: RetryPolicy, spares spareCount: Int) throws -> RunOutcome {
    let ep = try epCase.get()
    let plan = campaignPlan(seed)
    let devices = try freshDevices(4, plan: plan)
    let spares = try freshDevices(spareCount, first: 4, plan: plan)
    let m = try mesh(devices, plan: plan)
    let before = ep.inputBytes
    let log = RetryLog()
    var out = RunOutcome()
    do {
        let step = try ExpertParallelMoE.run(on: m, params: ep.params, inputs: ep.testCase.inputs,
                                             options: .init(retry: retry), spares: spares, log: log)
        if let why = ep.verify(step.output) {
            Issue.record("seed \(seed): wrong result (\(why)) after \(step.failedAttempts.count) failed attempts")
        } else {
            out.verified = true
        }
    } catch let e as PolychipError {
        out.error = e
        guard case .deviceFault = e else {
            Issue.record("seed \(seed): a fault campaign threw a non-fault error: \(e)")
            return out
        }
    }
    #expect(ep.inputBytes == before, "seed \(seed): caller inputs changed")
    out.faultsFired = (devices + spares).reduce(0) { $0 + $1.firedFaults.count } + (m.simulated?.firedFaults.count ?? 0)
    out.summary = log.summary
    return out
}

@Suite("Faults end to end: seeded campaigns over the expert-parallel MoE layer")
struct FaultEndToEndTests {
    static let seeds = Array(1...20)

    @Test("Without retries every run is verified or a typed device fault; inputs are untouched")
    func campaignWithoutRetries() throws {
        var verified = 0, failed = 0, fired = 0
        for seed in Self.seeds {
            let r = try campaignRun(seed: seed, retry: .none, spares: 0)
            if r.verified { verified += 1 } else if r.error != nil { failed += 1 }
            fired += r.faultsFired
            #expect(r.summary.retriedSameDevice == 0 && r.summary.failedOver == 0)
        }
        #expect(verified + failed == Self.seeds.count)
        #expect(failed > 0, "the campaign's faults should make some runs fail without retries")
        #expect(fired > 0)
        print("faults end to end, no retries: \(Self.seeds.count) seeds, \(fired) faults fired, \(verified) verified, \(failed) typed errors")
    }

    @Test("With --retries 3 and 2 spares every run succeeds and is verified")
    func campaignWithRetries() throws {
        var fired = 0
        var total = RetrySummary()
        for seed in Self.seeds {
            let r = try campaignRun(seed: seed, retry: .retries(3), spares: 2)
            #expect(r.verified, "seed \(seed): \(r.error.map { "\($0)" } ?? "not verified")")
            fired += r.faultsFired
            total.failures += r.summary.failures
            total.retriedSameDevice += r.summary.retriedSameDevice
            total.failedOver += r.summary.failedOver
            total.gaveUp += r.summary.gaveUp
        }
        #expect(total.retriedSameDevice > 0, "the campaign should exercise in-place retries")
        #expect(total.gaveUp == 0)
        print("faults end to end, --retries 3, 2 spares: \(Self.seeds.count) seeds, \(fired) faults fired, \(total)")
    }

    @Test("A lost device fails over to a spare and the step is verified; without a spare it is a typed error")
    func deviceLostFailover() throws {
        let ep = try epCase.get()
        for spareCount in [1, 0] {
            let devices = try freshDevices(4)
            let spares = try freshDevices(spareCount, first: 4)
            let m = try mesh(devices)
            let layer = try ExpertParallelMoE(mesh: m, params: ep.params, weights: Array(ep.testCase.inputs.dropFirst()),
                                              options: .init(retry: .retries(2)), spares: spares)
            devices[2].injectFault(.deviceLost, kernel: "grouped-matmul")
            if let spare = spares.first {
                let step = try layer.forward(ep.testCase.inputs[0])
                #expect(ep.verify(step.output) == nil)
                #expect(step.devices == [devices[0].id, devices[1].id, spare.id, devices[3].id])
                #expect(layer.mesh.devices[2].id == spare.id)
                #expect(step.failedAttempts.map(\.action) == [.failover(to: spare.id)])
                #expect(step.failedAttempts.first?.faultKind == "deviceLost")
                // The next step runs on the new mesh with no fault.
                let again = try layer.forward(ep.testCase.inputs[0])
                #expect(again.failedAttempts.isEmpty && again.output.bytes == step.output.bytes)
            } else {
                #expect(throws: PolychipError.self) { _ = try layer.forward(ep.testCase.inputs[0]) }
                do { _ = try layer.forward(ep.testCase.inputs[0]) } catch PolychipError.deviceFault(let device, _, let kind, _) {
                    #expect(device == devices[2].id && kind == "deviceLost")
                }
            }
        }
    }

    @Test("Transient faults during placement and the step are retried in place with the same result")
    func transientInPlace() throws {
        let ep = try epCase.get()
        let devices = try freshDevices(4)
        devices[1].injectFault(.memoryError, kernel: "write")
        devices[3].injectFault(.kernelLaunchFailure, kernel: "swiglu")
        devices[0].injectFault(.memoryError, kernel: "all-to-all")
        let log = RetryLog()
        let step = try ExpertParallelMoE.run(on: try mesh(devices), params: ep.params, inputs: ep.testCase.inputs,
                                             options: .init(retry: .retries(1)), log: log)
        #expect(ep.verify(step.output) == nil)
        #expect(log.summary.failures == 3 && log.summary.retriedSameDevice == 3)
        #expect(Set(log.attempts.compactMap(\.faultKind)) == ["memoryError", "kernelLaunchFailure"])
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("Only device faults are retried; validation errors never are")
    func classification() {
        let p = RetryPolicy.retries(3)
        #expect(p.decision(for: PolychipError.deviceFault(device: "d", kernel: "k", kind: "kernelLaunchFailure", detail: "")) == .sameDevice)
        #expect(p.decision(for: PolychipError.deviceFault(device: "d", kernel: "k", kind: "memoryError", detail: "")) == .sameDevice)
        #expect(p.decision(for: PolychipError.deviceFault(device: "d", kernel: "k", kind: "timeout", detail: "")) == .sameDevice)
        #expect(p.decision(for: PolychipError.deviceFault(device: "d", kernel: "k", kind: "deviceLost", detail: "")) == .failover)
        #expect(p.decision(for: PolychipError.deviceFault(device: "d", kernel: "k", kind: "linkDown", detail: "")) == .never)
        #expect(p.decision(for: PolychipError.shapeMismatch(kernel: "k", argument: "a", expected: "[1]", got: "[2]")) == .never)
        #expect(p.decision(for: PolychipError.dtypeMismatch(kernel: "k", argument: "a", expected: "f32", got: .f16)) == .never)
        #expect(p.decision(for: PolychipError.outOfMemory(device: "d", requested: 1, available: 0)) == .never)
        #expect(RetryPolicy.none.maxAttempts == 1 && RetryPolicy.retries(-2) == .none)
    }

    @Test("A validation error is thrown once, runs nothing and is not logged")
    func validationNotRetried() throws {
        let dev = try #require(try freshDevices(1).first)
        let queue = Queue(device: dev)
        let log = RetryLog()
        let a = try dev.tensor(try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]))
        let b = try dev.tensor(try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]))
        let out = try dev.allocate(TensorDesc([2, 2], .f32))
        var calls = 0
        #expect(throws: PolychipError.self) {
            try RetryPolicy.retries(5).run("matmul", device: dev.id, log: log) { _ in
                calls += 1
                try queue.enqueue(.matmul(transposeB: false), inputs: [a, b], outputs: [out])
            }
        }
        #expect(calls == 1 && log.attempts.isEmpty && queue.records.isEmpty)
        let executor = RetryingExecutor(primary: dev, policy: .retries(5), log: log)
        let host = try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6])
        #expect(throws: PolychipError.self) { _ = try executor.run(.matmul(transposeB: false), [host, host]) }
        #expect(log.attempts.isEmpty && executor.queues.allSatisfy { $0.records.isEmpty })
    }

    @Test("Queue.enqueue(retry:) reruns a failed launch in place; inputs intact, record says attempt 2")
    func enqueueRetry() throws {
        let dev = try #require(try freshDevices(1).first)
        let queue = Queue(device: dev)
        let log = RetryLog()
        let hostA = try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6])
        let hostB = try HostTensor([3, 2], .f32, floats: [1, 0, 0, 1, 1, 1])
        let a = try dev.tensor(hostA), b = try dev.tensor(hostB)
        let out = try dev.allocate(TensorDesc([2, 2], .f32))
        dev.injectFault(.kernelLaunchFailure, kernel: "matmul")
        #expect(throws: PolychipError.self) { try queue.enqueue(.matmul(transposeB: false), inputs: [a, b], outputs: [out], retry: .none) }
        #expect(try dev.download(a).bytes == hostA.bytes && dev.download(b).bytes == hostB.bytes)
        dev.injectFault(.kernelLaunchFailure, kernel: "matmul")
        let rec = try queue.enqueue(.matmul(transposeB: false), inputs: [a, b], outputs: [out], retry: .retries(1), log: log)
        #expect(rec.attempt == 2 && queue.records.last?.attempt == 2)
        #expect(try dev.download(out).floats == [4, 5, 10, 11])
        #expect(try dev.download(a).bytes == hostA.bytes)
        #expect(log.attempts.count == 1 && log.attempts.first?.action == .retrySameDevice)
    }

    @Test("RetryingExecutor fails over to the next device when the primary is lost")
    func executorFailover() throws {
        let devs = try freshDevices(3)
        let executor = RetryingExecutor(primary: devs[0], fallbacks: [devs[1], devs[2]], policy: .retries(2))
        let inputs = [try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]), try HostTensor([3, 2], .f32, floats: [1, 0, 0, 1, 1, 1])]
        let before = inputs.map(\.bytes)
        devs[0].injectFault(.deviceLost, kernel: "matmul")
        devs[1].injectFault(.memoryError, kernel: "read")
        let r = try executor.run(.matmul(transposeB: false), inputs)
        #expect(r.outputs.first?.floats == [4, 5, 10, 11])
        #expect(r.device == devs[1].id && r.attempts == 3 && r.record.attempt == 3)
        #expect(executor.log.attempts.map(\.action) == [.failover(to: devs[1].id), .retrySameDevice])
        #expect(inputs.map(\.bytes) == before)
        // The lost primary is skipped from now on.
        let again = try executor.run(.matmul(transposeB: false), inputs)
        #expect(again.device == devs[1].id && again.attempts == 1)
        // No retries: the loss is a typed error.
        let strict = RetryingExecutor(primary: devs[0], fallbacks: [devs[2]], policy: .none)
        #expect(throws: PolychipError.self) { _ = try strict.run(.matmul(transposeB: false), inputs) }
    }
}
