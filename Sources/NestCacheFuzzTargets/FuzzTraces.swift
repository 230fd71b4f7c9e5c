import NestCacheCore
import NestCacheWorkload

/// The native and ftrace readers, whole: line reader, parser, VM registry, then every policy's
/// engine on what was read, with the engines' invariants checked after each batch. Both
/// `--skip-invalid` and the strict mode run; a reader may only fail with a bad-data `TraceError`
/// that names a line of the input.
enum FuzzTraces {
    static let policies: [PolicySpec] = [.perVMTable(contextsPerVCPU: 2), .perVCPULRU(k: 1), .single, .mapPerEntry]

    static func native(_ data: UnsafeBufferPointer<UInt8>) {
        withMemoryFile(data) { path in
            for policy in [InvalidLinePolicy.fail, .skip] {
                drive(data, policy) { () throws(TraceError) in try NativeTraceReader(path: path, invalidLines: policy) }
            }
        }
    }

    static func ftrace(_ data: UnsafeBufferPointer<UInt8>) {
        withMemoryFile(data) { path in
            for policy in [InvalidLinePolicy.fail, .skip] {
                drive(data, policy) { () throws(TraceError) in try FtraceReader(path: path, vm: "fuzz", invalidLines: policy) }
                // The fast path reads what the general path reads, the same way (issue 10); a
                // batch of 2 leaves it no room after an SVM clear.
                for limit in [2, 64] {
                    let fast = FtraceReader.reading(path, vm: "fuzz", invalidLines: policy, limit: limit, fastPath: true)
                    let general = FtraceReader.reading(path, vm: "fuzz", invalidLines: policy, limit: limit, fastPath: false)
                    fuzzCheck(fast == general, "fast path \(fast)\ngeneral path \(general)")
                    fuzzCheck(fast.batchesOverLimit == 0, "batches over the limit of \(limit): \(fast)")
                }
            }
        }
    }

    static func drive<S: EventSource>(_ data: UnsafeBufferPointer<UInt8>, _ invalid: InvalidLinePolicy, _ open: () throws(TraceError) -> S) {
        var engines = policies.map { $0.makeEngine() }
        let lines = data.count(where: { $0 == 0x0A }) + 1
        do {
            var source = try open()
            var batch: [Event] = []
            while try source.next(into: &batch, limit: 64) {
                let registry = source.registry
                for e in batch {
                    fuzzCheck(Int(e.vm) < registry.count, "event names VM \(e.vm) of \(registry.count)")
                    fuzzCheck(e.gpa.raw & 0xFFF == 0 && e.gpa.raw < GPA.limit, "GPA \(e.gpa) not 4 KiB aligned below 2^52")
                }
                batch.withUnsafeBufferPointer { events in
                    for i in engines.indices {
                        engines[i].apply(events, registry: registry)
                        engines[i].checkInvariants()
                    }
                }
            }
            for e in engines {
                for vm in 0..<e.vmCount {
                    let s = e.snapshot(vm: Int32(vm))
                    fuzzCheck(s.counters.hits + s.counters.misses == s.counters.switches, "hits + misses != switches")
                }
            }
        } catch {
            fuzzCheck(error.kind == .badData, "not a data error: \(error)")
            if let l = error.line { fuzzCheck(l >= 1 && l <= lines, "error at line \(l) of \(lines): \(error)") }
        }
    }
}
