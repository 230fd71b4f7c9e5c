import NestCacheSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The coverage-guided fuzz targets (issue 8): each takes arbitrary bytes and must neither crash
/// nor break an invariant; a broken invariant traps, which libFuzzer reports as a crash.
///
/// One file per target. `nestcache-fuzz` runs them under libFuzzer (`make fuzz`), and replays
/// the committed corpora (Fuzz/corpus/TARGET) and found crashes (Fuzz/regressions/TARGET) in
/// ordinary builds; the Swift tests replay the same files (NestCacheFuzzTests).
public enum FuzzTarget: String, CaseIterable, Sendable {
    case nativeTrace = "native-trace"
    case ftrace
    case config
    case control
    case render

    public func run(_ data: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .nativeTrace: FuzzTraces.native(data)
        case .ftrace: FuzzTraces.ftrace(data)
        case .config: FuzzConfig.run(data)
        case .control: FuzzControl.run(data)
        case .render: FuzzRender.run(data)
        }
    }
}

/// A fuzz failure: what broke, with the input's size, then a trap.
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    guard !condition() else { return }
    preconditionFailure("fuzz invariant: \(message())", file: file, line: line)
}

/// The bytes as a file that the readers can open by path (they read files, not buffers): one
/// unlinked temporary file for the whole run, rewritten for each input and opened anew by the
/// reader through /proc/self/fd. One input at a time: the Swift tests replay the targets'
/// corpora in parallel, and two inputs written into the one file mixed (an ftrace reading saw
/// native-trace lines in CI).
func withMemoryFile<R>(_ data: UnsafeBufferPointer<UInt8>, _ body: (String) -> R) -> R {
    scratchLock.withLock { _ in
        let fd = scratchFile
        precondition(ftruncate(fd, 0) == 0, "ftruncate: errno \(errno)")
        let err = Syscall.pwriteAll(fd, UnsafeRawBufferPointer(data), offset: 0)
        precondition(err == 0, "pwrite: errno \(err)")
        return body("/proc/self/fd/\(fd)")
    }
}

private let scratchLock = Mutex(())

private let scratchFile: Int32 = {
    var template = Array("/tmp/nestcache-fuzz-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0, "mkstemp: errno \(errno)")
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}()
