import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `GET /metrics` over HTTP/1.1 for a Prometheus server to scrape (DESIGN §7, `[daemon]
/// metrics_listen`): the text of `show metrics`, on SwiftNIO's HTTP/1 codec.
///
/// Answers: 200 with `text/plain; version=0.0.4; charset=utf-8` for `GET` (and `HEAD`) of
/// `/metrics` (a query string is ignored); 404 for another path; 405 (`Allow: GET, HEAD`) for
/// another method; 400 for what the decoder cannot parse; 431 for a request head over
/// `maxHeadBytes`; 503 to a connection past `maxConnections`. Connections idle for
/// `idle_timeout_s` are closed, as on the control socket. A request with a body, or another
/// method, is answered and the connection closed, so no body is ever read.
final class MetricsServer: Sendable {
    static let maxConnections = 16
    static let maxHeadBytes = 8192
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    let daemon: Daemon
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel = Locked<(any Channel)?>(nil)
    let connections = ConnectionCount()

    init(daemon: Daemon) {
        self.daemon = daemon
    }

    /// Binds `listen`; returns the address bound (its port, when 0 was asked for).
    func start(_ listen: MetricsListen) async throws -> String {
        let ch = try await makeBootstrap().bind(host: listen.host, port: listen.port).get()
        channel.withLock { $0 = ch }
        let port = ch.localAddress?.port ?? listen.port
        return MetricsListen(host: listen.host, port: port).description
    }

    func makeBootstrap() -> ServerBootstrap {
        let daemon = daemon
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 << 10, high: 256 << 10))
            .childChannelInitializer { [self] ch in
                ch.eventLoop.makeCompletedFuture {
                    let idle = daemon.config.daemon.idleTimeoutS
                    let ops = ch.pipeline.syncOperations
                    try ops.addHandler(IdleStateHandler(allTimeout: .milliseconds(Int64(idle * 1000))))
                    try ops.addHandler(RequestHeadLimiter(limit: Self.maxHeadBytes))
                    try ops.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try ops.addHandler(HTTPResponseEncoder())
                    try ops.addHandler(MetricsHTTPHandler(server: self))
                }
            }
    }

    func stop() async {
        let ch = channel.withLock { $0 }
        try? await ch?.close()
        try? await group.shutdownGracefully()
    }

    /// The body of a 200: what `show metrics` answers, shared with every other reader.
    func metricsBody() -> ByteBuffer { daemon.metricsBuffer() }
}

/// Sent up the pipeline by `RequestHeadLimiter` when a request head grows past the limit.
struct RequestHeadTooLarge {}

/// Counts the bytes of each request head before the HTTP decoder sees them, so a client cannot
/// make the decoder hold a head of any size (llhttp's own cap is 80 KiB). A head ends at an
/// empty line (`\r\n\r\n`, or a bare `\n\n`); the bytes after it start the next head (a request
/// with a body is answered and its connection closed, so bodies never count). Past `limit`, the
/// complete requests before the offending head are passed on, then `RequestHeadTooLarge` is
/// fired and nothing more is read.
final class RequestHeadLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let limit: Int
    /// Bytes of the current head so far.
    var headBytes = 0
    /// Progress through the terminator: 0 none, 1 after `\n`, 2 after `\n\r`.
    var state = 0
    var isTripped = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isTripped else { return }
        var buffer = unwrapInboundIn(data)
        // Index in `buffer` just past the last complete head; -1: none in this read.
        var lastEnd = -1
        let tripped: Bool = buffer.withUnsafeReadableBytes { bytes in
            for (i, c) in bytes.enumerated() {
                headBytes += 1
                if c == UInt8(ascii: "\n") {
                    if state == 0 {
                        state = 1
                    } else {
                        state = 0
                        headBytes = 0
                        lastEnd = i + 1
                    }
                } else if c == UInt8(ascii: "\r") {
                    if state == 1 { state = 2 }  // else the \r of a line's \r\n
                } else {
                    state = 0
                }
                if headBytes > limit { return true }
            }
            return false
        }
        guard tripped else {
            context.fireChannelRead(wrapInboundOut(buffer))
            return
        }
        isTripped = true
        if lastEnd > 0, let complete = buffer.readSlice(length: lastEnd) {
            context.fireChannelRead(wrapInboundOut(complete))
        }
        context.fireUserInboundEventTriggered(RequestHeadTooLarge())
    }
}

/// One HTTP connection: answers each request head as it comes (in order), then closes when the
/// request asked for it, had a body or was not a GET/HEAD.
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: MetricsServer
    var slot = ConnectionCount.Slot()
    var isClosing = false

    init(server: MetricsServer) {
        self.server = server
    }

    func channelActive(context: ChannelHandlerContext) {
        if slot.enter(server.connections) > MetricsServer.maxConnections {
            respond(context, .serviceUnavailable, "too many connections (at most \(MetricsServer.maxConnections))\n",
                    keepAlive: false)
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosing = true
        slot.leave()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing, case .head(let head) = unwrapInboundIn(data) else { return }
        let hasBody = head.headers.contains(name: "transfer-encoding")
            || head.headers["content-length"].contains { Int($0.filter { $0 != " " }) != 0 }
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        switch head.method {
        case .GET, .HEAD:
            let keepAlive = head.isKeepAlive && !hasBody
            if path == "/metrics" {
                respond(context, .ok, server.metricsBody(), contentType: MetricsServer.contentType,
                        keepAlive: keepAlive, headOnly: head.method == .HEAD)
            } else {
                respond(context, .notFound, "not found: only /metrics is served\n", keepAlive: keepAlive,
                        headOnly: head.method == .HEAD)
            }
        default:
            respond(context, .methodNotAllowed, "method not allowed: GET /metrics\n", keepAlive: false,
                    extraHeaders: [("Allow", "GET, HEAD")])
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        if event is RequestHeadTooLarge {
            guard !isClosing else { return }
            respond(context, .requestHeaderFieldsTooLarge, "request head over \(MetricsServer.maxHeadBytes) bytes\n", keepAlive: false)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError, !isClosing {
            respond(context, .badRequest, "bad request\n", keepAlive: false)
            return
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A client that does not read its answers is not read from: no answers pile up.
        context.channel.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String,
                 contentType: String = "text/plain; charset=utf-8", keepAlive: Bool, headOnly: Bool = false,
                 extraHeaders: [(String, String)] = []) {
        respond(context, status, ByteBuffer(string: body), contentType: contentType, keepAlive: keepAlive,
                headOnly: headOnly, extraHeaders: extraHeaders)
    }

    func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: ByteBuffer,
                 contentType: String = "text/plain; charset=utf-8", keepAlive: Bool, headOnly: Bool = false,
                 extraHeaders: [(String, String)] = []) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !headOnly {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            isClosing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
