#if canImport(Glibc)
import Glibc
#endif
import NestCacheSystem

/// Where the control socket is (DESIGN §8), for the daemon and its clients alike.
public enum ControlSocket {
    /// DESIGN §8's default for a user: `/run/nestcache/nestcached.sock` as root, else
    /// `$XDG_RUNTIME_DIR/nestcache/nestcached.sock` when that is set.
    public static func defaultPath(uid: UInt32, environment: [String: String]) -> String {
        if uid != 0, let xdg = environment["XDG_RUNTIME_DIR"], !xdg.isEmpty { return xdg + "/nestcache/nestcached.sock" }
        return "/run/nestcache/nestcached.sock"
    }

    /// The socket `nestcache` talks to: `$NESTCACHE_SOCKET`, else the default for this user.
    public static func clientPath() -> String {
        let env = processEnvironment()
        if let s = env["NESTCACHE_SOCKET"], !s.isEmpty { return s }
        return defaultPath(uid: getuid(), environment: env)
    }
}

/// A blocking client of the control socket, for `nestcache show ...` and scripts' tests.
public struct ControlClient: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    public var timeoutSeconds: Int = 10

    public init(path: String) {
        self.path = path
    }

    /// Sends one request and returns the answer without its closing newlines.
    public func request(_ request: ControlRequest) throws(Failure) -> String {
        let fd = UnixSocketAddress.connect(path, type: Int32(SOCK_STREAM.rawValue))
        guard fd >= 0 else {
            throw Failure(description: "cannot connect to \(path): \(Syscall.describe(-fd)) (is nestcached running? --socket or NESTCACHE_SOCKET name another)")
        }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let err = Syscall.writeAll(fd, request.line + "\n")
        guard err == 0 else { throw Failure(description: "write: \(Syscall.describe(err))") }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !(answer.count >= 2 && answer[answer.count - 1] == 0x0A && answer[answer.count - 2] == 0x0A) {
            let n = chunk.withUnsafeMutableBytes { Syscall.read(fd, into: $0) }
            guard n > 0 else {
                if n < 0 { throw Failure(description: "read: \(Syscall.describe(Int32(-n)))") }
                break
            }
            answer += chunk[..<n]
        }
        while answer.last == 0x0A { answer.removeLast() }
        return String(decoding: answer, as: UTF8.self)
    }
}
