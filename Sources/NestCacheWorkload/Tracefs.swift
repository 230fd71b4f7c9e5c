import NestCacheSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where `nestcache record` captures (DESIGN §11): a tracefs mount, the buffer in it, and the KVM
/// events of DESIGN §5 it has. Found and checked without changing anything, so every
/// "unavailable" answer (exit 69) leaves the system as it was.
///
///     ROOT/                              /sys/kernel/tracing (or /sys/kernel/debug/tracing)
///       trace_pipe  tracing_on  options/record-tgid  events/kvm/EVENT/enable
///       instances/NAME/                  an instance: the same files, its own ring buffer
///
/// Recording in an instance (the default: `instances/nestcache-PID`, created and removed) leaves
/// the top-level buffer, its events and its readers alone: `trace_pipe` reads are consuming, so
/// recording in the top level would take events from anyone else reading it.
public struct TracefsTarget: Sendable, Equatable {
    public enum Buffer: Sendable, Equatable {
        /// ROOT itself: the global buffer.
        case topLevel
        /// `ROOT/instances/NAME`, used if it exists, else created (and removed at the end).
        case instance(String)
    }

    /// The tracefs mount.
    public let root: String
    public let buffer: Buffer
    /// The events of `eventNames` that this kernel has, in that order.
    public let events: [String]

    /// Tried in order when no directory is given.
    public static let defaultRoots = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]

    /// The events DESIGN §5 reads: the nested entries (`kvm_nested_vmrun` is the name before
    /// Linux 5.8 and SVM's on some kernels) and the three that give an entry's vCPU.
    public static let eventNames = ["kvm_nested_vmenter", "kvm_nested_vmrun", "kvm_exit", "kvm_entry", "kvm_nested_vmexit"]
    static let entryEvents: Set = ["kvm_nested_vmenter", "kvm_nested_vmrun"]

    /// The directory whose `trace_pipe`, `tracing_on`, `options/` and `events/` are used.
    public var directory: String {
        switch buffer {
        case .topLevel: root
        case .instance(let name): "\(root)/instances/\(name)"
        }
    }

    /// Finds the tracefs mount (`tracefs`, or the first of `defaultRoots` that is mounted) and
    /// checks that it has the KVM events and `options/record-tgid`, and `instances/` when
    /// `buffer` is an instance. Throws `.unavailable` (exit 69) naming what to mount or load, or
    /// that root is needed; `.usage` for an instance name that is not a plain directory name.
    public static func find(tracefs: String?, buffer: Buffer) throws(TraceError) -> TracefsTarget {
        if case .instance(let name) = buffer {
            guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
                throw TraceError(.usage, file: "", "invalid instance name '\(name)': a directory name under instances/ is expected")
            }
        }
        let root = try findRoot(tracefs)
        let kvm = "\(root)/events/kvm"
        guard try TracefsFile.exists(kvm) else {
            throw TraceError(.unavailable, file: kvm, "missing: KVM's trace events are not there; load KVM (modprobe kvm_intel, or modprobe kvm_amd)")
        }
        var events: [String] = []
        for name in eventNames where try TracefsFile.exists("\(kvm)/\(name)/enable") { events.append(name) }
        guard events.contains(where: entryEvents.contains) else {
            throw TraceError(.unavailable, file: kvm, "no kvm_nested_vmenter or kvm_nested_vmrun event: this kernel's KVM does not trace nested entries")
        }
        guard try TracefsFile.exists("\(root)/options/record-tgid") else {
            throw TraceError(.unavailable, file: "\(root)/options/record-tgid", "missing: the tgid column needs Linux 4.13 or later")
        }
        if case .instance = buffer, !(try TracefsFile.exists("\(root)/instances")) {
            throw TraceError(.unavailable, file: "\(root)/instances", "missing: this tracefs has no instances; record in the top-level buffer with --no-instance")
        }
        return TracefsTarget(root: root, buffer: buffer, events: events)
    }

    static func findRoot(_ explicit: String?) throws(TraceError) -> String {
        if let explicit {
            let root = explicit.count > 1 && explicit.hasSuffix("/") ? String(explicit.dropLast()) : explicit
            guard try TracefsFile.exists("\(root)/trace_pipe") else {
                throw TraceError(.unavailable, file: root, "not a tracefs mount (no trace_pipe); mount it: mount -t tracefs nodev \(root)")
            }
            return root
        }
        for root in defaultRoots where try TracefsFile.exists("\(root)/trace_pipe") { return root }
        throw TraceError(.unavailable, file: "", "tracefs is not mounted (no \(defaultRoots.map { $0 + "/trace_pipe" }.joined(separator: " or "))); mount it: mount -t tracefs nodev \(defaultRoots[0]) (or give --tracefs DIR)")
    }
}

/// The settings `nestcache record` changed in a tracefs buffer, and how to put them back
/// (DESIGN §11).
///
/// `init` creates the instance if needed, then turns on `options/record-tgid`, each event's
/// `enable` and `tracing_on`, reading every original value before writing and writing only the
/// ones that differ. `restore` writes the originals back, the last change first, then removes
/// the instance it created. Nothing else is touched: not the buffer size, not the events of
/// other systems, not the contents of the buffer.
///
///     init:     mkdir instance?  ->  record-tgid 1  ->  events 1 ...  ->  tracing_on 1
///     restore:  tracing_on       ->  events ...     ->  record-tgid   ->  rmdir instance?
public final class TracefsSession {
    public let target: TracefsTarget
    /// `target.directory`.
    public let directory: String
    /// True when `init` made the instance (so `restore` removes it).
    public let createdInstance: Bool
    /// Each file changed and its original value, in the order changed.
    public private(set) var changes: [(path: String, original: String)] = []
    private var isRestored = false

    /// Applies the settings. On failure what was already changed is restored, and the instance
    /// removed, before the error is thrown.
    public init(_ target: TracefsTarget) throws(TraceError) {
        self.target = target
        self.directory = target.directory
        var created = false
        if case .instance = target.buffer, !(try TracefsFile.exists(directory)) {
            if mkdir(directory, 0o750) == 0 {
                created = true
            } else if errno != EEXIST {
                throw TracefsFile.error(errno, directory, "cannot create the instance")
            }
        }
        createdInstance = created
        do throws(TraceError) {
            guard try TracefsFile.exists("\(directory)/events/kvm"), try TracefsFile.exists("\(directory)/trace_pipe") else {
                throw TraceError(.unavailable, file: directory, "no events/kvm or trace_pipe in this instance (is \(target.root) a tracefs mount?)")
            }
            try turnOn("\(directory)/options/record-tgid")
            for event in target.events { try turnOn("\(directory)/events/kvm/\(event)/enable") }
            try turnOn("\(directory)/tracing_on")
        } catch {
            _ = restore()
            throw error
        }
    }

    deinit { _ = restore() }

    /// Writes `1` to a file that does not read `1`, after keeping what it read.
    func turnOn(_ path: String) throws(TraceError) {
        let original = try TracefsFile.read(path)
        if original.first == "1" { return }
        changes.append((path, original))
        try TracefsFile.write(path, "1")
    }

    /// Puts every original value back, the last change first, then removes the instance `init`
    /// created. Every step is tried even if one fails; returns one message per failure (empty:
    /// all restored). Only the first call does anything.
    public func restore() -> [String] {
        guard !isRestored else { return [] }
        isRestored = true
        var failures: [String] = []
        for change in changes.reversed() {
            // `0*` (soft-disabled by a trigger) is written back as `0`: the `*` is not writable.
            let value = change.original.hasSuffix("*") ? String(change.original.dropLast()) : change.original
            do throws(TraceError) {
                try TracefsFile.write(change.path, value)
            } catch {
                failures.append("could not restore '\(value)': \(error)")
            }
        }
        if createdInstance, rmdir(directory) != 0 {
            failures.append("\(directory): could not remove the instance: \(Syscall.describe(errno))")
        }
        return failures
    }
}

/// Small tracefs files: one value, read and written whole.
enum TracefsFile {
    /// Whether `path` exists; throws `.unavailable` when it cannot be looked at (not root).
    static func exists(_ path: String) throws(TraceError) -> Bool {
        var st = stat()
        if stat(path, &st) == 0 { return true }
        if errno == ENOENT || errno == ENOTDIR { return false }
        throw error(errno, path, "cannot look at it")
    }

    /// The file's content without surrounding blanks and newlines.
    static func read(_ path: String) throws(TraceError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw error(errno, path, "cannot open") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { Syscall.read(fd, into: $0) }
        guard n >= 0 else { throw error(Int32(-n), path, "cannot read") }
        let text = String(decoding: buffer[..<n], as: UTF8.self)
        return String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    /// Writes `value` and a newline, as `echo value > path` does.
    static func write(_ path: String, _ value: String) throws(TraceError) {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw error(errno, path, "cannot open for writing") }
        defer { close(fd) }
        let err = Syscall.writeAll(fd, value + "\n")
        guard err == 0 else { throw error(err, path, "cannot write '\(value)'") }
    }

    /// Permission problems are `.unavailable` (exit 69: "needs root"); the rest `.io`.
    static func error(_ err: Int32, _ path: String, _ what: String) -> TraceError {
        if err == EACCES || err == EPERM {
            return TraceError(.unavailable, file: path, "\(what): \(Syscall.describe(err)); nestcache record needs root")
        }
        return TraceError(.io, file: path, "\(what): \(Syscall.describe(err))")
    }
}
