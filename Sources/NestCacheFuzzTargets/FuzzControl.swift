import Logging
import NestCacheControl
import NestCacheDaemon

/// The control socket's request path without the socket: the bytes arrive in chunks of sizes the
/// input chooses, go through `LineFramer`, and each line through `ControlRequest` and the daemon's
/// dispatcher, as from an unprivileged peer. Every line gets one well-formed answer (DESIGN §8).
enum FuzzControl {
    /// One daemon for the whole run: no workloads (no threads), a socket path it never binds.
    static let daemon: Daemon = {
        do {
            let config = try DaemonConfig.load(text: "[daemon]\nsummary_interval_s = 0\n", path: "fuzz.toml")
            return Daemon(config: config, configPath: nil, socketOverride: "/nonexistent/fuzz.sock",
                          logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        } catch {
            preconditionFailure("the fuzz configuration does not load: \(error)")
        }
    }()
    static let codes: Set<Substring> = ["unknown-command", "bad-argument", "no-such-vm", "permission-denied", "line-too-long", "busy"]

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        guard let first = data.first else { return }
        let chunk = Int(first % 64) + 1
        var framer = LineFramer()
        var rest = data.dropFirst()[...]
        while !rest.isEmpty {
            let piece = rest.prefix(chunk)
            rest = rest.dropFirst(piece.count)
            for item in framer.feed(piece) {
                guard case .line(let line) = item else { continue }
                fuzzCheck(line.count <= ControlRequest.maxLineLength, "a line of \(line.count) bytes passed the framer")
                check(line, daemon.respond(toLine: line, peerUID: 65534).text)
            }
            fuzzCheck(framer.pendingCount <= ControlRequest.maxLineLength, "the framer holds \(framer.pendingCount) bytes")
        }
    }

    static func check(_ line: [UInt8], _ text: String) {
        fuzzCheck(text.hasSuffix("\n\n"), "answer without its empty line: \(text.debugDescription)")
        fuzzCheck(!text.dropLast(2).contains("\n\n"), "an empty line inside an answer: \(text.debugDescription)")
        if text.hasPrefix("error: ") {
            let code = text.dropFirst(7).prefix { $0 != ":" }
            fuzzCheck(codes.contains(code), "unknown error code in \(text.debugDescription)")
        }
        if let request = try? ControlRequest(parsing: line), request.command.isAdmin {
            fuzzCheck(text.contains("permission-denied"), "admin command from uid 65534 answered \(text.debugDescription)")
        }
        if ControlRequest.endsWithJSON(line), !text.hasPrefix("error: ") {
            fuzzCheck(text.hasPrefix("{") || text.hasPrefix("# HELP") || text.hasPrefix("# "), "json asked, got \(text.debugDescription)")
        }
    }
}
