import NestCacheCore
import NestCacheSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes the native format of DESIGN §5.
///
/// Output goes to `PATH.tmp-PID` and is renamed over `PATH` only when everything was written,
/// so a reader never sees half a trace and a failed run leaves nothing behind. `-` writes to
/// standard output directly, and so is an existing `PATH` that is not a regular file (a FIFO,
/// `/dev/null`, `/dev/full`, a terminal) written in place: renaming over it would replace the
/// device node or the FIFO with a regular file. Each VM's `# vm` line is written just before its first event (or
/// at the end, for VMs that had none), with whatever its registry entry declares.
public struct NativeTraceWriter: ~Copyable {
    let path: String
    let fd: Int32
    var buffer: [UInt8] = []
    var declared: [Bool] = []
    static let flushAt = 1 << 16

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
        buffer.reserveCapacity(Self.flushAt + 256)
        buffer.append(contentsOf: (NativeTraceReader.magic + "\n").utf8)
    }

    /// Opens `path`, runs `body`, and publishes the file only if `body` and the writes succeed.
    public static func write(to path: String, _ body: (inout NativeTraceWriter) throws(TraceError) -> Void) throws(TraceError) {
        if path == "-" {
            var w = NativeTraceWriter(path: path, fd: 1)
            try body(&w)
            try w.flush()
            return
        }
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & S_IFMT != S_IFREG, st.st_mode & S_IFMT != S_IFDIR {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw TraceError(.io, file: path, "cannot open: \(Syscall.describe(errno))") }
            defer { close(fd) }
            var w = NativeTraceWriter(path: path, fd: fd)
            try body(&w)
            try w.flush()
            return
        }
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TraceError(.io, file: path, "cannot create \(tmp): \(Syscall.describe(errno))") }
        var w = NativeTraceWriter(path: path, fd: fd)
        do throws(TraceError) {
            try body(&w)
            try w.flush()
            guard fsync(fd) == 0 else { throw TraceError(.io, file: path, "fsync: \(Syscall.describe(errno))") }
            close(fd)
            guard rename(tmp, path) == 0 else { throw TraceError(.io, file: path, "rename: \(Syscall.describe(errno))") }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
    }

    /// Writes events, declaring each VM before its first one.
    public mutating func write(_ events: [Event], registry: VMRegistry) throws(TraceError) {
        for e in events {
            let vm = Int(e.vm)
            if vm >= declared.count || !declared[vm] { declare(vm, registry) }
            appendDecimal(e.timeNs)
            buffer.append(0x20)
            buffer.append(contentsOf: registry[e.vm].id.utf8)
            buffer.append(0x20)
            appendDecimal(UInt64(e.vcpu))
            buffer.append(0x20)
            buffer.append(contentsOf: e.op.description.utf8)
            buffer.append(contentsOf: " 0x".utf8)
            appendHex(e.gpa.raw)
            buffer.append(0x0A)
            if buffer.count >= Self.flushAt { try flush() }
        }
    }

    /// Declares the VMs that had no event, so their declarations survive a round trip.
    public mutating func finish(registry: VMRegistry) throws(TraceError) {
        for vm in 0..<registry.count where vm >= declared.count || !declared[vm] { declare(vm, registry) }
        try flush()
    }

    mutating func declare(_ vm: Int, _ registry: VMRegistry) {
        if vm >= declared.count { declared += repeatElement(false, count: vm + 1 - declared.count) }
        declared[vm] = true
        let info = registry.infos[vm]
        var line = "# vm \(info.id)"
        if let m = info.l1VCPUs { line += " l1_vcpus=\(m)" }
        if let m = info.memoryMiB { line += " memory_mib=\(m)" }
        if let p = info.pagesPerContext { line += " pages_per_context=\(p)" }
        buffer.append(contentsOf: (line + "\n").utf8)
    }

    mutating func appendDecimal(_ value: UInt64) {
        if value == 0 { buffer.append(0x30); return }
        let start = buffer.count
        var v = value
        while v > 0 {
            buffer.append(UInt8(truncatingIfNeeded: v % 10) &+ 0x30)
            v /= 10
        }
        buffer[start...].reverse()
    }

    mutating func appendHex(_ value: UInt64) {
        if value == 0 { buffer.append(0x30); return }
        var shift = (63 - value.leadingZeroBitCount) / 4 * 4
        while shift >= 0 {
            let d = UInt8(truncatingIfNeeded: (value >> UInt64(shift)) & 0xf)
            buffer.append(d < 10 ? d &+ 0x30 : d &+ 0x57)
            shift -= 4
        }
    }

    mutating func flush() throws(TraceError) {
        let err = buffer.withUnsafeBytes { Syscall.writeAll(fd, $0) }
        guard err == 0 else { throw TraceError(.io, file: path, "write: \(Syscall.describe(err))") }
        buffer.removeAll(keepingCapacity: true)
    }
}
