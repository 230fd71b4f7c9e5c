import Foundation

/// A bound Unix datagram socket at a path, for a test to receive on (a stand-in journal socket,
/// systemd's `NOTIFY_SOCKET`); unlinks the path on close. Used from one test at a time.
final class DatagramSocket {
    struct Failure: Error { let path: String }

    let fd: Int32
    let path: String

    init(boundTo path: String) throws {
        guard let fd = makeUnixSocket(type: Int32(SOCK_DGRAM.rawValue), boundTo: path, listening: false) else {
            throw Failure(path: path)
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

/// A Unix socket of `type` bound to `path`, listening when asked; the caller closes it and unlinks
/// `path`. nil when a call fails (the test then fails on its `#require`).
func makeUnixSocket(type: Int32, boundTo path: String, listening: Bool) -> Int32? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, !listening || listen(fd, 4) == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// A short socket path in the temporary directory (sun_path holds 107 bytes).
func temporarySocketPath(_ tag: String) -> String {
    "/tmp/nc-\(tag)-\(UUID().uuidString.prefix(8).lowercased()).sock"
}
