import NestCacheCore
import NestCacheSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The VM id `nestcache record` gives a tgid: QEMU's guest name from its command line
/// (DESIGN §11), read from `PROC/TGID/cmdline`.
///
/// QEMU takes `-name guest=NAME[,debug-threads=on][,process=P]` (what libvirt passes) or
/// `-name NAME[,...]` (`guest` is the implied first key), also spelled `--name`. In QEMU's option
/// syntax `,,` is a literal comma. The name is made a valid VM id (DESIGN §1,
/// `[A-Za-z0-9_.:-]{1,64}`): every other byte becomes `_` and it is cut to 64 bytes.
public struct QEMUName: Sendable {
    /// Where `TGID/cmdline` is read: `/proc`, or a directory laid out like it (tests).
    public let proc: String

    public init(proc: String = "/proc") { self.proc = proc }

    /// The largest command line read; QEMU's are a few KiB.
    static let maxCmdline = 1 << 20

    /// The sanitised guest name of process `tgid`, or nil: no such process (it may have exited),
    /// no `-name`, or an empty name.
    public func vmID(tgid: Int32) -> String? {
        guard tgid > 0, let cmdline = Self.readFile("\(proc)/\(tgid)/cmdline", limit: Self.maxCmdline) else { return nil }
        return Self.guestName(cmdline: cmdline).flatMap(Self.sanitised)
    }

    /// The guest name in a NUL-separated command line (`/proc/PID/cmdline`), as QEMU reads it, or
    /// nil. The last `-name` wins, as in QEMU.
    public static func guestName(cmdline: [UInt8]) -> [UInt8]? {
        let args = cmdline.split(separator: 0, omittingEmptySubsequences: false)
        var name: [UInt8]?
        var i = 0
        while i < args.count {
            if args[i].elementsEqual("-name".utf8) || args[i].elementsEqual("--name".utf8), i + 1 < args.count {
                name = guestName(option: Array(args[i + 1]))
                i += 2
            } else {
                i += 1
            }
        }
        return name
    }

    /// `guest=NAME,...` or `NAME,...` (QemuOpts with implied key `guest`; `,,` is a comma).
    static func guestName(option: [UInt8]) -> [UInt8]? {
        var params: [[UInt8]] = [[]]
        var i = 0
        while i < option.count {
            let c = option[i]
            if c == UInt8(ascii: ",") {
                if i + 1 < option.count, option[i + 1] == UInt8(ascii: ",") {
                    params[params.count - 1].append(c)
                    i += 2
                    continue
                }
                params.append([])
            } else {
                params[params.count - 1].append(c)
            }
            i += 1
        }
        var name: [UInt8]?
        for (n, p) in params.enumerated() {
            if let eq = p.firstIndex(of: UInt8(ascii: "=")) {
                if p[..<eq].elementsEqual("guest".utf8) { name = Array(p[(eq + 1)...]) }
            } else if n == 0 {
                name = p
            }
        }
        return name
    }

    /// `name` as a VM id: bytes outside `[A-Za-z0-9_.:-]` become `_`, cut to 64 bytes; nil when
    /// empty.
    public static func sanitised(_ name: [UInt8]) -> String? {
        guard !name.isEmpty else { return nil }
        let bytes = name.prefix(64).map { VMInfo.isIDByte($0) ? $0 : UInt8(ascii: "_") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first `limit` bytes of a file, or nil when it cannot be opened or read.
    static func readFile(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { Syscall.read(fd, into: $0) }
            if n < 0 { return nil }
            if n == 0 { break }
            out += chunk[..<n]
        }
        return Array(out.prefix(limit))
    }
}
