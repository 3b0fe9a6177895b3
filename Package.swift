// swift-tools-version:6.0
import PackageDescription

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
            dependencies: ["CZstd", "CLMDB"]
        ),
        .target(name: "Simulation", dependencies: ["TraceStore"]),
        .target(name: "Systems", dependencies: ["Simulation"]),
        .executableTarget(
            name: "ChaosTraceCLI",
            dependencies: [
                "TraceStore",
                "Simulation",
                "Systems",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TraceStoreTests", dependencies: ["TraceStore"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Systems", "TraceStore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["ChaosTraceCLI", "TraceStore"]),
    ],
    swiftLanguageModes: [.v5]
)
