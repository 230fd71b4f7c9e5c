// nestcache-bench: the numbers of BENCHMARKS.md. Run through `make bench` (release build).
//
//   nestcache-bench engine [--events N]     policy engine vs the Dictionary/Array baseline
//   nestcache-bench reader [--mb N]         native reader and replay end to end on a generated file
//   nestcache-bench daemon [--events N]     nestcached's runtime: vCPU queues vs one queue
//   nestcache-bench latency --socket PATH   `show stats json` round trips from many clients
//   nestcache-bench alloc-probe --events N  one engine pass over N events (run under valgrind to
//                                           count heap allocations; see BENCHMARKS.md)
import Foundation
import NestCacheCore
import NestCacheReference
import NestCacheWorkload

struct BenchRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// One VM, 16 L1 vCPUs, 8 to 10 resident L2 control blocks each: mostly sched switches with a few
/// entries each, 2% migrations (VMCLEAR on the old vCPU, VMPTRLD on the new one).
func benchStream(events n: Int, seed: UInt64 = 1) -> (VMRegistry, [Event]) {
    var registry = VMRegistry()
    registry.update(registry.intern("bench0"), VMInfo(id: "bench0", l1VCPUs: 16, memoryMiB: 65536))
    var rng = BenchRNG(state: seed)
    let l1 = 16
    var home = (0..<(l1 * 9)).map { $0 % l1 }
    let gpa = { (i: Int) in GPA(UInt64(0x1_0000_0000 + i * 0x1000)) }
    var out: [Event] = []
    out.reserveCapacity(n)
    var t: UInt64 = 0
    while out.count < n {
        let v = rng.below(l1)
        let l2 = rng.below(home.count)
        t += 100
        if home[l2] != v {
            guard rng.below(50) == 0 else { continue }
            out.append(Event(timeNs: t, vm: 0, vcpu: UInt16(home[l2]), op: .clear, gpa: gpa(l2)))
            home[l2] = v
        }
        out.append(Event(timeNs: t, vm: 0, vcpu: UInt16(v), op: .load, gpa: gpa(l2)))
        for _ in 0..<(1 + rng.below(3)) {
            out.append(Event(timeNs: t, vm: 0, vcpu: UInt16(v), op: .enter, gpa: gpa(l2)))
        }
    }
    out.removeLast(out.count - n)
    return (registry, out)
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func option(_ name: String, default d: Int) -> Int {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count, let n = Int(args[i + 1]) else { return d }
    return n
}

func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }

func engineBench() {
    let n = option("--events", default: 1_000_000)
    let runs = option("--runs", default: 7)
    let (registry, events) = benchStream(events: n)
    print("engine: \(n) events in memory, 1 VM, 16 vCPUs, 144 L2 control blocks; median of \(runs) runs")
    print("| policy | fast engine (M events/s) | baseline (M events/s) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for spec in [PolicySpec.seed, .perVCPULRU(k: 3), .single, .mapPerEntry] {
        var fast: [Double] = []
        var base: [Double] = []
        var check: (UInt64, UInt64) = (0, 0)
        for _ in 0..<runs {
            var engine = spec.makeEngine()
            fast.append(seconds { engine.apply(events, registry: registry) })
            let reference = ReferenceModel(spec: spec)
            base.append(seconds { for e in events { reference.apply(e, registry: registry) } })
            check = (engine.totals.counters.hits, reference.snapshot(vm: 0).counters.hits)
        }
        precondition(check.0 == check.1, "baseline disagrees on hits: \(check)")
        let f = Double(n) / median(fast) / 1e6
        let b = Double(n) / median(base) / 1e6
        print("| \(spec) | \(fmt(f)) | \(fmt(b)) | \(fmt(f / b))x |")
    }
}

func allocProbe() {
    let n = option("--events", default: 1_000_000)
    let (registry, events) = benchStream(events: n)
    var engine = PolicySpec.seed.makeEngine()
    engine.apply(events, registry: registry)
    print("alloc-probe: \(n) events, hits \(engine.totals.counters.hits)")
}

func readerBench() throws {
    let mb = option("--mb", default: 100)
    let runs = option("--runs", default: 3)
    let path = NSTemporaryDirectory() + "nestcache-bench-\(mb)mb.trace"
    let target = UInt64(mb) << 20
    if (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64).flatMap({ $0 }) ?? 0 < target {
        var (registry, events) = benchStream(events: 1_000_000)
        var offset: UInt64 = 0
        try NativeTraceWriter.write(to: path) { (w: inout NativeTraceWriter) throws(TraceError) in
            var written: UInt64 = 0
            while written < target {
                for i in events.indices { events[i].timeNs += offset }
                try w.write(events, registry: registry)
                offset = events[events.count - 1].timeNs
                written += UInt64(events.count) * 33
            }
            try w.finish(registry: registry)
        }
        registry = VMRegistry()
    }
    let size = Double((try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0)
    print("reader: \(path), \(fmt(size / 1e6)) MB; median of \(runs) runs (page cache warm)")
    var read: [Double] = []
    var replay: [Double] = []
    var eventCount = 0
    for _ in 0..<runs {
        read.append(try seconds {
            let r = try NativeTraceReader(path: path)
            var batch: [Event] = []
            var count = 0
            while try r.next(into: &batch, limit: 4096) { count += batch.count }
            eventCount = count
        })
        replay.append(try seconds {
            let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("nestcache").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["replay", "--json", path]
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            p.waitUntilExit()
            precondition(p.terminationStatus == 0, "nestcache replay failed")
        })
    }
    print("| stage | MB/s | M events/s |")
    print("| --- | ---: | ---: |")
    print("| NativeTraceReader alone | \(fmt(size / median(read) / 1e6)) | \(fmt(Double(eventCount) / median(read) / 1e6)) |")
    print("| `nestcache replay --json` end to end (per-vm-table:8) | \(fmt(size / median(replay) / 1e6)) | \(fmt(Double(eventCount) / median(replay) / 1e6)) |")
}

switch CommandLine.arguments.dropFirst().first {
case "engine": engineBench()
case "reader": try readerBench()
case "alloc-probe": allocProbe()
case "daemon": try await daemonThroughputBench()
case "latency": try controlLatencyBench()
default:
    print("usage: nestcache-bench engine|reader|alloc-probe [--events N] [--mb N] [--runs N]")
    exit(64)
}
