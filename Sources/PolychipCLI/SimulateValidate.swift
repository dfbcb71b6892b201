import ArgumentParser
import Foundation
import Polychip
import PolychipModels

/// `polychip simulate --validate [--fit] [--records DIR] [--profile FILE] [--set …] [--json]`.
extension SimulateCommand {
    func runPublishedValidation() throws {
        guard validatePublished else { throw ValidationError("--fit and --records are used with --validate") }
        let sources: [PublishedSource]
        do {
            sources = try records.map { try PublishedSource.load(directory: $0) } ?? PublishedSource.bundled()
        } catch let e as PublishedRecordError {
            throw ValidationError("published records: \(e)")
        }
        // A --profile replaces the bundled profile of the same name (a modified copy to check).
        var overrides: [String: String] = [:]
        for p in profiles {
            let prof = try SimulatedBackend.loadProfile(p)
            overrides[prof.name] = p
        }
        if fit {
            let values = try PublishedFit.fit(sources: sources, overrides: overrides, settings: settings)
            if json {
                let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(values), as: UTF8.self))
            } else {
                print(PublishedFit.table(values), terminator: "")
            }
            return
        }
        let report = try PublishedValidation.run(sources: sources, overrides: overrides, settings: settings)
        if json {
            let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(report), as: UTF8.self))
        } else {
            print(report.text(), terminator: "")
        }
    }
}
