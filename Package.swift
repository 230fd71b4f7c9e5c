// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "nestcache",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "NestCacheCore", targets: ["NestCacheCore"]),
        .library(name: "NestCacheWorkload", targets: ["NestCacheWorkload"]),
        .executable(name: "nestcache", targets: ["nestcache"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // DESIGN §2-4: policies, engine, counters. No I/O, no Dispatch.
        .target(name: "NestCacheCore", swiftSettings: strict),
        // DESIGN §5-6: trace readers/writers, simulator, reports.
        .target(name: "NestCacheWorkload", dependencies: ["NestCacheCore"], swiftSettings: strict),
        // DESIGN §2-3 the plain way: the tests' differential oracle and the benchmarks' baseline.
        .target(name: "NestCacheReference", dependencies: ["NestCacheCore"], swiftSettings: strict),
        .executableTarget(
            name: "nestcache",
            dependencies: [
                "NestCacheCore", "NestCacheWorkload",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "NestCacheCoreTests",
            dependencies: ["NestCacheCore", "NestCacheReference"],
            swiftSettings: strict),
        .testTarget(
            name: "NestCacheWorkloadTests",
            dependencies: ["NestCacheCore", "NestCacheWorkload"],
            swiftSettings: strict),
    ]
)
