import Logging
import NestCacheWorkload
@testable import NestCacheDaemon
import NestCacheControl
import Testing

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
