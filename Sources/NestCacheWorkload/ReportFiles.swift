import NestCacheSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `nestcache report`'s files: each appears whole or not at all (written to
/// `PATH.tmp-PID`, then renamed).
public enum ReportFiles {
    /// The file names of `writeCharts`, in chart order.
    public static let chartNames = ["hit-ratio-vs-k.svg", "hit-ratio-vs-r.svg", "overhead-vs-map-cost.svg", "exposure-vs-ratio.svg"]

    public static func write(_ text: String, to path: String) throws(TraceError) {
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TraceError(.io, file: path, "cannot create \(tmp): \(Syscall.describe(errno))") }
        let bytes = Array(text.utf8)
        let err = bytes.withUnsafeBytes { Syscall.writeAll(fd, $0) }
        let synced = err == 0 && fsync(fd) == 0
        close(fd)
        guard err == 0, synced, rename(tmp, path) == 0 else {
            let e = err != 0 ? err : errno
            unlink(tmp)
            throw TraceError(.io, file: path, "cannot write: \(Syscall.describe(e))")
        }
    }

    /// The four charts as standalone SVG files in `dir` (created if missing).
    public static func writeCharts(_ data: ReportData, into dir: String) throws(TraceError) {
        if mkdir(dir, 0o755) != 0, errno != EEXIST {
            throw TraceError(.io, file: dir, "cannot create the directory: \(Syscall.describe(errno))")
        }
        for (name, chart) in zip(chartNames, data.charts) {
            try write(chart.svg(standalone: true), to: dir + "/" + name)
        }
    }
}
