import Foundation

/// A bound Unix datagram socket at a path, for a test to receive on (a stand-in journal socket,
/// systemd's `NOTIFY_SOCKET`); unlinks the path on close. Used from one test at a time.
final class DatagramSocket {
    enum Failure: Error { case socket(errno: Int32), pathTooLong(String), bind(errno: Int32) }

    let fd: Int32
    let path: String

    init(boundTo path: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure.pathTooLong(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure.socket(errno: errno) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            throw Failure.bind(errno: error)
        }
        self.fd = fd
        self.path = path
    }

    /// The next queued datagram, or nil when none is queued (never blocks: `sd_notify` has already
    /// sent when it returns).
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    private var isClosed = false

    /// Closes the socket and removes its path; idempotent (tests call it from `defer`).
    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
        unlink(path)
    }

    deinit { close() }
}
