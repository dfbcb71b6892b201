import Foundation
import PolychipFuzzTargets

// libFuzzer's driver, called from this executable's own entry point (SwiftPM renames the
// module's main, so libFuzzer's main cannot be used directly).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32) -> Int32

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    FuzzTargets.checkpoint([UInt8](UnsafeBufferPointer(start: data, count: size)))
    return 0
})
