// StackExecution.swift — runs a decoder stack's kernel calls on the reference, on a device, or
// on the device with chosen calls replaced by the reference (bisection). Both sides are
// deterministic, so each call is memoized on its activation inputs: a substitution re-runs only
// the calls whose inputs it changed.

import PolychipCore
import PolychipModels
import PolychipReference

/// Executes one stack's calls; not thread-safe (one diff uses it from one thread).
final class StackExecution {
    let stack: DecoderStack
    let device: any Device
    let queue: Queue
    private var deviceWeights: [String: Tensor] = [:]
    private var memos: [Side: [Int: [Memo]]] = [:]
    /// Calls the device could not run, with its reason (the reference ran them instead).
    private(set) var unsupported: [Int: String] = [:]
    /// Kernel calls actually executed (memo misses), per side.
    private(set) var deviceCalls = 0, referenceCalls = 0

    private enum Side { case reference, device }
    private struct Memo { var inputs: [HostTensor]; var outputs: [HostTensor] }
    /// Bytes the memos hold; past ``maxMemoBytes`` they are dropped (calls are recomputed).
    private var memoBytes = 0
    /// The memos' bound: 4 GiB.
    static let maxMemoBytes = 1 << 32

    init(stack: DecoderStack, device: any Device) {
        self.stack = stack
        self.device = device
        self.queue = Queue(device: device, label: "diff")
    }

    /// The reference's outputs of `call` on `inputs`.
    func reference(_ call: StackCall, _ inputs: [HostTensor]) throws -> [HostTensor] {
        try memoized(call, inputs, .reference) {
            referenceCalls += 1
            return try Reference.evaluate(call.op, inputs)
        }
    }

    /// The device's outputs of `call` on `inputs` (the reference's where the device reports the
    /// kernel unsupported; ``unsupported`` lists those).
    func onDevice(_ call: StackCall, _ inputs: [HostTensor]) throws -> [HostTensor] {
        if unsupported[call.index] != nil { return try reference(call, inputs) }
        do {
            return try memoized(call, inputs, .device) {
                deviceCalls += 1
                let ins = try zip(call.args, inputs).map { arg, value -> Tensor in
                    guard arg.hasPrefix("@") else { return try device.tensor(value) }
                    if let t = deviceWeights[arg] { return t }
                    let t = try device.tensor(value)
                    deviceWeights[arg] = t
                    return t
                }
                let validated = try call.op.validated(inputs.map(\.desc))
                let outs = try validated.outputs.map { try device.allocate($0) }
                _ = try queue.enqueue(validated, inputs: ins, outputs: outs)
                return try outs.map { try device.download($0) }
            }
        } catch PolychipError.unsupported(_, _, let reason) {
            unsupported[call.index] = reason
            return try reference(call, inputs)
        }
    }

    /// The device pipeline, with the calls in `substituted` run by the reference on the
    /// pipeline's own inputs.
    func run(substituting substituted: Set<Int> = []) throws -> StackRun {
        try stack.run { call, ins in substituted.contains(call.index) ? try reference(call, ins) : try onDevice(call, ins) }
    }

    /// The reference pipeline.
    func runReference() throws -> StackRun {
        try stack.run { call, ins in try reference(call, ins) }
    }

    private func memoized(_ call: StackCall, _ inputs: [HostTensor], _ side: Side,
                          _ compute: () throws -> [HostTensor]) throws -> [HostTensor] {
        // Weights never change between runs; only activations key the memo.
        let key = zip(call.args, inputs).filter { !$0.0.hasPrefix("@") }.map(\.1)
        if let hit = memos[side]?[call.index]?.first(where: { $0.inputs == key }) { return hit.outputs }
        let out = try compute()
        let size = (key + out).reduce(0) { $0 + $1.bytes.count }
        if memoBytes + size > Self.maxMemoBytes {
            // Bounded memory over speed: forget every memo (both sides) and start again.
            memos.removeAll(); memoBytes = 0
            if size > Self.maxMemoBytes { return out }
        }
        memoBytes += size
        memos[side, default: [:]][call.index, default: []].append(Memo(inputs: key, outputs: out))
        return out
    }
}
