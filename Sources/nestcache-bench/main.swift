// nestcache-bench: the numbers of BENCHMARKS.md. Run through `make bench` (release build).
//
//   nestcache-bench engine [--events N]     policy engine vs the Dictionary/Array baseline
//   nestcache-bench reader [--mb N]         native reader and replay end to end on a generated file
//   nestcache-bench daemon [--events N]     nestcached's runtime: vCPU queues vs one queue
//   nestcache-bench latency --socket PATH   `show stats json` round trips from many clients
//   nestcache-bench alloc-probe --events N  one engine pass over N events (run under valgrind to
//                                           count heap allocations; see BENCHMARKS.md)
//   nestcache-bench simulate [--events N]   Simulator alone (no engine), per scheduler
//   nestcache-bench ftrace [--mb N] [--layout raw|perf]   FtraceReader on generated raw and perf script traces
//   nestcache-bench sweep [--events N]      a 25-configuration Sweep with jobs = 1 and jobs = 2
//   nestcache-bench bounds [--events N]     one `nestcache bounds` vs kmax + 1 `replay --policy
//                                           per-vcpu-lru:K` runs on the same generated trace
import Foundation
import NestCacheCore
import NestCacheReference
import NestCacheWorkload

extension SplitMix64 {
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// One VM, 16 L1 vCPUs, 8 to 10 resident L2 control blocks each: mostly sched switches with a few
/// entries each, 2% migrations (VMCLEAR on the old vCPU, VMPTRLD on the new one).
func benchStream(events n: Int, seed: UInt64 = 1) -> (VMRegistry, [Event]) {
    var registry = VMRegistry()
    registry.update(registry.intern("bench0"), VMInfo(id: "bench0", l1VCPUs: 16, memoryMiB: 65536))
    var rng = SplitMix64(seed: seed)
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

/// Drains a source; returns the number of events.
func drain(_ source: some EventSource) throws -> Int {
    var source = source
    var batch: [Event] = []
    var count = 0
    while try source.next(into: &batch, limit: Replay.batchSize) { count += batch.count }
    return count
}

/// The benchmarks' simulated VM: 16 L1 vCPUs, 128 L2 vCPUs, the given scheduler, 2% migrations.
func benchSimulation(events: Int, scheduler: SimulationSpec.Scheduler = .pinned) -> SimulationSpec {
    var s = SimulationSpec()
    s.vm = "bench0"
    s.l1VCPUs = 16
    s.l2VCPUs = 128
    s.scheduler = scheduler
    s.migrationRate = 0.02
    s.entriesPerSwitch = 4
    s.length = .events(UInt64(events))
    return s
}

func simulateBench() throws {
    let n = option("--events", default: 10_000_000)
    let runs = option("--runs", default: 3)
    print("simulate: \(n) events per run, 16 L1 vCPUs, 128 L2 vCPUs, 4 entries per switch; median of \(runs) runs")
    print("| scheduler | M events/s |")
    print("| --- | ---: |")
    for scheduler in SimulationSpec.Scheduler.allCases {
        let spec = benchSimulation(events: n, scheduler: scheduler)
        var times: [Double] = []
        for _ in 0..<runs {
            var count = 0
            times.append(try seconds { count = try drain(Simulator(spec)) })
            precondition(count == n, "simulator made \(count) events, not \(n)")
        }
        print("| \(scheduler.rawValue) | \(fmt(Double(n) / median(times) / 1e6)) |")
    }
    // The daemon's feeder path: the same pinned stream, split by vCPU as it is generated, in
    // batches of the daemon's size (`WorkloadRunner.maxBatch`).
    var times: [Double] = []
    for _ in 0..<runs {
        var count = 0
        times.append(seconds {
            var simulator = Simulator(benchSimulation(events: n))
            var split = VCPUSplit()
            while simulator.next(split: &split, limit: 16_384) { count += split.count }
        })
        precondition(count == n, "simulator made \(count) events, not \(n)")
    }
    print("| pinned, split by vCPU (the daemon's) | \(fmt(Double(n) / median(times) / 1e6)) |")
}

/// The ftrace layouts the bench reads.
enum FtraceLayout: String, CaseIterable {
    /// Raw `/sys/kernel/tracing/trace` lines (Tests/Fixtures/ftrace forms): `load` is a
    /// `kvm_exit ... reason VMPTRLD`, `clear` a `kvm_exit ... reason VMCLEAR`, `enter` a
    /// `kvm_exit ... reason VMRESUME` then a `kvm_nested_vmenter` with the `vmcs:` GPA.
    case raw
    /// `perf script` lines of the same stream (Tests/Fixtures/ftrace/constructed forms): the KVM
    /// plugin's `kvm:kvm_exit: reason R rip 0x... info 0 0` (no vCPU: it comes from the comm
    /// `CPU N/KVM`), `kvm:kvm_nested_vmenter`, and after each entry a `kvm:kvm_fpu` line, an
    /// event the reader passes over and counts, as in a `perf record -e 'kvm:*'` capture.
    case perf
}

/// A trace of `layout` for a simulated stream, about `megabytes` long.
func writeFtrace(path: String, megabytes: Int, layout: FtraceLayout) throws {
    let target = megabytes << 20
    guard FileManager.default.createFile(atPath: path, contents: nil),
          let out = FileHandle(forWritingAtPath: path) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
    }
    defer { try? out.close() }
    var text = layout == .perf ? "" : "# tracer: nop\n#\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n#              | |         |   |||||     |         |\n"
    var written = 0
    var source = Simulator(benchSimulation(events: Int.max / 2))
    var batch: [Event] = []
    func hex16(_ x: UInt64) -> String {
        let h = String(x, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h
    }
    while written < target, try source.next(into: &batch, limit: 4096) {
        for e in batch {
            let v = Int(e.vcpu)
            let micros = String(e.timeNs / 1000 % 1_000_000)
            let cpu = "[\(String(repeating: "0", count: 3 - String(v % 1000).count))\(v % 1000)] "
            let time = "\(1000 + e.timeNs / 1_000_000_000).\(String(repeating: "0", count: 6 - micros.count))\(micros): "
            let reason: String
            switch e.op {
            case .load: reason = "VMPTRLD"
            case .clear: reason = "VMCLEAR"
            case .enter: reason = "VMRESUME"
            }
            let enter = "rip: 0xffffffffc0a1b4d0 vmcs: 0x\(hex16(e.gpa.raw)) nested_rip: 0x00007f3a1c2e1000 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=y nested_eptp: 0x000000010b00005e\n"
            switch layout {
            case .raw:
                let prefix = "       CPU \(v)/KVM-\(10_000 + v)   " + cpu
                text += prefix + "d.... " + time + "kvm_exit: vcpu \(v) reason \(reason) rip 0xffffffffc0a1b2c3 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n"
                if e.op == .enter { text += prefix + "..... " + time + "kvm_nested_vmenter: " + enter }
            case .perf:
                let prefix = "       CPU \(v)/KVM  \(10_000 + v) " + cpu + time
                text += prefix + "           kvm:kvm_exit: reason \(reason) rip 0xffffffffc0a1b2c3 info 0 0\n"
                if e.op == .enter {
                    text += prefix + " kvm:kvm_nested_vmenter: " + enter
                    text += prefix + "            kvm:kvm_fpu: load\n"
                }
            }
        }
        written += text.utf8.count
        out.write(Data(text.utf8))
        text = ""
    }
}

func ftraceBench() throws {
    let mb = option("--mb", default: 100)
    let runs = option("--runs", default: 3)
    print("ftrace: \(mb) MB of trace lines per layout generated from the simulator; median of \(runs) runs (page cache warm)")
    print("| layout | MB | MB/s | M events/s |")
    print("| --- | ---: | ---: | ---: |")
    let args = CommandLine.arguments
    let only = args.firstIndex(of: "--layout").flatMap { $0 + 1 < args.count ? FtraceLayout(rawValue: args[$0 + 1]) : nil }
    for layout in FtraceLayout.allCases where only == nil || only == layout {
        let path = NSTemporaryDirectory() + (layout == .raw ? "nestcache-bench-ftrace-\(mb)mb.txt" : "nestcache-bench-ftrace-\(layout)-\(mb)mb.txt")
        let size0 = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64).flatMap { $0 } ?? 0
        if size0 < UInt64(mb) << 20 { try writeFtrace(path: path, megabytes: mb, layout: layout) }
        let size = Double((try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0)
        var times: [Double] = []
        var events = 0
        for _ in 0..<runs {
            times.append(try seconds { events = try drain(FtraceReader(path: path, vm: "bench0")) })
        }
        print("| FtraceReader, \(layout) | \(fmt(size / 1e6)) | \(fmt(size / median(times) / 1e6)) | \(fmt(Double(events) / median(times) / 1e6)) |")
    }
}

func sweepBench() throws {
    let n = option("--events", default: 10_000_000)
    let runs = option("--runs", default: 3)
    var base = benchSimulation(events: n)
    base.vm = "sweep0"
    let ratios = [1, 2, 4, 8, 16]
    let policies = [1, 2, 4, 8, 16].map { PolicySpec.perVMTable(contextsPerVCPU: $0) }
    let sweep = try Sweep(input: .workload(.simulate(base)), ratios: ratios, policies: policies)
    print("sweep: \(ratios.count * policies.count) configurations (per-vm-table:R, R = 1..16, x L2:L1 ratios 1..16), \(n)-event simulated stream each, 16 L1 vCPUs; median of \(runs) runs; \(Sweep.defaultJobs) processors online")
    var reference: [Sweep.Row]?
    var wall: [Int: Double] = [:]
    var cpu: [Int: Double] = [:]
    for jobs in [1, 2] {
        var times: [(wall: Double, cpu: Double)] = []
        for _ in 0..<runs {
            var rows: [Sweep.Row] = []
            let cpu0 = cpuSeconds()
            let w = try seconds { rows = try sweep.run(jobs: jobs).rows }
            times.append((w, cpuSeconds() - cpu0))
            if let reference { precondition(rows == reference, "sweep rows differ with jobs = \(jobs)") }
            reference = rows
        }
        let m = times.sorted { $0.wall < $1.wall }[times.count / 2]
        wall[jobs] = m.wall
        cpu[jobs] = m.cpu
    }
    let configs = Double(ratios.count * policies.count)
    let t1 = wall[1] ?? 0
    let t2 = wall[2] ?? 0
    print("| jobs | wall s | CPU s (user + sys) | configurations/s | speed-up |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print("| 1 | \(fmt(t1, 2)) | \(fmt(cpu[1] ?? 0, 2)) | \(fmt(configs / t1, 2)) | 1.00x |")
    print("| 2 | \(fmt(t2, 2)) | \(fmt(cpu[2] ?? 0, 2)) | \(fmt(configs / t2, 2)) | \(fmt(t1 / t2, 2))x |")
    print("(CPU s above wall s x jobs, or a speed-up far below 2 with CPU s near wall s, means other load on the machine.)")
    print("load average after: \((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?")")
}

/// Runs the `nestcache` next to this binary with `arguments`; returns its standard output.
func runNestcache(_ arguments: [String]) throws -> Data {
    let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("nestcache").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bin)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    precondition(p.terminationStatus == 0, "nestcache \(arguments.joined(separator: " ")) failed")
    return data
}

/// Per VM, the hits of a `replay --json` or the `lru_hits` of a `bounds --json`.
func jsonVMs(_ data: Data) -> [String: [String: Any]] {
    ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["vms"] as? [String: [String: Any]] ?? [:]
}

func boundsBench() throws {
    let n = option("--events", default: 10_000_000)
    let runs = option("--runs", default: 3)
    let kmax = 16
    let path = NSTemporaryDirectory() + "nestcache-bench-bounds-\(n).trace"
    let spec = benchSimulation(events: n)
    if !FileManager.default.fileExists(atPath: path) { _ = try NativeTraceWriter.write(Simulator(spec), to: path) }
    let size = Double((try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0)
    print("bounds: \(path), \(fmt(size / 1e6)) MB, \(n) events (16 L1 vCPUs, 128 L2 vCPUs, pinned, 2% migrations, 4 entries per switch); median of \(runs) runs (page cache warm)")
    var once: [Double] = []
    var separate: [Double] = []
    var boundsOut = Data()
    var replayHits: [[String: UInt64]] = []
    var boundsRSS = 0
    for _ in 0..<runs {
        once.append(try seconds { boundsOut = try runNestcache(["bounds", path, "--kmax", String(kmax), "--json"]) })
        // The largest child so far: only `bounds` runs have ended before the first replay.
        if boundsRSS == 0 { boundsRSS = childrenMaxRSSKiB() }
        var hits: [[String: UInt64]] = []
        separate.append(try seconds {
            for k in 0...kmax {
                let vms = jsonVMs(try runNestcache(["replay", path, "--policy", "per-vcpu-lru:\(k)", "--json"]))
                hits.append(vms.mapValues { ($0["hits"] as? NSNumber)?.uint64Value ?? .max })
            }
        })
        replayHits = hits
    }
    // The point of the single pass: the same numbers.
    var switches: UInt64 = 0
    for (vm, b) in jsonVMs(boundsOut) {
        let lru = (b["lru_hits"] as? [NSNumber])?.map(\.uint64Value) ?? []
        precondition(lru == replayHits.map { $0[vm] ?? .max }, "bounds lru_hits differ from the replays for \(vm)")
        switches += (b["switches"] as? NSNumber)?.uint64Value ?? 0
    }
    let t1 = median(once)
    let tk = median(separate)
    let held = switches > 1 << 18 ? "more than 256 Ki: spilled to temporary files" : "up to 256 Ki: held in memory"
    print("\(switches) switches (\(held)); lru_hits[K] of bounds equal the \(kmax + 1) replays' hits (checked)")
    print("| run | wall s |")
    print("| --- | ---: |")
    print("| 1 x `nestcache bounds --kmax \(kmax) --json`: LRU and OPT per vCPU for K = 0..\(kmax), OPT per VM for R = 1,2,4,8,16 | \(fmt(t1, 2)) |")
    print("| \(kmax + 1) x `nestcache replay --policy per-vcpu-lru:K --json`, K = 0..\(kmax) | \(fmt(tk, 2)) |")
    print("speed-up: \(fmt(tk / t1, 1))x; peak RSS of `nestcache bounds`: \(boundsRSS / 1024) MiB")
    print("load average after: \((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?")")
}

/// The largest peak RSS of the children waited for so far, in KiB.
func childrenMaxRSSKiB() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
    #else
    getrusage(RUSAGE_CHILDREN, &usage)
    #endif
    return usage.ru_maxrss
}

/// User + system CPU time of this process so far, in seconds.
func cpuSeconds() -> Double {
    var u = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    #else
    getrusage(RUSAGE_SELF, &u)
    #endif
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

switch CommandLine.arguments.dropFirst().first {
case "engine": engineBench()
case "reader": try readerBench()
case "alloc-probe": allocProbe()
case "daemon": try await daemonThroughputBench()
case "latency": try controlLatencyBench()
case "simulate": try simulateBench()
case "ftrace": try ftraceBench()
case "sweep": try sweepBench()
case "bounds": try boundsBench()
default:
    print("usage: nestcache-bench engine|reader|alloc-probe|simulate|ftrace|sweep|bounds|daemon|latency [--events N] [--mb N] [--runs N]")
    exit(64)
}
