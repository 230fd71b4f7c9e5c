import ArgumentParser
import NestCacheDaemon

/// `--socket` and `--json`, shared by the commands that talk to nestcached.
struct DaemonOptions: ParsableArguments {
    @Option(help: "The control socket (default: $NESTCACHE_SOCKET, else /run/nestcache/nestcached.sock as root or $XDG_RUNTIME_DIR/nestcache/nestcached.sock).")
    var socket: String?

    @Flag(help: "Ask for one line of JSON.")
    var json = false

    /// Sends `request` (with ` json` when asked), prints the answer; a daemon error exits 1.
    func run(_ request: String, allowJSON: Bool = true) throws {
        let client = ControlClient(path: socket ?? ControlClient.defaultPath())
        let answer: String
        do {
            answer = try client.request(json && allowJSON ? request + " json" : request)
        } catch {
            printError("nestcache: \(error)")
            throw ExitCode(1)
        }
        print(answer)
        if answer.hasPrefix("error: ") || answer.hasPrefix("{\"error\":") { throw ExitCode(1) }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask nestcached: info, stats [VM], vcpus VM, metrics or config.",
        discussion: "Examples: nestcache show stats --json | jq .vms.web0.hits; nestcache show vcpus web0")

    @Argument(help: "info, stats, vcpus, metrics or config, then a VM where it takes one.")
    var what: [String]

    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        guard let first = what.first, ["info", "stats", "vcpus", "metrics", "config"].contains(first) else {
            throw ValidationError("expected info, stats [VM], vcpus VM, metrics or config")
        }
        if first == "vcpus", what.count != 2 { throw ValidationError("show vcpus takes one VM") }
        if first == "stats", what.count > 2 { throw ValidationError("show stats takes at most one VM") }
        if ["info", "metrics", "config"].contains(first), what.count != 1 { throw ValidationError("show \(first) takes no argument") }
    }

    func run() throws {
        try daemon.run((["show"] + what).joined(separator: " "), allowJSON: !["metrics", "config"].contains(what[0]))
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that nestcached answers.")
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run("ping") }
}

struct Reset: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Zero nestcached's counters (admin): reset counters [VM].")
    @Argument(help: "'counters', then an optional VM.") var words: [String]
    @OptionGroup var daemon: DaemonOptions
    func validate() throws {
        guard words.first == "counters", words.count <= 2 else { throw ValidationError("usage: nestcache reset counters [VM]") }
    }
    func run() throws { try daemon.run((["reset"] + words).joined(separator: " ")) }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop feeding a VM's workload (admin).")
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run("pause \(vm)") }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Feed a paused VM's workload again (admin).")
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run("resume \(vm)") }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make nestcached re-read its configuration (admin; as SIGHUP).")
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run("reload") }
}
