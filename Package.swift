// swift-tools-version:6.0
import PackageDescription

/// The simulator's event loop, the recorder and the shrinker's replay feeds mutate class-owned
/// state millions of times a second; dynamic exclusivity checks took half the time there (and
/// about 7 % of a shrink's). Debug builds (and so the tests) keep the checks; release builds of
/// the hot targets drop them.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "ChaosTrace",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "chaostrace", targets: ["ChaosTraceCLI"]),
        .library(name: "TraceStore", targets: ["TraceStore"]),
        .library(name: "Simulation", targets: ["Simulation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]
        ),
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]
        ),
        .target(
            name: "TraceStore",
            dependencies: ["CZstd", "CLMDB"],
            swiftSettings: hotPath
        ),
        .target(name: "Simulation", dependencies: ["TraceStore"], swiftSettings: hotPath),
        .target(name: "Checkers", dependencies: ["Simulation"]),
        .target(name: "Replay", dependencies: ["Simulation", "TraceStore"], swiftSettings: hotPath),
        .target(name: "ProcessNodes", dependencies: ["Simulation", "Checkers", "TraceStore"]),
        .target(
            name: "Systems",
            dependencies: ["Simulation", "Checkers", "ProcessNodes", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: hotPath
        ),
        .executableTarget(
            name: "ChaosTraceCLI",
            dependencies: [
                "TraceStore",
                "Simulation",
                "Systems",
                "Checkers",
                "Replay",
                "ProcessNodes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .testTarget(name: "TraceStoreTests", dependencies: ["TraceStore"]),
        .testTarget(name: "CheckersTests", dependencies: ["Checkers"]),
        .testTarget(name: "ReplayTests", dependencies: ["Replay", "Systems", "Simulation", "TraceStore"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Systems", "Checkers", "TraceStore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["ChaosTraceCLI", "TraceStore"]),
    ],
    swiftLanguageModes: [.v5]
)
