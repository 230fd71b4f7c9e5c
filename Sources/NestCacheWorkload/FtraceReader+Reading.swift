import NestCacheCore

/// Everything an `FtraceReader` gives for a whole file, in a comparable form: how the tests and
/// the ftrace fuzz target check that the fast path (`FtraceLine.quick`) reads what the general
/// path reads, the same way.
package struct FtraceReading: Equatable, CustomStringConvertible {
    package var events: [Event] = []
    package var figures: [String] = []
    package var warnings: [String] = []
    package var skipped: [String] = []
    package var vms: [String] = []
    /// Batches longer than the limit asked for (0 when the reader keeps its contract).
    package var batchesOverLimit = 0
    package var error: String?

    package init() {}

    package var description: String {
        "events \(events.count) \(events.prefix(8)) figures \(figures) warnings \(warnings) skipped \(skipped) vms \(vms) "
            + "batches over the limit \(batchesOverLimit) error \(error ?? "none")"
    }
}

extension FtraceReader {
    /// Reads `path` to its end (or its first error) in batches of at most `limit` events, by the
    /// fast path where it applies or by the general path alone.
    package static func reading(_ path: String, vm: String, invalidLines: InvalidLinePolicy, limit: Int, fastPath: Bool) -> FtraceReading {
        var reading = FtraceReading()
        do {
            let r = try FtraceReader(path: path, vm: vm, invalidLines: invalidLines)
            r.usesFastPath = fastPath
            defer {
                reading.figures = r.figures.map { "\($0.name)=\($0.value)" }
                reading.warnings = r.warnings
                reading.skipped = (r.skippedEvents ?? []).map { "\($0.name)=\($0.count)" }
                reading.vms = r.registry.infos.map(\.id)
            }
            var batch: [Event] = []
            while try r.next(into: &batch, limit: limit) {
                if batch.count > limit { reading.batchesOverLimit += 1 }
                reading.events += batch
            }
        } catch {
            reading.error = error.description
        }
        return reading
    }
}
