import ArgumentParser
import Logging
import NestCacheDaemon
import NestCacheSystem

@main
struct Nestcached: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nestcached",
        abstract: "Serve KVM nested-context caching policies for simulated and replayed VMs.",
        discussion: "Without --config, serves the embedded default (config/nestcached.toml).",
        version: Daemon.version)

    @Option(help: "The TOML configuration (default: the embedded one).")
    var config: String?

    @Option(help: "The control socket path (overrides the configuration).")
    var socket: String?

    @Option(name: .customLong("check-config"), help: "Validate FILE and exit 0, or 78 with FILE:LINE: message.")
    var checkConfig: String?

    func run() async throws {
        if let path = checkConfig {
            _ = try loadOrExit { () throws(ConfigError) in try DaemonConfig.load(path: path) }
            print("\(path): ok")
            return
        }
        let c = try loadOrExit { () throws(ConfigError) in
            if let config { return try DaemonConfig.load(path: config) }
            return try DaemonConfig.embeddedDefault()
        }
        let journal = JournaldLogHandler.automatic()
        let level = LogLevelSetting(c.daemon.logLevel)
        LoggingSystem.bootstrap { _ in
            var h = journal
            h.levelSetting = level
            return h
        }
        let daemon = Daemon(config: c, configPath: config, socketOverride: socket, logger: Logger(label: "nestcached"),
                            logLevel: level)
        let code = try await daemon.run()
        if code != 0 { throw ExitCode(code) }
    }

    /// Configuration errors map to exit 78 here, in one place.
    func loadOrExit(_ body: () throws(ConfigError) -> DaemonConfig) throws -> DaemonConfig {
        do {
            return try body()
        } catch {
            Stderr.write("nestcached: \(error)")
            throw ExitCode(ConfigError.exitCode)
        }
    }
}
