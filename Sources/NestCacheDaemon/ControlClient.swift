#if canImport(Glibc)
import Glibc
#endif
import NestCacheWorkload

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

    /// The socket `nestcache` talks to: `$NESTCACHE_SOCKET`, else DESIGN §8's default for this user.
    public static func defaultPath() -> String {
        let env = environment()
        if let s = env["NESTCACHE_SOCKET"], !s.isEmpty { return s }
        return DaemonConfig().socketPath(uid: getuid(), environment: env)
    }

    /// Sends one request line and returns the answer without its closing newlines.
    public func request(_ line: String) throws(Failure) -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw Failure(description: "\(path): path too long for a Unix socket") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            throw Failure(description: "cannot connect to \(path): \(String(cString: strerror(errno))) (is nestcached running? --socket or NESTCACHE_SOCKET name another)")
        }
        var out = line + "\n"
        let err = out.withUTF8 { Syscall.writeAll(fd, UnsafeRawBufferPointer($0)) }
        guard err == 0 else { throw Failure(description: "write: \(String(cString: strerror(err)))") }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !(answer.count >= 2 && answer[answer.count - 1] == 0x0A && answer[answer.count - 2] == 0x0A) {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                if n < 0 { throw Failure(description: "read: \(String(cString: strerror(errno)))") }
                break
            }
            answer += chunk[..<n]
        }
        while answer.last == 0x0A { answer.removeLast() }
        return String(decoding: answer, as: UTF8.self)
    }
}
