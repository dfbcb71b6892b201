import Foundation
import PolychipCore

/// What the collective benchmark needs from a group of processes: our collectives and a peer
/// implementation's on host buffers, a barrier and the maximum of a value over the ranks.
/// (`MPIProcessGroup` provides it in the CLI; the peer is Open MPI's own collective.)
public protocol CollectiveBenchTarget: AnyObject {
    /// This rank and the number of ranks.
    var rank: Int { get }
    var size: Int { get }
    /// Runs our `kind` on `sizeBytes` (nccl-tests' "size": see ``CollectiveBenchmark``).
    func runOurs(_ kind: CollectiveKind, dtype: DType, input: UnsafeRawPointer, output: UnsafeMutableRawPointer, sizeBytes: Int) throws
    /// Runs the peer's `kind` on the same buffers; `nil` name: no peer for this dtype.
    func runPeer(_ kind: CollectiveKind, dtype: DType, input: UnsafeRawPointer, output: UnsafeMutableRawPointer, sizeBytes: Int) throws
    /// The peer's name for `dtype` (nil when it cannot run that dtype).
    func peerName(for kind: CollectiveKind, dtype: DType) -> String?
    /// Waits for every rank.
    func barrier() throws
    /// The largest of every rank's `value`.
    func maximum(_ value: Double) throws -> Double
}

/// One size of one collective, nccl-tests style.
public struct CollectiveBenchRow: Sendable, Codable, Equatable {
    /// `all-reduce`, `all-gather`, `reduce-scatter` or `all-to-all`.
    public var collective: String
    /// Ranks and distinct hosts.
    public var ranks: Int
    public var hosts: Int
    public var dtype: String
    /// nccl-tests' size, bytes: the per-rank buffer (all-reduce), the gathered output
    /// (all-gather), the per-rank input (reduce-scatter, all-to-all).
    public var size: Int
    /// Elements in `size`.
    public var count: Int
    /// Median time of our collective over the rounds (each round: the slowest rank's mean per
    /// iteration), seconds, and the rounds' minimum and maximum.
    public var seconds: Double
    public var minSeconds: Double
    public var maxSeconds: Double
    /// `size / seconds` and `algbw × busFactor`, bytes per second.
    public var algbw: Double
    public var busbw: Double
    /// Elements of this rank's result that differ from the exact expected values.
    public var wrong: Int
    /// The peer (e.g. `Open MPI 4.1.4 MPI_Allreduce`), its median time and bus bandwidth, and
    /// our busbw divided by the peer's (nil without a peer).
    public var peer: String?
    public var peerSeconds: Double?
    public var peerBusbw: Double?
    public var ratio: Double?
    /// Iterations per round and rounds.
    public var iterations: Int
    public var rounds: Int
}

/// Measured collectives across the ranks of a group (`polychip bench --mesh mpi --collective …`):
/// sizes, timing rounds alternating with a peer implementation, verification, and the
/// nccl-tests-style table, JSON and plot.
public enum CollectiveBenchmark {
    /// Options of one run.
    public struct Options: Sendable {
        /// Rounds per size (each ours and the peer's, alternating which goes first).
        public var rounds: Int
        /// Target measured time per implementation and size, seconds (sets iterations per round).
        public var minTime: Double
        /// Whether to also time the peer.
        public var comparePeer: Bool
        public init(rounds: Int = 5, minTime: Double = 0.5, comparePeer: Bool = true) {
            self.rounds = rounds; self.minTime = minTime; self.comparePeer = comparePeer
        }
    }

    /// The largest size accepted, bytes (16 GiB).
    public static let maxSize = 16 << 30

    /// Parses `4K:256M` (powers of two from 4 KiB to 256 MiB), `64K:64M:4` (factor 4) or a comma
    /// list `4K,1M,3000`. Suffixes K, M, G are powers of 1024.
    public static func sizes(parsing spec: String) throws -> [Int] {
        func bad(_ why: String) -> PolychipError {
            .invalidArgument(kernel: "bench", argument: "sizes", reason: "'\(spec)': \(why); expected MIN:MAX[:FACTOR] or a comma list, e.g. 4K:256M")
        }
        func bytes(_ s: Substring) throws -> Int {
            let t = s.trimmingCharacters(in: .whitespaces).uppercased()
            var mult = 1, digits = t
            if let last = t.last, let m = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String(last)] { mult = m; digits = String(t.dropLast()) }
            guard let v = Int(digits), v >= 1 else { throw bad("'\(s)' is not a positive size") }
            let (r, o) = v.multipliedReportingOverflow(by: mult)
            guard !o, r <= maxSize else { throw bad("'\(s)' is larger than 16G") }
            return r
        }
        if spec.contains(":") {
            let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 3 else { throw bad("MIN:MAX[:FACTOR]") }
            let lo = try bytes(parts[0]), hi = try bytes(parts[1])
            guard lo <= hi else { throw bad("MIN is larger than MAX") }
            var factor = 2
            if parts.count == 3 {
                guard let f = Int(parts[2]), f >= 2, f <= 1024 else { throw bad("FACTOR must be 2…1024") }
                factor = f
            }
            var out: [Int] = []
            var s = lo
            while s <= hi {
                out.append(s)
                let (n, o) = s.multipliedReportingOverflow(by: factor)
                if o { break }
                s = n
            }
            return out
        }
        let list = try spec.split(separator: ",").map(bytes)
        guard !list.isEmpty, list.count <= 256 else { throw bad("give 1…256 sizes") }
        return list
    }

    /// `size` rounded down to what every rank can run: a whole number of elements per rank
    /// (per peer for all-to-all).
    public static func runnableSize(_ size: Int, _ kind: CollectiveKind, ranks p: Int, dtype: DType) -> Int {
        let es = dtype.bitWidth / 8
        let unit = kind == .allReduce ? es : es * p
        return size / unit * unit
    }

    /// The value element `i` of rank `r`'s input holds: a small integer, so sums are exact in
    /// any order and in every float dtype, and the results can be checked exactly.
    @inlinable
    public static func inputValue(rank r: Int, index i: Int) -> Float { Float((r &* 7 &+ i) % 13 - 6) }

    /// Bytes of this rank's input and output for nccl-tests `size`.
    public static func bufferBytes(_ kind: CollectiveKind, size: Int, ranks p: Int) -> (input: Int, output: Int) {
        switch kind {
        case .allReduce, .allToAll: return (size, size)
        case .allGather: return (size / p, size)
        case .reduceScatter: return (size, size / p)
        }
    }

    /// Measures `kind` at every size (rounded by ``runnableSize(_:_:ranks:dtype:)``), alternating
    /// with the peer; every rank must call it with the same arguments. `progress` gets a line per size.
    public static func run(_ kind: CollectiveKind, sizes: [Int], dtype: DType, target: any CollectiveBenchTarget, hosts: Int,
                           options: Options = .init(), progress: (String) -> Void = { _ in }) throws -> [CollectiveBenchRow] {
        guard dtype.isFloat else {
            throw PolychipError.invalidArgument(kernel: "bench", argument: "dtype", reason: "collectives take f32, f16 or bf16, got \(dtype)")
        }
        guard options.rounds >= 1, options.rounds <= 1000, options.minTime > 0, options.minTime.isFinite else {
            throw PolychipError.invalidArgument(kernel: "bench", argument: "rounds", reason: "need 1…1000 rounds and a positive --min-time")
        }
        let p = target.size, es = dtype.bitWidth / 8
        let peer = options.comparePeer ? target.peerName(for: kind, dtype: dtype) : nil
        var rows: [CollectiveBenchRow] = []
        for requested in sizes {
            let size = runnableSize(requested, kind, ranks: p, dtype: dtype)
            guard size > 0 else { progress("  \(kind) \(requested) B: below one element per rank; skipped"); continue }
            let (inBytes, outBytes) = bufferBytes(kind, size: size, ranks: p)
            let input = UnsafeMutableRawPointer.allocate(byteCount: inBytes, alignment: 4096)
            let output = UnsafeMutableRawPointer.allocate(byteCount: outBytes, alignment: 4096)
            defer { input.deallocate(); output.deallocate() }
            fill(input, count: inBytes / es, dtype: dtype, rank: target.rank)
            output.initializeMemory(as: UInt8.self, repeating: 0, count: outBytes)
            func ours() throws { try target.runOurs(kind, dtype: dtype, input: input, output: output, sizeBytes: size) }
            func theirs() throws { try target.runPeer(kind, dtype: dtype, input: input, output: output, sizeBytes: size) }
            // Warm up both (first-touch of buffers, connections), then check our result.
            try ours()
            if peer != nil { try theirs() }
            output.initializeMemory(as: UInt8.self, repeating: 0, count: outBytes)
            try target.barrier()
            let t0 = Queue.wallClock()
            try ours()
            let once = try target.maximum(Queue.wallClock() - t0)
            let wrong = countWrong(kind, output: output, count: outBytes / es, dtype: dtype, rank: target.rank, ranks: p)
            let iterations = max(1, min(100_000, Int((options.minTime / Double(options.rounds) / max(once, 1e-7)).rounded(.up))))
            var mine: [Double] = [], peers: [Double] = []
            for round in 0..<options.rounds {
                func timed(_ body: () throws -> Void) throws -> Double {
                    try target.barrier()
                    let s = Queue.wallClock()
                    for _ in 0..<iterations { try body() }
                    return try target.maximum((Queue.wallClock() - s) / Double(iterations))
                }
                if peer != nil && round % 2 == 1 { peers.append(try timed(theirs)) }
                mine.append(try timed(ours))
                if peer != nil && round % 2 == 0 { peers.append(try timed(theirs)) }
            }
            let med = median(mine)
            let algbw = Double(size) / med, busbw = algbw * kind.busFactor(ranks: p)
            var row = CollectiveBenchRow(collective: kind.rawValue, ranks: p, hosts: hosts, dtype: dtype.rawValue, size: size,
                                         count: size / es, seconds: med, minSeconds: mine.min() ?? med, maxSeconds: mine.max() ?? med,
                                         algbw: algbw, busbw: busbw, wrong: wrong, peer: nil, peerSeconds: nil, peerBusbw: nil,
                                         ratio: nil, iterations: iterations, rounds: options.rounds)
            if let peer {
                let pm = median(peers)
                let pb = Double(size) / pm * kind.busFactor(ranks: p)
                row.peer = peer
                row.peerSeconds = pm
                row.peerBusbw = pb
                row.ratio = pb > 0 ? busbw / pb : nil
            }
            rows.append(row)
            progress(String(format: "  %@ %@: %@%@", kind.rawValue, byteLabel(size), microseconds(med),
                            row.peerSeconds.map { String(format: " (peer %@)", microseconds($0)) } ?? ""))
        }
        return rows
    }

    static func fill(_ p: UnsafeMutableRawPointer, count: Int, dtype: DType, rank: Int) {
        for i in 0..<count { store(inputValue(rank: rank, index: i), at: i, in: p, dtype: dtype) }
    }

    @inline(__always)
    static func store(_ v: Float, at i: Int, in p: UnsafeMutableRawPointer, dtype: DType) {
        switch dtype {
        case .f16: p.storeBytes(of: FloatBits.f16Bits(v), toByteOffset: 2 * i, as: UInt16.self)
        case .bf16: p.storeBytes(of: FloatBits.bf16Bits(v), toByteOffset: 2 * i, as: UInt16.self)
        default: p.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
        }
    }

    @inline(__always)
    static func load(at i: Int, in p: UnsafeRawPointer, dtype: DType) -> Float {
        switch dtype {
        case .f16: return FloatBits.float(fromF16: p.load(fromByteOffset: 2 * i, as: UInt16.self))
        case .bf16: return FloatBits.float(fromBF16: p.load(fromByteOffset: 2 * i, as: UInt16.self))
        default: return p.load(fromByteOffset: 4 * i, as: Float.self)
        }
    }

    /// Elements of rank `rank`'s output that differ from the exact result for the inputs of
    /// ``inputValue(rank:index:)``.
    static func countWrong(_ kind: CollectiveKind, output: UnsafeRawPointer, count n: Int, dtype: DType, rank: Int, ranks p: Int) -> Int {
        var wrong = 0
        for i in 0..<n {
            let want: Float
            switch kind {
            case .allReduce: want = (0..<p).reduce(Float(0)) { $0 + inputValue(rank: $1, index: i) }
            case .reduceScatter: want = (0..<p).reduce(Float(0)) { $0 + inputValue(rank: $1, index: rank * n + i) }
            case .allGather: want = inputValue(rank: i / (n / p), index: i % (n / p))
            case .allToAll:
                let chunk = n / p
                want = inputValue(rank: i / chunk, index: rank * chunk + i % chunk)
            }
            if load(at: i, in: output, dtype: dtype) != want { wrong += 1 }
        }
        return wrong
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    // MARK: Output

    /// `4K`, `1M`, `3000` (bytes).
    public static func byteLabel(_ b: Int) -> String {
        if b >= 1 << 30 && b % (1 << 30) == 0 { return "\(b >> 30)G" }
        if b >= 1 << 20 && b % (1 << 20) == 0 { return "\(b >> 20)M" }
        if b >= 1 << 10 && b % (1 << 10) == 0 { return "\(b >> 10)K" }
        return "\(b)"
    }

    static func microseconds(_ s: Double) -> String { String(format: "%.1f us", s * 1e6) }

    /// The nccl-tests-style table: one line per size with size, count, type, redop, time,
    /// algbw, busbw and #wrong, then the peer's time and busbw and our busbw over the peer's.
    public static func table(_ rows: [CollectiveBenchRow], title: String) -> String {
        var out = "# \(title)\n"
        out += "#" + [pad("size", 11), pad("count", 13), pad("type", 6), pad("redop", 6), pad("time", 10), pad("algbw", 8),
                      pad("busbw", 8), pad("#wrong", 7), pad("peer time", 10), pad("peer busbw", 11), pad("ratio", 7)].joined(separator: " ") + "\n"
        out += "#" + [pad("(B)", 11), pad("(elements)", 13), pad("", 6), pad("", 6), pad("(us)", 10), pad("(GB/s)", 8),
                      pad("(GB/s)", 8), pad("", 7), pad("(us)", 10), pad("(GB/s)", 11), pad("", 7)].joined(separator: " ") + "\n"
        var lastKind = ""
        for r in rows {
            if r.collective != lastKind {
                out += "# \(r.collective), \(r.ranks) ranks on \(r.hosts) host\(r.hosts == 1 ? "" : "s")\(r.peer.map { ", peer: \($0)" } ?? "")\n"
                lastKind = r.collective
            }
            let redop = CollectiveKind(rawValue: r.collective)?.reduces == true ? "sum" : "none"
            out += " " + [pad("\(r.size)", 11), pad("\(r.count)", 13), pad(r.dtype, 6), pad(redop, 6),
                          pad(String(format: "%.1f", r.seconds * 1e6), 10), pad(String(format: "%.3f", r.algbw / 1e9), 8),
                          pad(String(format: "%.3f", r.busbw / 1e9), 8), pad("\(r.wrong)", 7),
                          pad(r.peerSeconds.map { String(format: "%.1f", $0 * 1e6) } ?? "-", 10),
                          pad(r.peerBusbw.map { String(format: "%.3f", $0 / 1e9) } ?? "-", 11),
                          pad(r.ratio.map { String(format: "%.3f", $0) } ?? "-", 7)].joined(separator: " ") + "\n"
        }
        let ratios = rows.compactMap(\.ratio)
        if !ratios.isEmpty {
            out += String(format: "# median busbw ratio (ours / peer) over %d sizes: %.3f\n", ratios.count, median(ratios))
        }
        let wrong = rows.reduce(0) { $0 + $1.wrong }
        out += "# out of bounds values : \(wrong) \(wrong == 0 ? "OK" : "FAILED")\n"
        return out
    }

    static func pad(_ s: String, _ w: Int) -> String {
        s.count >= w ? s : String(repeating: " ", count: w - s.count) + s
    }

    /// The rows as pretty-printed JSON.
    public static func json(_ rows: [CollectiveBenchRow]) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(rows)
    }

    /// An SVG plot of bus bandwidth against size (log–log): a solid line per collective for ours,
    /// dashed for the peer, and — when given — dotted for the modeled times.
    public static func plot(_ rows: [CollectiveBenchRow], modeled: [String: [Int: Double]] = [:], title: String) -> String {
        let width = 900.0, height = 520.0, left = 80.0, right = 660.0, top = 60.0, bottom = 460.0
        let sizes = rows.map { Double($0.size) }
        var bws: [Double] = rows.flatMap { r -> [Double] in [r.busbw, r.peerBusbw ?? 0] }
        for r in rows {
            guard let t = modeled[r.collective]?[r.size], t > 0 else { continue }
            bws.append(Double(r.size) / t * (CollectiveKind(rawValue: r.collective)?.busFactor(ranks: r.ranks) ?? 1))
        }
        let x = LogScale(covering: sizes, p0: left, p1: right)
        let yScale = LogScale(covering: bws.map { $0 / 1e9 }, p0: bottom, p1: top)
        var body: [String] = [SVG.text(width / 2, 28, title, size: 15, anchor: "middle", weight: "bold")]
        body += SVG.logLogGrid(x: x, y: yScale, left: left, right: right, top: top, bottom: bottom)
        body.append(SVG.text((left + right) / 2, bottom + 36, "size (bytes, log scale)", size: 12, anchor: "middle"))
        body.append(SVG.text(24, (top + bottom) / 2, "bus bandwidth (GB/s, log scale)", size: 12, anchor: "middle", rotate: -90))
        func polyline(_ pts: [(Double, Double)], color: String, dash: String?, label: String) {
            guard !pts.isEmpty else { return }
            let p = pts.map { "\(SVG.n(x($0.0))),\(SVG.n(yScale($0.1 / 1e9)))" }.joined(separator: " ")
            body.append("<polyline class=\"series\" data-series=\"\(SVG.escape(label))\" points=\"\(p)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/>")
            for (a, b) in pts { body.append("<circle cx=\"\(SVG.n(x(a)))\" cy=\"\(SVG.n(yScale(b / 1e9)))\" r=\"2.5\" fill=\"\(color)\"/>") }
        }
        var legend: [(String, String, String?)] = []
        let kinds = rows.reduce(into: [String]()) { if !$0.contains($1.collective) { $0.append($1.collective) } }
        for (i, k) in kinds.enumerated() {
            let rs = rows.filter { $0.collective == k }
            let c = SVG.color(i)
            polyline(rs.map { (Double($0.size), $0.busbw) }, color: c, dash: nil, label: "\(k) polychip")
            legend.append(("\(k): polychip", c, nil))
            let peer = rs.compactMap { r in r.peerBusbw.map { (Double(r.size), $0) } }
            if !peer.isEmpty, let name = rs.first?.peer {
                polyline(peer, color: c, dash: "6 4", label: "\(k) peer")
                legend.append(("\(k): \(name)", c, "6 4"))
            }
            if let m = modeled[k] {
                let f = CollectiveKind(rawValue: k)?.busFactor(ranks: rs.first?.ranks ?? 2) ?? 1
                let pts = rs.compactMap { r in m[r.size].map { (Double(r.size), Double(r.size) / $0 * f) } }
                polyline(pts, color: c, dash: "2 3", label: "\(k) modeled")
                legend.append(("\(k): modeled", c, "2 3"))
            }
        }
        var ly = top + 10
        for (label, c, dash) in legend {
            body.append(SVG.line(right + 20, ly - 4, right + 50, ly - 4, stroke: c, width: 2, dash: dash))
            body.append(SVG.text(right + 56, ly, label, size: 10))
            ly += 18
        }
        return SVG.document(width: width, height: height, title: title, body: body)
    }
}
