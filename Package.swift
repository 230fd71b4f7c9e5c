// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "nestcache",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "NestCacheCore", targets: ["NestCacheCore"]),
        .library(name: "NestCacheWorkload", targets: ["NestCacheWorkload"]),
        .library(name: "NestCacheDaemon", targets: ["NestCacheDaemon"]),
        .executable(name: "nestcached", targets: ["nestcached"]),
        .executable(name: "nestcache", targets: ["nestcache"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // DESIGN §2-4: policies, engine, counters. No I/O, no Dispatch.
        .target(name: "NestCacheCore", swiftSettings: strict),
        // DESIGN §5-6: trace readers/writers, simulator, reports.
        .target(name: "NestCacheWorkload", dependencies: ["NestCacheCore", "NestCacheSystem"], swiftSettings: strict),
        // read/write with EINTR, stderr, sockaddr_un: the system calls made outside SwiftNIO, once.
        .target(name: "NestCacheSystem", swiftSettings: strict),
        // DESIGN §8's request grammar, framer, client and socket path: no NIO, TOML or libsystemd.
        .target(name: "NestCacheControl", dependencies: ["NestCacheSystem"], swiftSettings: strict),
        // setpriority(2) of the calling thread (syscall(2) is variadic, hence C).
        .target(name: "CThreadPriority"),
        // mallopt(M_ARENA_MAX) (not visible from Swift, hence C).
        .target(name: "CMallocArenas"),
        // TOML 1.0 with the line of every key; no input can crash it (docs/DESIGN-NOTES.md).
        .target(name: "NestCacheTOML", swiftSettings: strict),
        // libsystemd: sd_notify, sd_listen_fds, sd_journal_sendv (non-variadic, callable from Swift).
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // DESIGN §7-8: configuration, vCPU queues, control socket, HTTP metrics, systemd and journald glue.
        .target(
            name: "NestCacheDaemon",
            dependencies: [
                "NestCacheCore", "NestCacheWorkload", "NestCacheControl", "NestCacheSystem", "CSystemd", "CThreadPriority", "CMallocArenas",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                "NestCacheTOML",
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "nestcached",
            dependencies: [
                "NestCacheDaemon",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // DESIGN §2-3 the plain way: the tests' differential oracle and the benchmarks' baseline.
        .target(name: "NestCacheReference", dependencies: ["NestCacheCore"], swiftSettings: strict),
        .executableTarget(
            name: "nestcache",
            dependencies: [
                "NestCacheCore", "NestCacheWorkload", "NestCacheControl", "NestCacheSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict,
            // Issue 10: start-up is most of a short replay. A static executable: the Swift runtime,
            // FoundationEssentials (which ArgumentParser imports) and glibc linked in, so nothing
            // is mapped, relocated or resolved at start: 2.6 ms of CPU for a 3 KB ftrace replay,
            // against 3.7 with the runtime static and glibc and libstdc++ loaded, and 7 ms with
            // every library loaded. The CLI uses nothing static glibc lacks (no NSS, no dlopen,
            // no locale). Linux only (Darwin has no static stdlib). The static FoundationEssentials
            // needs the three libraries after it, which only `swift build --static-swift-stdlib`
            // would add (it rebuilds every target); lld, as gold warns about FoundationEssentials'
            // use of mktemp. Not position-independent, so this short-lived CLI's own image is not
            // randomized (its stack, heap and mappings still are); nestcached, the long-running
            // one, stays dynamic and PIE. Debug builds only link the Swift runtime in: the
            // sanitizer builds of `make sanitize` are debug builds, and the sanitizers' runtimes
            // want a dynamic, position-independent executable.
            linkerSettings: [
                .unsafeFlags(
                    ["-static-executable", "-l_FoundationCollections", "-l_FoundationCShims", "-lswiftSynchronization", "-use-ld=lld"],
                    .when(platforms: [.linux], configuration: .release)),
                .unsafeFlags(
                    ["-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims", "-lswiftSynchronization", "-use-ld=lld"],
                    .when(platforms: [.linux], configuration: .debug)),
            ]),
        .executableTarget(
            name: "nestcache-bench",
            dependencies: [
                "NestCacheCore", "NestCacheWorkload", "NestCacheReference", "NestCacheDaemon", "NestCacheControl",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Issue 8: coverage-guided fuzz targets (one file each) and their thin libFuzzer shell.
        .target(
            name: "NestCacheFuzzTargets",
            dependencies: ["NestCacheCore", "NestCacheWorkload", "NestCacheTOML", "NestCacheDaemon", "NestCacheControl", "NestCacheSystem",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "nestcache-fuzz", dependencies: ["NestCacheFuzzTargets", "CLibFuzzer"], swiftSettings: strict),
        .testTarget(name: "NestCacheFuzzTests", dependencies: ["NestCacheFuzzTargets"], swiftSettings: strict),
        .testTarget(
            name: "NestCacheCoreTests",
            dependencies: ["NestCacheCore", "NestCacheReference", "NestCacheWorkload"],
            swiftSettings: strict),
        .testTarget(
            name: "NestCacheDaemonTests",
            dependencies: ["NestCacheDaemon", "NestCacheControl", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "NestCacheControlTests", dependencies: ["NestCacheControl"], swiftSettings: strict),
        .testTarget(name: "NestCacheTOMLTests", dependencies: ["NestCacheTOML"], swiftSettings: strict),
        .testTarget(name: "NestCacheSystemTests", dependencies: ["NestCacheSystem"], swiftSettings: strict),
        .testTarget(
            name: "NestCacheWorkloadTests",
            dependencies: ["NestCacheCore", "NestCacheWorkload"],
            swiftSettings: strict),
    ]
)
