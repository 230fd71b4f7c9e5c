import NestCacheSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only sequence of fixed-size records that is read back last-to-first: the switch
/// sequences of `nestcache bounds` (DESIGN §11), which must be walked backwards once to learn each
/// switch's next use, and forwards once more to simulate the optimum.
///
/// Small sequences stay in memory. Past `memoryRecords` records everything goes to an anonymous
/// temporary file (created in `$TMPDIR` or `/tmp` and unlinked at once, so nothing is left behind
/// whatever happens to the process), written and read in chunks of `chunkRecords`: memory stays
/// at one chunk however long the trace.
///
///     append:  [ file: records 0 ..< onFile ][ buffer: onFile ..< count ]
///     reversed: the buffer last to first, then the file chunk by chunk from its end
///
/// Records are written as their in-memory bytes: the file is read by this process only.
///
/// - Complexity: `append` O(1) amortized; `forEachReversed` O(count), one `pread` per chunk.
final class SpillFile<Record: BitwiseCopyable> {
    /// Records kept in memory before the sequence moves to a file.
    let memoryRecords: Int
    /// Records per write and per read once on file.
    let chunkRecords: Int
    /// What an I/O error names, for the user.
    let label: String

    private var buffer: [Record] = []
    private var fd: Int32 = -1
    /// Records already on file (the file's first `onFile` records).
    private var onFile = 0

    /// The default: 256 Ki records (2 to 6 MiB for `nestcache bounds`) in memory, then 64 Ki
    /// records per chunk.
    init(label: String, memoryRecords: Int = 1 << 18, chunkRecords: Int = 1 << 16) {
        precondition(memoryRecords >= 0 && chunkRecords >= 1)
        self.label = label
        self.memoryRecords = memoryRecords
        self.chunkRecords = chunkRecords
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    var count: Int { onFile + buffer.count }
    var isSpilled: Bool { fd >= 0 }

    func append(_ r: Record) throws(TraceError) {
        if fd < 0, buffer.count == memoryRecords {
            // Move to the file before the buffer grows past `memoryRecords`.
            try openFile()
            try flush()
        }
        buffer.append(r)
        if fd >= 0, buffer.count >= chunkRecords { try flush() }
    }

    /// Calls `body` with every record, the last appended first.
    func forEachReversed(_ body: (Record) throws(TraceError) -> Void) throws(TraceError) {
        for r in buffer.reversed() { try body(r) }
        guard onFile > 0 else { return }
        let stride = MemoryLayout<Record>.stride
        var end = onFile
        while end > 0 {
            let start = max(0, end - chunkRecords)
            let n = end - start
            var failure: Int32 = 0
            // The bytes `pread` fills are those of records `flush` wrote (BitwiseCopyable: a
            // record is its bytes), so they are the initialized elements.
            let chunk = [Record](unsafeUninitializedCapacity: n) { p, initialized in
                failure = Syscall.preadAll(fd, UnsafeMutableRawBufferPointer(p), offset: start * stride)
                initialized = failure == 0 ? n : 0
            }
            guard failure == 0 else { throw ioError("read from a temporary file", failure) }
            for r in chunk.reversed() { try body(r) }
            end = start
        }
    }

    private func openFile() throws(TraceError) {
        var dir = "/tmp"
        if let t = getenv("TMPDIR"), t.pointee != 0 { dir = String(cString: t) }
        var template = Array((dir + "/nestcache-bounds-XXXXXX").utf8CString)
        let f = template.withUnsafeMutableBufferPointer { p -> Int32 in
            guard let base = p.baseAddress else { return -1 }
            return mkstemp(base)
        }
        guard f >= 0 else { throw ioError("cannot create a temporary file in \(dir)", errno) }
        let path = template.withUnsafeBufferPointer { p in p.baseAddress.map { String(cString: $0) } ?? "" }
        unlink(path)
        fd = f
    }

    private func flush() throws(TraceError) {
        let err = buffer.withUnsafeBytes { bytes in
            Syscall.pwriteAll(fd, bytes, offset: onFile * MemoryLayout<Record>.stride)
        }
        guard err == 0 else { throw ioError("write to a temporary file", err) }
        onFile += buffer.count
        if buffer.capacity > 2 * chunkRecords {
            // The first flush, of up to `memoryRecords`: from now on one chunk is enough.
            buffer = []
            buffer.reserveCapacity(chunkRecords)
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
    }

    private func ioError(_ what: String, _ err: Int32) -> TraceError {
        TraceError(.io, file: label, "\(what): \(Syscall.describe(err))")
    }
}
