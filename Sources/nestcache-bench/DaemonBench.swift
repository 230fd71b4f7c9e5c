import Dispatch
import Foundation
import Logging
import NestCacheControl
import NestCacheCore
import NestCacheDaemon
import NestCacheWorkload
import Synchronization

/// Events/s through nestcached's runtime at speed max: one 16-vCPU simulated VM, with one serial
/// queue per vCPU and with a single queue, for two policy sets: the per-VM table primary with 3
/// per-vCPU shadows, and per-vCPU policies only. `--policies P,S,...` runs one set instead.
func daemonThroughputBench() async throws {
    let n = option("--events", default: 10_000_000)
    let runs = option("--runs", default: 3)
    var sets: [[PolicySpec]] = [[.seed, .perVCPULRU(k: 3), .single, .mapPerEntry], [.perVCPULRU(k: 3), .single, .mapPerEntry]]
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--policies"), i + 1 < args.count { sets = [try PolicySpec.parseList(args[i + 1])] }
    print("daemon runtime: \(n) events, 1 VM of 16 L1 vCPUs (cloud-mixed with 16 L1 vCPUs, 128 L2 vCPUs), speed max; median of \(runs) runs")
    print("| policies (primary first) | queues | M events/s | primary's lock wait per batch (µs) |")
    print("| --- | --- | ---: | ---: |")
    for policies in sets {
        for layout in [WorkloadRunner.QueueLayout.perVCPU, .single] {
            var rates: [Double] = []
            var waits: [Double] = []
            for _ in 0..<runs {
                var spec = try WorkloadSpec.preset(named: "cloud-mixed")
                try spec.set("l1_vcpus", "16")
                try spec.set("l2_vcpus", "128")
                try spec.set("events", String(n))
                try spec.set("vm", "bench")
                let vm = DaemonConfig.SimulatedVM(
                    id: "bench", workload: spec, policy: policies[0], shadowPolicies: Array(policies.dropFirst()), speed: .max)
                let directory = VMDirectory()
                let runner = WorkloadRunner(kind: .simulated(vm), directory: directory, defaultPagesPerContext: 4,
                                            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, queueLayout: layout)
                let start = DispatchTime.now().uptimeNanoseconds
                runner.start()
                while directory.all.first?.state != .done { try await Task.sleep(for: .milliseconds(5)) }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let snap = directory.all[0].snapshot()
                precondition(snap.events == UInt64(n), "lost events: \(snap.events)")
                rates.append(Double(n) / seconds / 1e6)
                waits.append(Double(snap.lockWait.totalNs) / Double(max(snap.lockWait.acquisitions, 1)) / 1000)
            }
            print("| \(policies.map(\.description).joined(separator: ", ")) | \(layout == .perVCPU ? "one per vCPU (16)" : "one for the VM") | \(fmt(median(rates))) | \(fmt(median(waits), 2)) |")
        }
    }
}

/// `show stats json` round trips from `--clients` threads against a running daemon (`--socket`):
/// p50, p99 and max in milliseconds. Native, so the client's own overhead stays small.
func controlLatencyBench() throws {
    let clients = option("--clients", default: 64)
    let requests = option("--requests", default: 200)
    // 0: a closed loop (each client asks again at once: saturation); else each client pauses so
    // long between requests, as monitoring scripts polling every few ms would.
    let intervalMs = option("--interval-ms", default: 0)
    guard let i = CommandLine.arguments.firstIndex(of: "--socket"), i + 1 < CommandLine.arguments.count else {
        print("latency needs --socket PATH")
        exit(64)
    }
    let client = ControlClient(path: CommandLine.arguments[i + 1])
    let results = UnsafeMutableBufferPointer<Double>.allocate(capacity: clients * requests)
    defer { results.deallocate() }
    let failures = Atomic<Int>(0)
    let start = DispatchTime.now().uptimeNanoseconds
    nonisolated(unsafe) let out = results
    // One thread per client (concurrentPerform would run only as many as there are cores).
    let group = DispatchGroup()
    for c in 0..<clients {
        group.enter()
        Thread {
        for r in 0..<requests {
            let t0 = DispatchTime.now().uptimeNanoseconds
            do {
                let answer = try client.request(ControlRequest(.showStats(vm: nil), json: true))
                if !answer.hasPrefix("{\"uptime_s\"") { failures.add(1, ordering: .relaxed) }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
            out[c * requests + r] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            if intervalMs > 0 { usleep(UInt32(intervalMs * 1000)) }
        }
        group.leave()
        }.start()
    }
    group.wait()
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let sorted = results.sorted()
    func q(_ f: Double) -> Double { sorted[min(sorted.count - 1, Int(f * Double(sorted.count)))] }
    print("| clients | pause between requests | p50 (ms) | p99 (ms) | max (ms) | requests/s | failures |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("| \(clients) | \(intervalMs == 0 ? "none (closed loop)" : "\(intervalMs) ms") | \(fmt(q(0.5), 3)) | \(fmt(q(0.99), 3)) | \(fmt(sorted.last ?? 0, 3)) | \(fmt(Double(sorted.count) / wall, 0)) | \(failures.load(ordering: .relaxed)) |")
}
