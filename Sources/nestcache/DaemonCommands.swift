import ArgumentParser
import NestCacheControl
import NestCacheSystem

/// `--socket` and `--json`, shared by the commands that talk to nestcached.
struct DaemonOptions: ParsableArguments {
    @Option(help: "The control socket (default: $NESTCACHE_SOCKET, else /run/nestcache/nestcached.sock as root or $XDG_RUNTIME_DIR/nestcache/nestcached.sock).")
    var socket: String?

    @Flag(help: "Ask for one line of JSON.")
    var json = false

    /// Sends `command` (as JSON when asked and it has a JSON form), prints the answer; a daemon
    /// error exits 1.
    func run(_ command: ControlCommand) throws {
        var request = ControlRequest(command)
        request.json = json && request.commandHasJSON
        let client = ControlClient(path: socket ?? ControlSocket.clientPath())
        let answer: String
        do {
            answer = try client.request(request)
        } catch {
            Stderr.write("nestcache: \(error)")
            throw ExitCode(1)
        }
        print(answer)
        if answer.hasPrefix("error: ") || answer.hasPrefix("{\"error\":") { throw ExitCode(1) }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Ask nestcached: info, stats [VM], vcpus VM, bounds VM, metrics or config.",
        discussion: "Examples: nestcache show stats --json | jq .vms.web0.hits; nestcache show vcpus web0; nestcache show bounds web0 --json")

    @Argument(help: "info, stats, vcpus, bounds, metrics or config, then a VM where it takes one.")
    var what: [String]

    @OptionGroup var daemon: DaemonOptions

    /// The command, from the same grammar the daemon parses (ControlRequest is its only parser).
    func command() throws -> ControlCommand {
        do {
            return try ControlRequest(parsing: Array((["show"] + what).joined(separator: " ").utf8)).command
        } catch {
            throw ValidationError(error.message)
        }
    }

    func validate() throws { _ = try command() }

    func run() throws { try daemon.run(try command()) }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping", abstract: "Check that nestcached answers.")
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run(.ping) }
}

struct Reset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset", abstract: "Zero nestcached's counters (admin): reset counters [VM].")
    @Argument(help: "'counters', then an optional VM.") var words: [String]
    @OptionGroup var daemon: DaemonOptions
    func validate() throws {
        guard words.first == "counters", words.count <= 2 else { throw ValidationError("usage: nestcache reset counters [VM]") }
    }
    func run() throws { try daemon.run(.resetCounters(vm: words.count == 2 ? words[1] : nil)) }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Stop feeding a VM's workload (admin).")
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run(.pause(vm: vm)) }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Feed a paused VM's workload again (admin).")
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run(.resume(vm: vm)) }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Make nestcached re-read its configuration (admin; as SIGHUP).")
    @OptionGroup var daemon: DaemonOptions
    func run() throws { try daemon.run(.reload) }
}
