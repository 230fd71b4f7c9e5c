import NestCacheControl
import Testing

@Suite struct ControlRequestTests {
    func parse(_ s: String) throws(ControlError) -> ControlRequest { try ControlRequest(parsing: Array(s.utf8)) }

    @Test func parsesEveryCommand() throws {
        let cases: [(String, ControlCommand, Bool)] = [
            ("help", .help, false), ("version json", .version, true), ("ping", .ping, false), ("quit", .quit, false),
            ("show info", .showInfo, false), ("show info json", .showInfo, true),
            ("show stats", .showStats(vm: nil), false), ("show stats web0 json", .showStats(vm: "web0"), true),
            ("show  stats\tweb0\r", .showStats(vm: "web0"), false),
            ("show vcpus web0", .showVCPUs(vm: "web0"), false),
            ("show bounds web0", .showBounds(vm: "web0"), false), ("show bounds web0 json", .showBounds(vm: "web0"), true),
            ("show metrics", .showMetrics, false),
            ("show config", .showConfig, false), ("reset counters", .resetCounters(vm: nil), false),
            ("reset counters web0 json", .resetCounters(vm: "web0"), true), ("pause web0", .pause(vm: "web0"), false),
            ("resume web0", .resume(vm: "web0"), false), ("reload", .reload, false),
        ]
        for (line, command, json) in cases {
            #expect(try parse(line) == ControlRequest(command, json: json), "\(line)")
        }
        #expect(try parse("reload").command.isAdmin)
        #expect(try !parse("show stats").command.isAdmin)
    }

    @Test func rejectsBadRequestsWithTheirCode() {
        let cases: [(String, ControlErrorCode)] = [
            ("", .unknownCommand), ("json", .unknownCommand), ("frobnicate", .unknownCommand),
            ("show", .badArgument), ("show bogus", .badArgument), ("show vcpus", .badArgument),
            ("show bounds", .badArgument), ("show bounds json", .badArgument), ("show bounds a b", .badArgument),
            ("show stats a b", .badArgument), ("show metrics json", .badArgument), ("ping now", .badArgument),
            ("pause", .badArgument), ("reset", .badArgument), ("reset everything", .badArgument),
        ]
        for (line, code) in cases {
            #expect(throws: ControlError.self, "\(line)") { try parse(line) }
            do { _ = try parse(line) } catch { #expect(error.code == code, "\(line)") }
        }
        #expect(throws: ControlError(.badArgument, "request is not UTF-8 text")) { try ControlRequest(parsing: [0xff, 0xfe]) }
    }

    /// `line` is what clients send: the daemon's parser gives the same request back.
    @Test(arguments: [
        ControlCommand.help, .version, .ping, .quit, .showInfo, .showStats(vm: nil), .showStats(vm: "web0"),
        .showVCPUs(vm: "a.b:c-d_e"), .showBounds(vm: "web0"), .showMetrics, .showConfig, .resetCounters(vm: nil), .resetCounters(vm: "x"),
        .pause(vm: "x"), .resume(vm: "x"), .reload,
    ])
    func linesParseBackToTheSameRequest(_ command: ControlCommand) throws {
        for json in [false, true] {
            let request = ControlRequest(command, json: json)
            guard json == false || request.commandHasJSON else { continue }
            #expect(try ControlRequest(parsing: Array(request.line.utf8)) == request, "\(request.line)")
        }
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

