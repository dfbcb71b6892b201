import Foundation

/// One timeline of a trace: the records of one queue of one device.
///
/// Build tracks from queues (``ChromeTrace/tracks(queues:)``), from a mesh
/// (``ChromeTrace/tracks(mesh:)``: a compute and a communication track per rank), or from a
/// flat list of records (``ChromeTrace/tracks(records:queue:)``).
public struct TraceTrack: Sendable, Hashable {
    /// The process the track belongs to in the viewer: the device (`"cpu:0"`, `"sim:ascend-910b:3"`).
    public var device: String
    /// The thread name in the viewer: the queue's label (`"compute"`, `"comm"`).
    public var queue: String
    /// The kernels (and collectives) on this queue, in submission order.
    public var records: [KernelRecord]
    /// The devices taking part in the collectives recorded on this track (every rank of the
    /// mesh); shown as each collective slice's `participants` argument.
    public var collectiveGroup: [String]?

    /// Creates a track.
    public init(device: String, queue: String, records: [KernelRecord], collectiveGroup: [String]? = nil) {
        self.device = device; self.queue = queue; self.records = records; self.collectiveGroup = collectiveGroup
    }
}

/// A JSON value in a trace event's `args`.
public enum TraceValue: Sendable, Hashable, Encodable {
    /// A string.
    case string(String)
    /// A number (non-finite values are written as strings).
    case number(Double)
    /// An integer.
    case integer(Int)
    /// A boolean.
    case bool(Bool)
    /// An array.
    case array([TraceValue])
    /// An object.
    case object([String: TraceValue])

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let d): if d.isFinite { try c.encode(d) } else { try c.encode("\(d)") }
        case .integer(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// One Chrome trace event (the Trace Event Format read by Perfetto and chrome://tracing).
public struct TraceEvent: Sendable, Hashable, Encodable {
    /// Slice or metadata name.
    public var name: String
    /// Category (`kernel`, `collective`), empty for metadata.
    public var cat: String?
    /// Phase: `X` (complete slice) or `M` (metadata).
    public var ph: String
    /// Start, microseconds.
    public var ts: Double?
    /// Duration, microseconds (complete slices).
    public var dur: Double?
    /// Process id: one per device.
    public var pid: Int
    /// Thread id: one per queue of the device.
    public var tid: Int?
    /// Arguments shown in the viewer's detail pane.
    public var args: [String: TraceValue]?
}

/// Exports ``KernelRecord``s as Chrome trace-event JSON: one process per device, one thread
/// per queue, one complete (`"X"`) slice per kernel with its shapes, dtypes, FLOPs, bytes and
/// (for modeled records) the time model's breakdown. Collectives appear on every participating
/// device, because a ``Mesh`` records one slice per rank.
///
/// Clocks: modeled records are on their queue's virtual clock (starting at 0); measured
/// records are on the monotonic wall clock and are shifted so the first measured kernel of
/// the trace starts at 0. The two clocks are independent and say so in `otherData`.
public enum ChromeTrace {
    /// The catalog's collective names (`Collective.description`).
    public static let collectiveNames: Set<String> = ["all-reduce", "all-gather", "reduce-scatter", "all-to-all"]

    /// One track per queue, named by the queue's device and label.
    public static func tracks(queues: [Queue]) -> [TraceTrack] {
        queues.map { TraceTrack(device: $0.device.id, queue: $0.label, records: $0.records) }
    }

    /// A compute and a communication track per rank of `mesh`; every collective slice lists
    /// the mesh's devices as its participants. A device at several ranks gets one process per rank.
    public static func tracks(mesh: Mesh) -> [TraceTrack] {
        let ids = mesh.devices.map(\.id)
        let repeated = Set(ids.filter { id in ids.filter { $0 == id }.count > 1 })
        var out: [TraceTrack] = []
        for r in 0..<mesh.size {
            let name = repeated.contains(ids[r]) ? "\(ids[r]) (rank \(r))" : ids[r]
            out.append(TraceTrack(device: name, queue: mesh.queues[r].label, records: mesh.queues[r].records))
            out.append(TraceTrack(device: name, queue: mesh.commQueues[r].label, records: mesh.commQueues[r].records,
                                  collectiveGroup: ids))
        }
        return out
    }

    /// Groups a flat list of records by device (in first-seen order), one track per device.
    public static func tracks(records: [KernelRecord], queue: String = "compute") -> [TraceTrack] {
        var order: [String] = []
        var byDevice: [String: [KernelRecord]] = [:]
        for r in records {
            if byDevice[r.device] == nil { order.append(r.device) }
            byDevice[r.device, default: []].append(r)
        }
        return order.map { TraceTrack(device: $0, queue: queue, records: byDevice[$0] ?? []) }
    }

    /// The trace's events: process/thread name metadata, then one slice per record.
    public static func events(_ tracks: [TraceTrack]) -> [TraceEvent] {
        var pids: [String: Int] = [:]
        var tids: [String: [String: Int]] = [:]
        var events: [TraceEvent] = []
        let measuredStarts = tracks.flatMap(\.records).filter { $0.source == .measured && $0.start.isFinite }.map(\.start)
        let origin = measuredStarts.min() ?? 0
        for track in tracks {
            let pid: Int
            if let p = pids[track.device] { pid = p } else {
                pid = pids.count + 1
                pids[track.device] = pid
                events.append(TraceEvent(name: "process_name", ph: "M", pid: pid, args: ["name": .string(track.device)]))
                events.append(TraceEvent(name: "process_sort_index", ph: "M", pid: pid, args: ["sort_index": .integer(pid)]))
            }
            let tid: Int
            if let t = tids[track.device]?[track.queue] { tid = t } else {
                tid = (tids[track.device]?.count ?? 0) + 1
                tids[track.device, default: [:]][track.queue] = tid
                events.append(TraceEvent(name: "thread_name", ph: "M", pid: pid, tid: tid, args: ["name": .string(track.queue)]))
                events.append(TraceEvent(name: "thread_sort_index", ph: "M", pid: pid, tid: tid, args: ["sort_index": .integer(tid)]))
            }
            for r in track.records {
                let shift = r.source == .measured ? origin : 0
                let start = r.start - shift, duration = r.end - r.start
                guard start.isFinite, duration.isFinite else { continue }
                let collective = collectiveNames.contains(r.kernel)
                var args = arguments(r)
                if collective, let group = track.collectiveGroup { args["participants"] = .array(group.map(TraceValue.string)) }
                events.append(TraceEvent(name: r.kernel, cat: collective ? "collective" : "kernel", ph: "X",
                                         ts: start * 1e6, dur: max(0, duration) * 1e6, pid: pid, tid: tid, args: args))
            }
        }
        return events
    }

    /// A slice's arguments: shapes, dtypes, FLOPs, bytes, attained rates and the modeled breakdown.
    public static func arguments(_ r: KernelRecord) -> [String: TraceValue] {
        var a: [String: TraceValue] = [
            "device": .string(r.device),
            "source": .string(r.source.rawValue),
            "inputShapes": .array(r.inputShapes.map { .array($0.map(TraceValue.integer)) }),
            "dtypes": .array(r.dtypes.map { .string($0.rawValue) }),
            "flops": .number(r.flops),
            "bytes": .number(r.bytes),
            "seconds": .number(r.seconds),
        ]
        if r.seconds > 0 {
            a["GFLOP/s"] = .number(r.flops / r.seconds / 1e9)
            a["GB/s"] = .number(r.bytes / r.seconds / 1e9)
        }
        if let b = r.breakdown {
            a["modeled"] = .object([
                "launch_s": .number(b.launch), "compute_s": .number(b.compute), "memory_s": .number(b.memory),
                "communication_s": .number(b.communication), "total_s": .number(b.total), "bound": .string(b.bound),
            ])
        }
        return a
    }

    /// The whole trace as JSON (`{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}`).
    /// `metadata` goes into `otherData` next to a note on the clocks.
    public static func encode(_ tracks: [TraceTrack], metadata: [String: String] = [:]) throws -> Data {
        struct File: Encodable {
            var traceEvents: [TraceEvent]
            var displayTimeUnit = "ms"
            var otherData: [String: String]
        }
        var other = metadata
        other["clock"] = "modeled slices: each queue's virtual clock from 0; measured slices: wall clock, 0 = the first measured kernel"
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        do {
            return try enc.encode(File(traceEvents: events(tracks), otherData: other))
        } catch {
            throw PolychipError.invalidArgument(kernel: "trace", argument: "records", reason: "cannot encode the trace: \(error)")
        }
    }
}
