#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PolychipCLI

// A file-size limit (ulimit -f) then fails a write with EFBIG, reported as a typed error,
// instead of killing the process with SIGXFSZ halfway through its outputs.
signal(SIGXFSZ, SIG_IGN)
// The command lives in PolychipCLI so tests can drive it in-process.
PolychipCommand.boundedMain()
