import NestCacheCore

/// Drives engines with a source, batch by batch: every engine sees the same events in order.
public enum Replay {
    public static let batchSize = 4096

    /// Reads `source` to its end, applying every batch to every engine.
    public static func drive(_ source: some EventSource, into engines: inout [any PolicyEngine]) throws(TraceError) {
        var source = source
        var batch: [Event] = []
        batch.reserveCapacity(batchSize)
        while try source.next(into: &batch, limit: batchSize) {
            let registry = source.registry
            batch.withUnsafeBufferPointer { events in
                for i in engines.indices { engines[i].apply(events, registry: registry) }
            }
        }
        let registry = source.registry
        for i in engines.indices { engines[i].sync(with: registry) }
    }
}

/// Several trace files read in order as one stream: VM ids name the same VM across files.
public final class TraceFileSequence: EventSource {
    public enum Format: String, Sendable, CaseIterable { case auto, native, ftrace }

    let paths: [String]
    let format: Format
    let vm: String?
    let invalidLines: InvalidLinePolicy
    var index = 0
    var current: (any EventSource)?
    public private(set) var registry = VMRegistry()
    var figureTotals: [(name: String, value: UInt64)] = []
    var skippedTotals: EventCounts?
    public private(set) var warnings: [String] = []

    /// Files of a given format (`auto`: detected per file from its first lines). `vm` names the
    /// VM of ftrace files without a tgid column; by default each file's base name without extension.
    public init(paths: [String], format: Format, vm: String?, invalidLines: InvalidLinePolicy) {
        self.paths = paths
        self.format = format
        self.vm = vm
        self.invalidLines = invalidLines
    }

    /// The reader of one file, continuing the registry of the files before it.
    func reader(for path: String) throws(TraceError) -> any EventSource {
        let resolved: TraceFormat
        switch format {
        case .native: resolved = .native
        case .ftrace: resolved = .ftrace
        case .auto: resolved = try TraceFormat.detect(path: path)
        }
        switch resolved {
        case .native:
            return try NativeTraceReader(path: path, invalidLines: invalidLines, registry: registry)
        case .ftrace:
            return try FtraceReader(path: path, vm: vm ?? Self.defaultVMName(path), invalidLines: invalidLines, registry: registry)
        }
    }

    /// The file's base name without its extension (`/tmp/web0.trace.txt` -> `web0`), with
    /// characters outside DESIGN §1's id alphabet replaced by `_`; `stdin` for `-`.
    public static func defaultVMName(_ path: String) -> String {
        guard path != "-" else { return "stdin" }
        let base = path.split(separator: "/").last.map(String.init) ?? path
        let stem = base.split(separator: ".").first.map(String.init) ?? base
        let cleaned = String(stem.utf8.prefix(64).map { VMInfo.isIDByte($0) ? Character(Unicode.Scalar($0)) : "_" })
        return cleaned.isEmpty ? "vm" : cleaned
    }

    public var figures: [(name: String, value: UInt64)] {
        var totals = figureTotals
        if let current { Self.add(current.figures, to: &totals) }
        return totals
    }

    /// The skipped events of every file read so far, summed by name (nil if none was ftrace).
    public var skippedEvents: EventCounts? {
        var totals = skippedTotals
        if let current { merge(current.skippedEvents, into: &totals) }
        return totals
    }

    public func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        while true {
            if current == nil {
                guard index < paths.count else {
                    batch.removeAll(keepingCapacity: true)
                    return false
                }
                current = try reader(for: paths[index])
                index += 1
            }
            guard var source = current else { continue }
            let more = try source.next(into: &batch, limit: limit)
            registry = source.registry
            if more {
                current = source
                return true
            }
            Self.add(source.figures, to: &figureTotals)
            merge(source.skippedEvents, into: &skippedTotals)
            warnings.append(contentsOf: source.warnings.prefix(warningLimit - min(warningLimit, warnings.count)))
            current = nil
        }
    }

    static func add(_ figures: [(name: String, value: UInt64)], to totals: inout [(name: String, value: UInt64)]) {
        for f in figures {
            if let i = totals.firstIndex(where: { $0.name == f.name }) {
                totals[i].value += f.value
            } else {
                totals.append(f)
            }
        }
    }
}
