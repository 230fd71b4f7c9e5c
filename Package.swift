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
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // DESIGN §2-4: policies, engine, counters. No I/O, no Dispatch.
        .target(name: "NestCacheCore", swiftSettings: strict),
        // DESIGN §5-6: trace readers/writers, simulator, reports.
        .target(name: "NestCacheWorkload", dependencies: ["NestCacheCore"], swiftSettings: strict),
        .executableTarget(
            name: "nestcache",
            dependencies: [
                "NestCacheCore", "NestCacheWorkload",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "NestCacheCoreTests",
            dependencies: ["NestCacheCore", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict),
        .testTarget(
            name: "NestCacheWorkloadTests",
            dependencies: ["NestCacheCore", "NestCacheWorkload"],
            swiftSettings: strict),
    ]
)
