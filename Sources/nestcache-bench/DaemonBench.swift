import Dispatch
import Foundation
import Logging
import NestCacheCore
import NestCacheDaemon
import NestCacheWorkload

/// Events/s through nestcached's runtime at speed max: one 16-vCPU simulated VM, the primary
/// policy and 3 shadows, with one serial queue per vCPU and with a single queue.
func daemonThroughputBench() async throws {
    let n = option("--events", default: 10_000_000)
    let runs = option("--runs", default: 3)
    print("daemon runtime: \(n) events, 1 VM of 16 L1 vCPUs (cloud-mixed with 16 L1 vCPUs, 128 L2 vCPUs), speed max;")
    print("per-vm-table:8 + shadows per-vcpu-lru:3, single, map-per-entry; median of \(runs) runs")
    print("| queues | M events/s | lock wait per batch (µs) |")
    print("| --- | ---: | ---: |")
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
                id: "bench", workload: spec, policy: .seed, shadowPolicies: [.perVCPULRU(k: 3), .single, .mapPerEntry], speed: .max)
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
        print("| \(layout == .perVCPU ? "one per vCPU (16)" : "one for the VM") | \(fmt(median(rates))) | \(fmt(median(waits), 2)) |")
    }
}
