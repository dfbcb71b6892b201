import PolychipCLI

// The command lives in PolychipCLI so tests can drive it in-process.
PolychipCommand.main()
