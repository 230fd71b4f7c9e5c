import Logging
import NestCacheWorkload
@testable import NestCacheDaemon
import Testing

@Suite struct ControlRequestTests {
    func parse(_ s: String) throws(ControlError) -> ControlRequest { try ControlRequest(parsing: Array(s.utf8)) }

    @Test func parsesEveryCommand() throws {
        let cases: [(String, ControlCommand, Bool)] = [
            ("help", .help, false), ("version json", .version, true), ("ping", .ping, false), ("quit", .quit, false),
            ("show info", .showInfo, false), ("show info json", .showInfo, true),
            ("show stats", .showStats(vm: nil), false), ("show stats web0 json", .showStats(vm: "web0"), true),
            ("show  stats\tweb0\r", .showStats(vm: "web0"), false),
            ("show vcpus web0", .showVCPUs(vm: "web0"), false), ("show metrics", .showMetrics, false),
            ("show config", .showConfig, false), ("reset counters", .resetCounters(vm: nil), false),
            ("reset counters web0 json", .resetCounters(vm: "web0"), true), ("pause web0", .pause(vm: "web0"), false),
            ("resume web0", .resume(vm: "web0"), false), ("reload", .reload, false),
        ]
        for (line, command, json) in cases {
            #expect(try parse(line) == ControlRequest(command: command, json: json), "\(line)")
        }
        #expect(try parse("reload").command.isAdmin)
        #expect(try !parse("show stats").command.isAdmin)
    }

    @Test func rejectsBadRequestsWithTheirCode() {
        let cases: [(String, ControlErrorCode)] = [
            ("", .unknownCommand), ("json", .unknownCommand), ("frobnicate", .unknownCommand),
            ("show", .badArgument), ("show bogus", .badArgument), ("show vcpus", .badArgument),
            ("show stats a b", .badArgument), ("show metrics json", .badArgument), ("ping now", .badArgument),
            ("pause", .badArgument), ("reset", .badArgument), ("reset everything", .badArgument),
        ]
        for (line, code) in cases {
            #expect(throws: ControlError.self, "\(line)") { try parse(line) }
            do { _ = try parse(line) } catch { #expect(error.code == code, "\(line)") }
        }
        #expect(throws: ControlError(.badArgument, "request is not UTF-8 text")) { try ControlRequest(parsing: [0xff, 0xfe]) }
    }
}

@Suite struct LineFramerTests {
    /// Whole, per line and per byte give the same items.
    @Test func framingDoesNotDependOnChunking() {
        let long = String(repeating: "x", count: 5000)
        let text = "ping\nshow stats json\n\(long)\nversion\npartial"
        let bytes = Array(text.utf8)
        var whole = LineFramer()
        let a = whole.feed(bytes)
        var perByte = LineFramer()
        let b = bytes.flatMap { perByte.feed([$0]) }
        var perLine = LineFramer()
        let c = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().flatMap { i, l in
            perLine.feed(Array(l.utf8) + (i < 4 ? [0x0A] : []))
        }
        let expected: [LineFramer.Item] = [.line(Array("ping".utf8)), .line(Array("show stats json".utf8)), .tooLong, .line(Array("version".utf8))]
        #expect(a == expected)
        #expect(b == expected)
        #expect(c == expected)
        #expect(whole.pendingCount == 7)
    }

    @Test func aLineOfExactlyTheLimitIsAccepted() {
        var f = LineFramer(limit: 8)
        #expect(f.feed(Array("12345678\n123456789\nok\n".utf8)) == [.line(Array("12345678".utf8)), .tooLong, .line(Array("ok".utf8))])
    }
}

@Suite struct ControlFuzzTests {
    /// Random bytes and mangled commands: every line gets exactly one answer ending in an empty
    /// line, errors use DESIGN §8's codes, admin commands need a privileged peer, nothing traps.
    @Test func randomInputAlwaysGetsOneWellFormedAnswer() throws {
        let config = try DaemonConfig.load(text: "[daemon]\nsummary_interval_s = 0\n", path: "fuzz.toml")
        let daemon = Daemon(config: config, configPath: nil, socketOverride: "/nonexistent/fuzz.sock", logger: Logger(label: "fuzz"))
        let words = ["show", "stats", "vcpus", "info", "metrics", "config", "json", "reset", "counters", "pause", "resume",
                     "reload", "help", "ping", "version", "quit", "vm0", "\t", " ", "é", "\u{0}"]
        let codes = Set(["unknown-command", "bad-argument", "no-such-vm", "permission-denied", "line-too-long", "busy"])
        for seed in UInt64(1)...300 {
            var rng = SplitMix64(seed: seed)  // a failing seed replays anywhere
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                if Bool.random(using: &rng) {
                    bytes += Array((words.randomElement(using: &rng) ?? "").utf8) + [0x20]
                } else {
                    bytes += (0..<Int.random(in: 1...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            var framer = LineFramer()
            for item in framer.feed(bytes + [0x0A]) {
                guard case .line(let line) = item else { continue }
                let (text, _) = daemon.respond(toLine: line, peerUID: 65534)
                #expect(text.hasSuffix("\n\n"), "seed \(seed)")
                #expect(!text.dropLast(2).contains("\n\n"), "seed \(seed): an empty line inside an answer")
                if text.hasPrefix("error: ") {
                    let code = text.dropFirst(7).prefix { $0 != ":" }
                    #expect(codes.contains(String(code)), "seed \(seed): \(text)")
                }
                if let request = try? ControlRequest(parsing: line), request.command.isAdmin {
                    #expect(text.contains("permission-denied"), "seed \(seed): admin from uid 65534 answered \(text)")
                }
            }
        }
    }
}
