import Foundation
import PolychipTestSupport

/// Temporary files and the built `polychip` binary for the bench tests (PolychipTestSupport).
enum TestSupport {
    static func tempDir() throws -> URL { try PolychipTestSupport.TestSupport.tempDir(prefix: "polychip-bench") }

    /// Runs the binary; returns its status, stdout and stderr.
    static func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try PolychipTestSupport.TestSupport.run(args)
        return (r.status, r.out, r.err)
    }
}
