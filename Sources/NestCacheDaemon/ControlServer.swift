#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import NIOCore
import NIOPosix
import NestCacheControl
import NestCacheSystem
import Synchronization

/// The control socket (DESIGN §8) on SwiftNIO: one event-loop thread moves bytes; requests are
/// framed by `LineFramer`, parsed by `ControlRequest`, answered by `Daemon.respond`.
///
/// Limits: `max_clients` connections (one more gets `error: busy` and is closed), idle
/// connections closed after `idle_timeout_s`, 4096-byte lines. A client that does not read its
/// answers stops being read from (no new answers pile up) and can never stall the engine: answers
/// are built from snapshots taken under each VM's lock, and the vCPU queues never wait on a socket.
final class ControlServer: Sendable, CustomStringConvertible {
    let daemon: Daemon
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel = Locked<(any Channel)?>(nil)
    let clients = ConnectionCount()
    let boundPath = Locked<String>("")

    init(daemon: Daemon) {
        self.daemon = daemon
    }

    var description: String { boundPath.withLock { $0 } }

    /// Binds the socket systemd passed (socket activation) or the configured path.
    func start() async throws {
        let bootstrap = makeBootstrap()
        let fds = try SocketActivation.listenFDs()
        let ch: any Channel
        if let fd = fds.first {
            ch = try await bootstrap.withBoundSocket(fd).get()
            boundPath.withLock { $0 = "socket-activated fd \(fd)" }
        } else {
            let path = daemon.socketPath
            try prepareSocketPath(path)
            ch = try bind(path)
            watchSocketFile()
        }
        channel.withLock { $0 = ch }
    }

    func makeBootstrap() -> ServerBootstrap {
        let daemon = daemon
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.autoRead, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 << 10, high: 256 << 10))
            .childChannelInitializer { [self] ch in
                ch.eventLoop.makeCompletedFuture {
                    // Read per connection, so a reload's idle_timeout_s applies to new clients.
                    let idle = daemon.config.daemon.idleTimeoutS
                    try ch.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .milliseconds(Int64(idle * 1000))))
                    try ch.pipeline.syncOperations.addHandler(ControlHandler(server: self))
                }
            }
    }

    /// Binds `path` with the configured mode already set when a client can first reach it: bound
    /// under a temporary name beside it, chmod-ed, then renamed into place (a chmod after the
    /// bind left a window in which the socket was reachable with the umask's mode). Blocks until
    /// bound: called at start and from the socket-file check, never on the event loop.
    func bind(_ path: String) throws -> any Channel {
        let temporary = "\(path).\(getpid())~"
        guard temporary.utf8.count <= UnixSocketAddress.maxPathLength else {
            // No room in sun_path for a temporary name: bind in place, chmod at once.
            let ch = try makeBootstrap().bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
            try finishBinding(path, from: nil)
            return ch
        }
        let ch = try makeBootstrap().bind(unixDomainSocketPath: temporary, cleanupExistingSocketFile: true).wait()
        do {
            try finishBinding(path, from: temporary)
        } catch {
            unlink(temporary)
            ch.close(promise: nil)
            throw error
        }
        return ch
    }

    /// Sets the socket's mode, moves it to `path` (from `temporary`), and remembers which file
    /// it is.
    func finishBinding(_ path: String, from temporary: String?) throws {
        let bound = temporary ?? path
        guard chmod(bound, mode_t(daemon.config.daemon.socketMode)) == 0 else {
            throw ServerError("chmod \(bound): \(Syscall.describe(errno))")
        }
        if let temporary, rename(temporary, path) != 0 {
            throw ServerError("rename \(temporary) to \(path): \(Syscall.describe(errno))")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { throw ServerError("stat \(path): \(Syscall.describe(errno))") }
        boundPath.withLock { $0 = path }
        boundFile.withLock { $0 = FileID(st) }
    }

    // MARK: The socket file removed or replaced under a running daemon

    /// Which file the bound socket is, to notice it removed or replaced.
    struct FileID: Equatable, Sendable {
        var dev: UInt64, ino: UInt64
        init(_ st: stat) { dev = UInt64(st.st_dev); ino = UInt64(st.st_ino) }
    }

    let boundFile = Locked<FileID?>(nil)
    /// The last problem logged about the socket file, so each is logged once, not every check.
    let socketFileProblem = Locked<String?>(nil)
    let watchTimers = Locked(Daemon.Timers())

    /// Checks the socket file every 5 s (on the daemon's timer queue). systemd-tmpfiles' age
    /// cleaning or an operator's `rm` can remove it while the daemon runs; then no new client
    /// could connect, silently. docs/DESIGN-NOTES.md has the behaviour.
    func watchSocketFile() {
        let t = DispatchSource.makeTimerSource(queue: daemon.signalQueue)
        t.schedule(deadline: .now() + 5, repeating: 5, leeway: .milliseconds(100))
        t.setEventHandler { [self] in checkSocketFile() }
        t.resume()
        watchTimers.withLock { $0.list.append(t) }
    }

    /// Missing, or a socket nobody serves: bind again (open connections go on). A file that is not
    /// a socket, or a socket another process serves: left alone, with an error logged once.
    func checkSocketFile() {
        let path = boundPath.withLock { $0 }
        guard path.hasPrefix("/") else { return }
        var st = stat()
        let exists = lstat(path, &st) == 0
        if exists, FileID(st) == boundFile.withLock({ $0 }) {
            socketFileProblem.withLock { $0 = nil }
            return
        }
        let problem: String
        if exists, (st.st_mode & S_IFMT) != S_IFSOCK {
            problem = "was replaced by a file that is not a socket; leaving it alone"
        } else if exists, canConnect(path) {
            problem = "is served by another process now; leaving it alone"
        } else {
            do {
                // The orphaned listener first: NIO removes the socket file at the path it bound
                // when it closes (cleanupOnClose); with the rename that name is gone, but close
                // it before binding anyway, in case it was bound in place.
                try channel.withLock { $0 }?.close().wait()
                let ch = try bind(path)
                channel.withLock { $0 = ch }
                socketFileProblem.withLock { $0 = nil }
                daemon.logger.warning("control socket \(path) was \(exists ? "replaced by a dead socket" : "removed"): bound it again; open connections go on",
                                      metadata: ["nestcache.event": "startup"])
                return
            } catch {
                problem = "was removed and cannot be bound again: \(error)"
            }
        }
        let isNew = socketFileProblem.withLock { last in defer { last = problem }; return last != problem }
        if isNew {
            daemon.logger.error("control socket \(path) \(problem); new clients cannot connect, open connections go on",
                                metadata: ["nestcache.event": "startup"])
        }
    }

    /// Creates the socket's directory; refuses to take over a socket another process serves.
    func prepareSocketPath(_ path: String) throws {
        guard path.utf8.count < 108 else { throw ServerError("socket path longer than 107 bytes: \(path)") }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]))
        }
        if access(path, F_OK) == 0, canConnect(path) {
            throw ServerError("\(path) is served by another process (is nestcached already running?)")
        }
    }

    func stop() async {
        watchTimers.withLock { $0.cancelAll() }
        let ch = channel.withLock { $0 }
        try? await ch?.close()
        let path = boundPath.withLock { $0 }
        if path.hasPrefix("/") { unlink(path) }
        try? await group.shutdownGracefully()
    }

    var maxClients: Int { daemon.config.daemon.maxClients }
}

struct ServerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func makeDirectories(_ path: String) throws {
    var current = ""
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o755) != 0, errno != EEXIST {
            throw ServerError("mkdir \(current): \(Syscall.describe(errno))")
        }
    }
}

/// Whether something accepts connections on the Unix socket at `path`.
func canConnect(_ path: String) -> Bool {
    let fd = UnixSocketAddress.connect(path, type: Int32(SOCK_STREAM.rawValue))
    guard fd >= 0 else { return false }
    close(fd)
    return true
}

/// One connection: frames lines, answers each request in order, enforces the limits.
final class ControlHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ControlServer
    var framer = LineFramer()
    var peerUID: UInt32?
    var slot = ConnectionCount.Slot()
    var isClosing = false

    init(server: ControlServer) {
        self.server = server
    }

    func channelActive(context: ChannelHandlerContext) {
        if slot.enter(server.clients) > server.maxClients {
            send(context, ControlAnswers.error(ControlError(.busy, "too many clients (max_clients \(server.maxClients))"), json: false), close: true)
            return
        }
        // SO_PEERCRED, read from the descriptor; on the channel's loop this completes at once,
        // before any request is read.
        if let provider = context.channel as? any SocketOptionProvider {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            future.whenSuccess { bound.value.peerUID = $0.uid }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The peer is gone: what it queued is never answered.
        isClosing = true
        pending.removeAll()
        pendingHead = 0
        slot.leave()
        context.fireChannelInactive()
    }

    /// Requests framed but not yet answered: answering waits while the client does not read.
    var pending: [LineFramer.Item] = []
    var pendingHead = 0
    /// A client this far behind is cut off: it is flooding, not reading. Reading stops as soon as
    /// answers wait, so this is reached only by one enormous read (about 1 MiB of short requests).
    static let maxPending = 65536

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing else { return }
        let buffer = unwrapInboundIn(data)
        pending += buffer.withUnsafeReadableBytes { framer.feed($0) }
        answerPending(context)
    }

    /// Answers queued requests in order while the client takes the answers. A client that does
    /// not read is not read from (no new requests pile up); one that queued more than
    /// `maxPending` requests anyway is closed. Nothing here waits on the engines.
    func answerPending(_ context: ChannelHandlerContext) {
        // `send` can re-enter through channelInactive (a write to a peer that left), which empties
        // `pending`: index, never hold on to a count across it.
        while pendingHead < pending.count, !isClosing, !isComputing, context.channel.isWritable {
            let item = pending[pendingHead]
            pendingHead += 1
            switch item {
            case .tooLong:
                send(context, ControlAnswers.error(ControlError(.lineTooLong, "request longer than \(ControlRequest.maxLineLength) bytes"), json: false), close: false)
            case .line(let bytes):
                switch server.daemon.answer(toLine: bytes, peerUID: peerUID) {
                case .text(let text, let close): send(context, text, close: close)
                case .metrics(let buffer):
                    context.write(wrapOutboundOut(buffer), promise: nil)
                    send(context, "\n", close: false)
                case .deferred(let work):
                    compute(context, work)
                }
            }
        }
        if isClosing || pendingHead >= pending.count {
            pending.removeAll(keepingCapacity: !isClosing)
            pendingHead = 0
        } else if pendingHead >= 4096 {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        if pending.count - pendingHead > Self.maxPending {
            isClosing = true
            pending.removeAll()
            pendingHead = 0
            context.close(promise: nil)
            return
        }
        let wantsMore = pendingHead == pending.count && context.channel.isWritable && !isClosing && !isComputing
        context.channel.setOption(.autoRead, value: wantsMore).whenFailure { _ in }
    }

    /// True while a deferred answer is computed: the requests after it wait, so answers keep
    /// their order, and nothing more is read meanwhile.
    var isComputing = false
    /// Where deferred answers (`show bounds`) are computed: one at a time for the whole daemon,
    /// at utility priority, never on an event loop.
    static let computeQueue = DispatchQueue(label: "nestcache.control.compute", qos: .utility)

    /// Runs `work` on `computeQueue` and sends its answer from the loop, then goes on with the
    /// requests queued behind it. An answer for a peer that left meanwhile is dropped.
    func compute(_ context: ChannelHandlerContext, _ work: @escaping @Sendable () -> String) {
        isComputing = true
        let promise = context.eventLoop.makePromise(of: String.self)
        Self.computeQueue.async { promise.succeed(work()) }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { text in
            let (handler, context) = bound.value
            handler.isComputing = false
            guard !handler.isClosing else { return }
            handler.send(context, text, close: false)
            handler.answerPending(context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        answerPending(context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func send(_ context: ChannelHandlerContext, _ text: String, close: Bool) {
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        if close {
            isClosing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }
}

/// `struct ucred` of socket(7), which Glibc's Swift overlay does not export (it needs _GNU_SOURCE).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
