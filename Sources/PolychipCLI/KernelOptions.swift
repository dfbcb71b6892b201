import ArgumentParser
import Polychip

/// A kernel's parameters on the command line, derived from the kernel descriptors: every
/// ``KernelParameter`` of every kernel is a flag (`--eps 1e-5`, `--causal`, `--no-renormalize`,
/// `--routed-scale=-1`). A flag of another kernel is reported as not applying and ignored; a
/// flag no kernel has is an error. Numbers may be negative (`--routed-scale -1`).
struct KernelOptions {
    /// Parameter values by name, for the kernel.
    var values: [String: String] = [:]
    /// Flags given that belong to other kernels (`--k` for rope), in order.
    var ignored: [String] = []

    /// Every kernel's parameters by name (one name means one thing across kernels).
    static let all: [String: KernelParameter] = {
        var out: [String: KernelParameter] = [:]
        for kind in OpKind.allCases { for p in kind.descriptor.parameters where out[p.name] == nil { out[p.name] = p } }
        return out
    }()

    /// Parses `tokens` (what the command did not recognise) for `kind`.
    init(_ tokens: [String], for kind: OpKind) throws {
        let own = Dictionary(kind.descriptor.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var i = 0
        while i < tokens.count {
            let token = tokens[i]
            i += 1
            guard token.hasPrefix("--"), token.count > 2 else {
                throw ValidationError("unexpected argument \(Quoted(token)) (kernel parameters are --NAME VALUE)")
            }
            var name = String(token.dropFirst(2)), inline: String?
            if let eq = name.firstIndex(of: "=") { inline = String(name[name.index(after: eq)...]); name = String(name[..<eq]) }
            var negated = false
            if Self.all[name] == nil, name.hasPrefix("no-"), case .flag(inverted: true)? = Self.all[String(name.dropFirst(3))]?.value {
                name = String(name.dropFirst(3)); negated = true
            }
            guard let p = Self.all[name] else {
                throw ValidationError("unknown option --\(name); kernel parameters: \(Self.all.keys.sorted().map { "--" + $0 }.joined(separator: ", "))")
            }
            let value: String
            if p.isFlag {
                guard inline == nil else { throw ValidationError("--\(name) is a switch and takes no value") }
                value = negated ? "false" : "true"
            } else if let inline {
                value = inline
            } else {
                guard i < tokens.count else { throw ValidationError("--\(name) needs a value") }
                value = tokens[i]
                i += 1
            }
            guard own[name] != nil else { ignored.append("--" + (negated ? "no-" : "") + name); continue }
            guard values[name] == nil else { throw ValidationError("--\(name) given twice") }
            values[name] = value
        }
    }

    /// The call for `kind` with these values and the given input names; a bad value is a
    /// usage error naming its flag.
    func op(_ kind: OpKind, inputs: Set<String>) throws -> Op {
        do {
            return try kind.descriptor.op(KernelArguments(kind, values: values, inputs: inputs))
        } catch PolychipError.invalidArgument(_, let argument, let reason) {
            throw ValidationError("--\(argument) \(reason)")
        }
    }

    /// Help text: each kernel with its parameters (the `run` command's discussion).
    static var help: String {
        OpKind.allCases.compactMap { kind -> String? in
            let ps = kind.descriptor.parameters
            guard !ps.isEmpty else { return nil }
            let flags = ps.map { p -> String in
                let form: String
                switch p.value {
                case .flag(let inverted): form = inverted ? "--[no-]\(p.name)" : "--\(p.name)"
                case .real, .integer: form = "--\(p.name) N"
                case .choice(let words): form = "--\(p.name) \(words.joined(separator: "|"))"
                }
                return form + " (\(p.help)" + (p.defaultValue.map { "; default \($0)" } ?? "") + ")"
            }
            return "  \(kind.name): " + flags.joined(separator: ", ")
        }.joined(separator: "\n")
    }
}
