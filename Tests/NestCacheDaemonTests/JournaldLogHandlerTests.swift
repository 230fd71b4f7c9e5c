import Foundation
import Logging
import NestCacheDaemon
import Testing

/// Field mapping and the stderr line without I/O; then records through a real systemd-journald
/// (see ``JournaldFixture``), read back with `journalctl -o json`.
@Suite struct JournaldLogHandlerTests {
    // MARK: Pure mapping

    @Test func prioritiesAreSyslogLevels() {
        let expected: [(Logger.Level, Int)] = [
            (.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
        for (level, priority) in expected {
            #expect(JournaldLogHandler.priority(for: level) == priority, "\(level)")
        }
    }

    @Test func metadataKeysBecomeNestcacheFields() {
        let expected = [
            "nestcache.event": "NESTCACHE_EVENT",
            "nestcache.vm": "NESTCACHE_VM",
            "nestcache.vcpu": "NESTCACHE_VCPU",
            "nestcache.policy": "NESTCACHE_POLICY",
            "nestcache.hit_ratio": "NESTCACHE_HIT_RATIO",
            "request": "NESTCACHE_REQUEST",
            "trace-file.path": "NESTCACHE_TRACE_FILE_PATH",
            "_PID": "NESTCACHE__PID",
            "2nd": "NESTCACHE_2ND",
            "größe": "NESTCACHE_GR__E",
            "": "NESTCACHE_",
        ]
        for (key, field) in expected {
            #expect(JournaldLogHandler.journalField(forMetadataKey: key) == field, "key \(key)")
        }
        let long = JournaldLogHandler.journalField(forMetadataKey: String(repeating: "k", count: 100))
        #expect(long == "NESTCACHE_" + String(repeating: "K", count: 54))
    }

    @Test func fieldsInSendOrder() {
        let fields = JournaldLogHandler.journalFields(
            identifier: "nestcached", level: .warning, message: "thrashing",
            metadata: ["nestcache.vm": "web0", "nestcache.event": "thrash", "VM": "shadowed", "nestcache.vcpu": "3"],
            file: "Daemon.swift", line: 42, function: "summary()")
        let rendered = fields.map { "\($0.name)=\($0.value)" }
        // "VM" and "nestcache.vm" both map to NESTCACHE_VM; "nestcache.vm" sorts last and wins.
        #expect(rendered == [
            "MESSAGE=thrashing", "PRIORITY=4", "SYSLOG_IDENTIFIER=nestcached",
            "CODE_FILE=Daemon.swift", "CODE_LINE=42", "CODE_FUNC=summary()",
            "NESTCACHE_EVENT=thrash", "NESTCACHE_VCPU=3", "NESTCACHE_VM=web0",
        ])
    }

    @Test func stderrLineIsOneLineWithEventFirst() {
        #expect(JournaldLogHandler.stderrLine(level: .info, message: "serving", metadata: [:]) == "INFO serving")
        let metadata: Logger.Metadata = [
            "nestcache.vm": "web0", "nestcache.event": "thrash", "nestcache.hit_ratio": "0.42", "peer": "uid=0",
        ]
        #expect(JournaldLogHandler.stderrLine(level: .warning, message: "hit ratio fell\nbelow 0.5", metadata: metadata)
            == #"WARNING [thrash hit_ratio=0.42 peer=uid=0 vm=web0] hit ratio fell\nbelow 0.5"#)
        #expect(JournaldLogHandler.stderrLine(level: .error, message: "bad", metadata: ["nestcache.vm": "db1"])
            == "ERROR [vm=db1] bad")
    }

    /// In a child process, so that its stderr can be read.
    @Test func stderrDestinationWritesOneLinePerRecord() async throws {
        let result = try await #require(processExitsWith: .success, observing: [\.standardErrorContent]) {
            var logger = Logger(label: "nestcache.test") { _ in JournaldLogHandler(destination: .stderr) }
            logger.logLevel = .debug
            logger.warning("hit ratio fell\nbelow 0.5", metadata: ["nestcache.event": "thrash", "nestcache.vm": "web0"])
            logger.info("serving")
            logger.trace("not at this level")
        }
        let lines = String(decoding: result.standardErrorContent, as: UTF8.self).split(separator: "\n")
        #expect(lines == [#"WARNING [thrash vm=web0] hit ratio fell\nbelow 0.5"#, "INFO serving"])
    }

    /// Without a journal, in a child process that mounts an empty tmpfs over /run/systemd/journal
    /// in a mount namespace of its own (the machine's journald is untouched):
    /// - no socket file: the throwing init throws ENOENT and `automatic` picks stderr;
    /// - a socket file nobody listens on (journald died): ECONNREFUSED likewise, and a handler made
    ///   for the journal writes its records to stderr, because `sd_journal_sendv` now fails.
    /// (With no socket file at all, libsystemd drops records silently and reports success.)
    @Test(.enabled(if: geteuid() == 0, "needs root for a private mount namespace"))
    func withoutJournalRecordsGoToStderr() async throws {
        let result = try await #require(processExitsWith: .success, observing: [\.standardErrorContent]) {
            let path = JournaldLogHandler.journalSocketPath
            // unshare(CLONE_NEWNS) is GNU-only in <sched.h>, so Swift does not import it.
            typealias Unshare = @convention(c) (Int32) -> Int32
            guard let unshare = dlsym(nil, "unshare").map({ unsafeBitCast($0, to: Unshare.self) }),
                unshare(0x0002_0000) == 0,
                mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0,
                mount("tmpfs", "/run/systemd/journal", "tmpfs", 0, nil) == 0
            else { exit(2) }

            guard JournaldLogHandler.automatic().destination == .stderr,
                journaldInitError() == .journalUnreachable(path: path, errno: ENOENT)
            else { exit(3) }

            // A stale socket file: bound, then closed without unlinking.
            guard let stale = makeUnixSocket(type: Int32(SOCK_DGRAM.rawValue), boundTo: path, listening: false)
            else { exit(4) }
            close(stale)
            guard JournaldLogHandler.automatic().destination == .stderr,
                journaldInitError() == .journalUnreachable(path: path, errno: ECONNREFUSED)
            else { exit(5) }

            let logger = Logger(label: "nestcache.test") { _ in JournaldLogHandler(destination: .journal) }
            logger.error("journal gone", metadata: ["nestcache.event": "shutdown"])
        }
        let lines = String(decoding: result.standardErrorContent, as: UTF8.self).split(separator: "\n")
        #expect(lines == ["ERROR [shutdown] journal gone"])
    }

    // MARK: Reachability

    @Test func journalStreamMustNameStderr() {
        var status = stat()
        #expect(fstat(STDERR_FILENO, &status) == 0)
        #expect(JournaldLogHandler.isStderrJournalStream("\(status.st_dev):\(status.st_ino)"))
        #expect(!JournaldLogHandler.isStderrJournalStream("\(status.st_dev):\(status.st_ino + 1)"))
        #expect(!JournaldLogHandler.isStderrJournalStream("\(status.st_dev)"))
        #expect(!JournaldLogHandler.isStderrJournalStream("x:y"))
        #expect(!JournaldLogHandler.isStderrJournalStream(nil))
    }

    @Test func reachableOnlyWhenADatagramSocketListens() throws {
        let directory = URL(fileURLWithPath: "/tmp/nc-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let missing = directory.appendingPathComponent("missing.sock").path
        #expect(!JournaldLogHandler.isJournalReachable(environment: [:], socketPath: missing))

        let regular = directory.appendingPathComponent("file").path
        #expect(FileManager.default.createFile(atPath: regular, contents: Data()))
        #expect(!JournaldLogHandler.isJournalReachable(environment: [:], socketPath: regular))

        let bound = directory.appendingPathComponent("journal.sock").path
        let server = try DatagramSocket(boundTo: bound)
        defer { server.close() }
        #expect(JournaldLogHandler.isJournalReachable(environment: [:], socketPath: bound))
    }

    // MARK: Real journald

    @Test(.enabled(if: JournaldFixture.isAvailable, "needs a journald: \(JournaldFixture.unavailableReason ?? "")"))
    func recordsReachJournaldWithTheirFields() async throws {
        _ = try await JournaldFixture.ensureRunning()
        let handler = try JournaldLogHandler()
        #expect(handler.destination == .journal)
        #expect(JournaldLogHandler.automatic().destination == .journal)

        let testID = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var logger = Logger(label: "nestcache.test") { _ in handler }
        logger.logLevel = .debug
        logger[metadataKey: "nestcache.test_id"] = "\(testID)"
        logger[metadataKey: "nestcache.vm"] = "shadowed-by-the-call"

        let thrashLine = #line + 1
        logger.warning("web0: hit ratio 0.42 below 0.5", metadata: [
            "nestcache.event": "thrash", "nestcache.vm": "web0", "nestcache.vcpu": "3",
            "nestcache.policy": "per-vm-table:8", "nestcache.hit_ratio": "\(0.42)",
        ])
        logger.info("summary\nsecond line", metadata: ["nestcache.event": "summary"])
        logger.debug("debug detail")
        logger.trace("below the level: never sent")

        let entries = try await JournaldFixture.entries(matching: "NESTCACHE_TEST_ID=\(testID)", atLeast: 3)
        try #require(entries.count == 3, "entries: \(entries)")

        let thrash = entries[0]
        #expect(thrash["MESSAGE"] == "web0: hit ratio 0.42 below 0.5")
        #expect(thrash["SYSLOG_IDENTIFIER"] == "nestcached")
        #expect(thrash["PRIORITY"] == "4")
        #expect(thrash["NESTCACHE_EVENT"] == "thrash")
        #expect(thrash["NESTCACHE_VM"] == "web0")
        #expect(thrash["NESTCACHE_VCPU"] == "3")
        #expect(thrash["NESTCACHE_POLICY"] == "per-vm-table:8")
        #expect(thrash["NESTCACHE_HIT_RATIO"] == "0.42")
        #expect(thrash["NESTCACHE_TEST_ID"] == testID)
        let codeFile = thrash["CODE_FILE"] ?? "-"
        #expect(codeFile.hasSuffix("JournaldLogHandlerTests.swift"), "\(codeFile)")
        #expect(thrash["CODE_LINE"] == "\(thrashLine)")
        #expect(thrash["CODE_FUNC"] == "recordsReachJournaldWithTheirFields()")
        #expect(thrash["_PID"] == "\(getpid())")
        #expect(thrash["_TRANSPORT"] == "journal")

        let summary = entries[1]
        #expect(summary["MESSAGE"] == "summary\nsecond line")  // sd_journal_sendv's binary framing
        #expect(summary["PRIORITY"] == "6")
        #expect(summary["NESTCACHE_EVENT"] == "summary")
        #expect(summary["NESTCACHE_VM"] == "shadowed-by-the-call")

        let debug = entries[2]
        #expect(debug["MESSAGE"] == "debug detail")
        #expect(debug["PRIORITY"] == "7")
        #expect(debug["NESTCACHE_EVENT"] == nil)
    }

    @Test(.enabled(if: JournaldFixture.isAvailable, "needs a journald: \(JournaldFixture.unavailableReason ?? "")"))
    func identifierIsConfigurable() async throws {
        _ = try await JournaldFixture.ensureRunning()
        let identifier = "nestcached-test-\(UUID().uuidString.prefix(8).lowercased())"
        let logger = Logger(label: "nestcache.test") { _ in
            JournaldLogHandler(identifier: identifier, destination: .journal)
        }
        logger.critical("queue stalled", metadata: ["nestcache.vcpu": .stringConvertible(7)])

        let entries = try await JournaldFixture.entries(matching: "SYSLOG_IDENTIFIER=\(identifier)")
        try #require(entries.count == 1, "entries: \(entries)")
        #expect(entries[0]["MESSAGE"] == "queue stalled")
        #expect(entries[0]["PRIORITY"] == "2")
        #expect(entries[0]["NESTCACHE_VCPU"] == "7")
    }
}

/// What the throwing init threw, or nil when it made a handler.
private func journaldInitError() -> JournaldError? {
    do {
        _ = try JournaldLogHandler()
        return nil
    } catch {
        return error
    }
}
