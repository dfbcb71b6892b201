import Foundation
import PolychipCore
import PolychipSimulated

/// The prediction for one step: where the time goes and whether it fits.
public struct SimulationReport: Sendable, Codable {
    /// One row of the time tables.
    public struct Row: Sendable, Codable, Hashable {
        /// Layer type (`attention (MLA + DSA)`, `MoE FFN`, …) or operation name.
        public var name: String
        /// The layer type an operation belongs to (equal to `name` for layer-type rows).
        public var group: String
        /// Seconds per step on the critical (slowest) device.
        public var seconds: Double
        /// Of which compute-bound, memory-bound, launch overhead, communication, waiting.
        public var compute: Double, memory: Double, launch: Double, communication: Double, wait: Double
        /// Layers of this type (layer-type rows), else 0.
        public var layers: Int
    }

    /// Model name.
    public var model: String
    /// Total parameters (billions), MTP layers excluded.
    public var totalParamsB: Double
    /// Parameters touched per token (billions).
    public var activeParamsB: Double
    /// Profile name.
    public var profile: String
    /// Devices per node × nodes.
    public var devicesPerNode: Int, nodes: Int
    /// The parallel plan.
    public var plan: ParallelPlan
    /// Phase, sequences per step, tokens per sequence in context.
    public var phase: SimulationPhase, batch: Int, context: Int
    /// Weight scheme and INT4 group size.
    public var weights: WeightScheme, groupSize: Int
    /// Routing model and seed.
    public var routing: String, seed: UInt64
    /// Modeled step latency (all pipeline stages in turn), seconds.
    public var stepSeconds: Double
    /// Each pipeline stage's time (including its send to the next stage), seconds.
    public var stageSeconds: [Double]
    /// Tokens produced (decode) or processed (prefill) per step.
    public var tokensPerStep: Int
    /// Throughput: tokens per second (with PP > 1: with one micro-batch per stage in flight).
    public var tokensPerSecond: Double
    /// Decode: tokens per second seen by one sequence (1 / step latency).
    public var tokensPerSecondPerSequence: Double?
    /// Totals: compute-bound, memory-bound, launch, communication and waiting seconds on the critical device.
    public var breakdown: [String: Double]
    /// Per layer type.
    public var layerTypes: [Row]
    /// Per operation, largest first.
    public var operations: [Row]
    /// Expert rows per device per MoE layer: min, mean, max (load imbalance from the routing sample).
    public var expertRowsMin: Int, expertRowsMean: Double, expertRowsMax: Int
    /// Memory on the fullest device.
    public var memory: MemoryFit
    /// Assumptions and caveats that apply to this run.
    public var notes: [String]
    /// Per-kernel slices when a trace was requested (not part of the JSON report).
    public var trace: [TraceSlice]?
    /// What the profile's figures rest on: its validation status (`validated`, `fitted`,
    /// `none`) and how many figures are low-confidence estimates.
    public var profileBasis: String? = nil

    enum CodingKeys: String, CodingKey {
        case model, totalParamsB, activeParamsB, profile, devicesPerNode, nodes, plan, phase, batch, context, weights, groupSize
        case routing, seed, stepSeconds, stageSeconds, tokensPerStep, tokensPerSecond, tokensPerSecondPerSequence, breakdown
        case layerTypes, operations, expertRowsMin, expertRowsMean, expertRowsMax, memory, notes, profileBasis
    }

    static func make(req: SimulationRequest, names: [String], groups: [String], acc: [Double], latency: Double,
                     stageSeconds: [Double], memory: MemoryFit, expertRows: [Int], trace: [TraceSlice]?) -> SimulationReport {
        let c = req.model
        func row(_ i: Int) -> Row {
            let v = (0..<5).map { acc[i * 5 + $0] }
            return Row(name: names[i], group: groups[i], seconds: v.reduce(0, +), compute: v[0], memory: v[1], launch: v[2],
                       communication: v[3], wait: v[4], layers: 0)
        }
        let ops = names.indices.map(row).filter { $0.seconds > 0 }.sorted { $0.seconds > $1.seconds }
        var byGroup: [String: Row] = [:]
        var order: [String] = []
        for r in names.indices.map(row) {
            if byGroup[r.group] == nil { order.append(r.group); byGroup[r.group] = Row(name: r.group, group: r.group, seconds: 0, compute: 0, memory: 0, launch: 0, communication: 0, wait: 0, layers: 0) }
            byGroup[r.group]!.seconds += r.seconds; byGroup[r.group]!.compute += r.compute; byGroup[r.group]!.memory += r.memory
            byGroup[r.group]!.launch += r.launch; byGroup[r.group]!.communication += r.communication; byGroup[r.group]!.wait += r.wait
        }
        for (k, v) in byGroup {
            var r = v
            if k.hasPrefix("attention") { r.layers = c.numLayers } else if k == "dense FFN" { r.layers = c.firstKDense } else if k == "MoE FFN" { r.layers = c.moeLayers }
            byGroup[k] = r
        }
        let tokens = req.phase == .decode ? req.batch : req.batch * req.context
        let bottleneck = req.plan.pp > 1 ? (stageSeconds.max() ?? latency) : latency
        var breakdown: [String: Double] = [:]
        for (i, name) in ModelSimulator.categories.enumerated() {
            breakdown[name] = names.indices.reduce(0) { $0 + acc[$1 * 5 + i] }
        }
        var notes: [String] = []
        if c.mtpLayers > 0 { notes.append("\(c.mtpLayers) multi-token-prediction layer(s) not simulated (no speculative decoding) and not counted in the weights") }
        if req.plan.pp > 1 { notes.append("PP \(req.plan.pp): throughput assumes \(req.plan.pp) micro-batches of this size in flight; the KV cache holds all of them") }
        if req.phase == .prefill && c.hasIndexer && req.context > c.indexTopK {
            notes.append("DSA prefill: selected latent rows assumed reused on chip by 64-query tiles (1/64 of the per-token gather)")
        }
        if req.routing != .balanced {
            let sampled = tokens > Routing.maxSampledTokens ? " (on \(Routing.maxSampledTokens) tokens per layer, scaled)" : ""
            notes.append("routing sampled \(req.routing) with seed \(req.seed)\(sampled): per-device expert rows vary per layer")
        }
        if !memory.fits {
            notes.append(String(format: "does not fit: %.1f GiB needed on the fullest device, %.1f GiB capacity; the model's weights alone are %.1f GB against %.1f GB on all %d devices",
                                memory.total / gib, memory.capacity / gib, memory.modelWeights / 1e9, memory.clusterCapacity / 1e9, req.plan.world))
        }
        let mean = expertRows.isEmpty ? 0 : Double(expertRows.reduce(0, +)) / Double(expertRows.count)
        return SimulationReport(
            model: c.name, totalParamsB: c.totalParams / 1e9, activeParamsB: c.activeParams / 1e9, profile: req.profile.name,
            devicesPerNode: req.devicesPerNode, nodes: req.nodes, plan: req.plan, phase: req.phase, batch: req.batch,
            context: req.context, weights: req.weights, groupSize: req.groupSize, routing: req.routing.description, seed: req.seed,
            stepSeconds: latency, stageSeconds: stageSeconds, tokensPerStep: tokens,
            tokensPerSecond: bottleneck > 0 ? Double(tokens) / bottleneck : 0,
            tokensPerSecondPerSequence: req.phase == .decode && latency > 0 ? 1 / latency : nil,
            breakdown: breakdown, layerTypes: (order.filter { $0 != "load imbalance" } + ["load imbalance"]).compactMap { byGroup[$0] }.filter { $0.seconds > 0 }, operations: ops,
            expertRowsMin: expertRows.min() ?? 0, expertRowsMean: mean, expertRowsMax: expertRows.max() ?? 0,
            memory: memory, notes: notes, trace: trace, profileBasis: basis(req.profile))
    }

    /// `validated`, `fitted, 18 low-confidence figures`, `none, 25 low-confidence figures`.
    static func basis(_ p: DeviceProfile) -> String {
        let low = p.estimatedFigures().filter { $0.confidence == .low }.count
        return (p.validation?.status.rawValue ?? "not stated") + (low > 0 ? ", \(low) low-confidence figures" : "")
    }

    // MARK: Text

    /// The human-readable report.
    public func text(topOperations: Int = 12) -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        func ms(_ s: Double) -> String { String(format: "%9.3f", s * 1e3) }
        func pct(_ s: Double) -> String { stepSeconds > 0 ? String(format: "%5.1f%%", 100 * s / stepSeconds) : "    -" }
        line(String(format: "%@ (%.1fB parameters, %.1fB active per token) · %@ · batch %d · context %d", model, totalParamsB, activeParamsB,
                    phase.rawValue, batch, context))
        line("weights \(weights)\(weights == .bf16 ? "" : ", INT4 group \(groupSize)")")
        line("\(profile) × \(devicesPerNode * nodes) (\(nodes) node\(nodes == 1 ? "" : "s") × \(devicesPerNode)) · \(plan) · routing \(routing)")
        if let b = profileBasis { line("profile figures: \(b) (polychip simulate --validate; polychip devices)") }
        line()
        line("Time per step on the slowest device       ms    share   compute    memory    launch      comm      wait")
        for r in layerTypes {
            let label = r.layers > 0 ? "\(r.name) × \(r.layers)" : r.name
            line("  " + label.padding(toLength: 36, withPad: " ", startingAt: 0) + ms(r.seconds) + "  " + pct(r.seconds)
                 + ms(r.compute) + " " + ms(r.memory) + " " + ms(r.launch) + " " + ms(r.communication) + " " + ms(r.wait))
        }
        line("  " + "total".padding(toLength: 36, withPad: " ", startingAt: 0) + ms(stepSeconds) + "  " + pct(stepSeconds)
             + ms(breakdown["compute"] ?? 0) + " " + ms(breakdown["memory"] ?? 0) + " " + ms(breakdown["launch"] ?? 0) + " "
             + ms(breakdown["communication"] ?? 0) + " " + ms(breakdown["wait"] ?? 0))
        if stageSeconds.count > 1 { line("  stages: " + stageSeconds.map { String(format: "%.3f ms", $0 * 1e3) }.joined(separator: ", ")) }
        line()
        line("Largest operations (all layers)            ms    share  bound")
        for r in operations.prefix(topOperations) {
            let parts = [("compute", r.compute), ("memory", r.memory), ("launch", r.launch), ("communication", r.communication), ("wait", r.wait)]
            let bound = parts.max { $0.1 < $1.1 }?.0 ?? "-"
            line("  " + r.name.padding(toLength: 36, withPad: " ", startingAt: 0) + ms(r.seconds) + "  " + pct(r.seconds) + "  " + bound)
        }
        line()
        let share = { (k: String) in String(format: "%.0f%%", 100 * (breakdown[k] ?? 0) / max(stepSeconds, 1e-30)) }
        line("Where the time goes: compute-bound \(share("compute")), memory-bound \(share("memory")), launch overhead \(share("launch")), communication \(share("communication")), waiting for slower devices \(share("wait"))")
        var tput = String(format: "Throughput: %.1f tokens/s (%d tokens per step, step %.3f ms)", tokensPerSecond, tokensPerStep, stepSeconds * 1e3)
        if let per = tokensPerSecondPerSequence { tput += String(format: " · %.1f tokens/s per sequence", per) }
        line(tput)
        if expertRowsMax > 0 {
            line(String(format: "Expert load per device per MoE layer: min %d, mean %.1f, max %d rows (max/mean %.2f)", expertRowsMin,
                        expertRowsMean, expertRowsMax, expertRowsMean > 0 ? Double(expertRowsMax) / expertRowsMean : 1))
        }
        line()
        let m = memory
        line(String(format: "Memory per device (fullest: stage %d)        GiB", m.stage))
        let kinds = ["experts", "shared", "attention", "dense", "router", "embedding"].filter { (m.weightsByKind[$0] ?? 0) > 0 }
        line(String(format: "  weights                          %10.2f   (%@)", m.weights / gib,
                    kinds.map { String(format: "%@ %.2f", $0, (m.weightsByKind[$0] ?? 0) / gib) }.joined(separator: ", ")))
        line(String(format: "  KV cache                         %10.2f   (%d seq × %d tokens; MLA latent + rope%@)", m.kvCache / gib,
                    m.kvSequences, m.kvTokens, m.indexerKeys > 0 ? String(format: ", indexer keys %.2f", m.indexerKeys / gib) : ""))
        line(String(format: "  activations                      %10.2f", m.activations / gib))
        if m.reserve > 0 { line(String(format: "  runtime reserve                  %10.2f", m.reserve / gib)) }
        line(String(format: "  total                            %10.2f   of %.2f GiB capacity", m.total / gib, m.capacity / gib))
        if m.fits {
            line(String(format: "Verdict: fits, %.2f GiB free per device", m.free / gib))
        } else {
            line(String(format: "Verdict: OUT OF MEMORY — needs %.2f GiB per device, %.2f GiB over the %.2f GiB capacity", m.total / gib, -m.free / gib, m.capacity / gib))
            line(String(format: "  the %.0fB-parameter model's weights in %@ are %.1f GB; %d × %.1f GB = %.1f GB of device memory in all",
                        totalParamsB, weights.rawValue, m.modelWeights / 1e9, plan.world, m.capacity / 1e9, m.clusterCapacity / 1e9))
        }
        if !notes.isEmpty {
            line()
            for n in notes { line("note: " + n) }
        }
        return out
    }

    // MARK: JSON, trace, plot

    /// The report as pretty JSON (without the trace).
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    /// A Chrome trace (`chrome://tracing`, Perfetto): one track per device, one slice per kernel
    /// or collective, times in microseconds on the virtual clock.
    public func chromeTrace() throws -> Data {
        struct Event: Encodable {
            var name: String, cat: String, ph: String, ts: Double, dur: Double, pid: Int, tid: Int
            var args: [String: String]
        }
        var events: [Event] = []
        for s in trace ?? [] {
            events.append(Event(name: s.name, cat: s.bound, ph: "X", ts: s.start * 1e6, dur: s.seconds * 1e6, pid: 0, tid: s.device,
                                args: ["group": s.group, "layer": "\(s.layer)", "bound": s.bound]))
        }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try e.encode(["traceEvents": events])
    }

    /// An SVG with the per-layer-type time (stacked by compute, memory, launch, communication,
    /// waiting) and the memory of the fullest device against its capacity.
    public func svg() -> String {
        let width = 900.0, left = 250.0, barW = 520.0, rowH = 26.0
        let rows = layerTypes + [Row(name: "total", group: "total", seconds: stepSeconds, compute: breakdown["compute"] ?? 0,
                                     memory: breakdown["memory"] ?? 0, launch: breakdown["launch"] ?? 0,
                                     communication: breakdown["communication"] ?? 0, wait: breakdown["wait"] ?? 0, layers: 0)]
        let colors = ["#4e79a7", "#f28e2b", "#bab0ac", "#e15759", "#76b7b2"]
        let labels = ["compute-bound", "memory-bound", "launch", "communication", "waiting"]
        let top = 60.0
        let memY = top + Double(rows.count) * rowH + 50
        let height = memY + 110
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(esc(model)) \(phase.rawValue) on \(esc(profile)) × \(plan.world) — \(esc(plan.description)), \(weights.rawValue)</text>\n"
        s += String(format: "<text x=\"10\" y=\"38\">step %.3f ms · %.1f tokens/s · batch %d · context %d</text>\n", stepSeconds * 1e3, tokensPerSecond, batch, context)
        for (i, l) in labels.enumerated() {
            s += "<rect x=\"\(Int(left + Double(i) * 125))\" y=\"44\" width=\"10\" height=\"10\" fill=\"\(colors[i])\"/><text x=\"\(Int(left + Double(i) * 125 + 14))\" y=\"53\">\(l)</text>\n"
        }
        let scale = stepSeconds > 0 ? barW / stepSeconds : 0
        for (i, r) in rows.enumerated() {
            let y = top + Double(i) * rowH
            s += String(format: "<text x=\"10\" y=\"%.1f\">%@</text>\n", y + 16, esc(r.layers > 0 ? "\(r.name) × \(r.layers)" : r.name))
            var x = left
            for (j, v) in [r.compute, r.memory, r.launch, r.communication, r.wait].enumerated() where v > 0 {
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"18\" fill=\"%@\"><title>%@: %.3f ms</title></rect>\n",
                            x, y + 4, v * scale, colors[j], labels[j], v * 1e3)
                x += v * scale
            }
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%.2f ms</text>\n", x + 4, y + 16, r.seconds * 1e3)
        }
        let m = memory
        let memScale = barW / max(m.capacity, m.total)
        s += String(format: "<text x=\"10\" y=\"%.1f\" font-weight=\"bold\">memory per device (%@)</text>\n", memY - 10,
                    m.fits ? "fits" : "OUT OF MEMORY")
        var x = left
        for (name, v, col) in [("weights", m.weights, "#59a14f"), ("KV cache", m.kvCache, "#edc948"), ("activations", m.activations, "#b07aa1"), ("reserve", m.reserve, "#9c755f")] where v > 0 {
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"22\" fill=\"%@\"><title>%@: %.2f GiB</title></rect>\n", x, memY, v * memScale, col, name, v / gib)
            if v * memScale >= 60 {
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%@ %.1f GiB</text>\n", x + 2, memY + 36, name, v / gib)
            }
            x += v * memScale
        }
        let capX = left + m.capacity * memScale
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>\n", capX, memY - 6, capX, memY + 28)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">capacity %.1f GiB · total %.1f GiB</text>\n",
                    left + barW, memY + 60, m.capacity / gib, m.total / gib)
        s += "</svg>\n"
        return s
    }
}

let gib = 1024.0 * 1024 * 1024
