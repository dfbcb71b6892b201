/// User input quoted into an error message, bounded: at most ``limit`` characters of it, then
/// `…` and its full length. A 10 MB profile name or `.npy` descr must not become a 10 MB
/// message (issue 14); every error that echoes text a user gave goes through this.
///
/// `"\(Quoted(name))"` prints `'ascend-910c'`, or `'aaaa…' (10485760 characters)` when long.
/// Control characters are escaped so a message stays on its line.
public struct Quoted: CustomStringConvertible, Sendable {
    /// Characters of the input shown at most.
    public static let limit = 64

    /// The text shown (already bounded and escaped).
    public let description: String

    /// Quotes `text`, keeping at most ``limit`` characters of it.
    public init(_ text: some StringProtocol) {
        var shown = ""
        var count = 0
        var truncated = false
        for ch in text {
            if count == Quoted.limit { truncated = true; break }
            shown += ch.isASCII && (ch.asciiValue! < 0x20 || ch.asciiValue! == 0x7F) ? ch.unicodeScalars.map { $0.escaped(asASCII: true) }.joined() : String(ch)
            count += 1
        }
        if truncated {
            description = "'\(shown)…' (\(text.count) characters)"
        } else {
            description = "'\(shown)'"
        }
    }

    /// `text` itself when it has at most `limit` characters, else its first `limit` characters,
    /// `…` and the full length: for paths and values printed without quotes.
    public static func bounded(_ text: some StringProtocol, limit: Int = 256) -> String {
        var prefix = ""
        var n = 0
        for ch in text {
            if n == limit { return prefix + "… (\(text.count) characters)" }
            prefix.append(ch)
            n += 1
        }
        return prefix
    }
}
