// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ChaosTrace",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "chaostrace", targets: ["ChaosTraceCLI"]),
        .library(name: "TraceStore", targets: ["TraceStore"]),
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
        .executableTarget(
            name: "ChaosTraceCLI",
            dependencies: [
                "TraceStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TraceStoreTests", dependencies: ["TraceStore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["ChaosTraceCLI", "TraceStore"]),
    ],
    swiftLanguageModes: [.v5]
)
