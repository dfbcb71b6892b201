// swift-tools-version: 6.0
// libFuzzer targets for Polychip's parsers and validators. Separate from the root package
// so the library never carries sanitizer flags; build with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "PolychipFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Polychip", path: "..")],
    targets: [
        .executableTarget(name: "FuzzProfile", dependencies: [.product(name: "PolychipFuzzTargets", package: "Polychip")]),
        .executableTarget(name: "FuzzNumPy", dependencies: [.product(name: "PolychipFuzzTargets", package: "Polychip")]),
        .executableTarget(name: "FuzzSelector", dependencies: [.product(name: "PolychipFuzzTargets", package: "Polychip")]),
        .executableTarget(name: "FuzzValidation", dependencies: [.product(name: "PolychipFuzzTargets", package: "Polychip")]),
        .executableTarget(name: "FuzzCheckpoint", dependencies: [.product(name: "PolychipFuzzTargets", package: "Polychip")]),
    ],
    swiftLanguageModes: [.v6]
)
