import Foundation
import Logging
@testable import NestCacheCore
@testable import NestCacheDaemon
import NestCacheWorkload
import Testing

@Suite struct WorkloadRunnerTests {
    /// A native trace of a simulated two-VM workload, written to a temporary file.
    static func trace() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID().uuidString).trace").path
        var a = SimulationSpec()
        a.vm = "a"
        a.l1VCPUs = 4
        a.l2VCPUs = 40
        a.length = .events(20_000)
        a.scheduler = .random
        var b = a
        b.vm = "b"
        b.seed = 9
        b.scheduler = .pinned
        b.migrationRate = 0.1
        try NativeTraceWriter.write(to: path) { (w: inout NativeTraceWriter) throws(TraceError) in
            // Interleave the two VMs batch by batch, as one stream with times that never decrease.
            var registry = VMRegistry()
            let ia = registry.intern("a")
            registry.update(ia, a.vmInfo)
            let ib = registry.intern("b")
            registry.update(ib, b.vmInfo)
            var sa = Simulator(a)
            var sb = Simulator(b)
            var ba: [Event] = []
            var bb: [Event] = []
            var t: UInt64 = 0
            while true {
                let moreA = try sa.next(into: &ba, limit: 100)
                let moreB = try sb.next(into: &bb, limit: 70)
                if !moreA && !moreB { break }
                var merged = ba.map { e -> Event in var e = e; e.vm = ia; return e } + bb.map { e -> Event in var e = e; e.vm = ib; return e }
                for i in merged.indices { t += 1; merged[i].timeNs = t }
                try w.write(merged, registry: registry)
            }
            try w.finish(registry: registry)
        }
        return path
    }

    static func waitUntilDone(_ directory: VMDirectory, count: Int) async throws {
        for _ in 0..<500 {
            let vms = directory.all
            if vms.count == count, vms.allSatisfy({ $0.state == .done }) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("workload did not finish")
    }

    /// DESIGN §7: strict ordering gives exactly the counters of `nestcache replay`, for the primary
    /// and every shadow.
    @Test func strictOrderingEqualsOfflineReplay() async throws {
        let path = try Self.trace()
        let policies: [PolicySpec] = [.seed, .perVCPULRU(k: 3), .single, .mapPerEntry]
        let source = DaemonConfig.ReplaySource(
            trace: path, format: .native, speed: .max, loop: false, ordering: .strict, vm: nil,
            policy: policies[0], shadowPolicies: Array(policies.dropFirst()))
        let directory = VMDirectory()
        let runner = WorkloadRunner(kind: .replay(source), directory: directory, defaultPagesPerContext: 4, logger: Logger(label: "test"))
        runner.start()
        try await Self.waitUntilDone(directory, count: 2)

        for (i, spec) in policies.enumerated() {
            let files = TraceFileSequence(paths: [path], format: .native, vm: nil, invalidLines: .fail)
            var engines = [spec.makeEngine()]
            try NestCacheWorkload.Replay.drive(files, into: &engines)
            for vm in directory.all {
                guard let index = files.registry.index(of: vm.id) else { Issue.record("no \(vm.id)"); continue }
                let offline = engines[0].snapshot(vm: index)
                let live = vm.snapshot().stats[i]
                #expect(live.counters == offline.counters, "\(vm.id) \(spec)")
                #expect(live.gauges == offline.gauges, "\(vm.id) \(spec)")
            }
        }
        #expect(directory.all.map { $0.snapshot().events } == [20_000, 20_000])
        for vm in directory.all {
            vm.checkInvariants()
            // One lock wait per policy: the table's own lock, the lanes' for the per-vCPU ones.
            let s = vm.snapshot()
            #expect(s.lockWaits.count == policies.count)
            #expect(s.lockWaits.allSatisfy { $0.acquisitions > 0 })
            #expect(s.lockWait == s.lockWaits[0])
        }
    }

    /// Replays `path` (its 2 VMs) in concurrent ordering under `policies` (primary first) and
    /// checks DESIGN §4's identities on every snapshot taken while it runs; returns once done.
    static func concurrentReplayCheckingSnapshots(_ path: String, policies: [PolicySpec]) async throws -> VMDirectory {
        let source = DaemonConfig.ReplaySource(
            trace: path, format: .auto, speed: .max, loop: false, ordering: .concurrent, vm: nil,
            policy: policies[0], shadowPolicies: Array(policies.dropFirst()))
        let directory = VMDirectory()
        let runner = WorkloadRunner(kind: .replay(source), directory: directory, defaultPagesPerContext: 4, logger: Logger(label: "test"))
        runner.start()
        var checked = 0
        for _ in 0..<200 {
            for vm in directory.all {
                for s in vm.snapshot().stats {
                    #expect(s.brokenIdentity == nil, "\(vm.id): \(s.brokenIdentity ?? "")")
                    checked += 1
                }
            }
            if directory.all.count == 2, directory.all.allSatisfy({ $0.state == .done }) { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        try await waitUntilDone(directory, count: 2)
        #expect(checked > 0)
        return directory
    }


    /// Per-vCPU policies only, concurrent ordering: no VM-wide lock, and still nothing lost;
    /// migrations come from the feeder in stream order, so every policy counts the same ones
    /// as `nestcache replay`, and the VM-wide mapped count equals the lanes' sum.
    @Test func perVCPUPoliciesRunWithoutAVMLock() async throws {
        let path = try Self.trace()
        let policies: [PolicySpec] = [.perVCPULRU(k: 3), .single, .mapPerEntry]
        let directory = try await Self.concurrentReplayCheckingSnapshots(path, policies: policies)
        let files = TraceFileSequence(paths: [path], format: .native, vm: nil, invalidLines: .fail)
        var engines = policies.map { $0.makeEngine() }
        try NestCacheWorkload.Replay.drive(files, into: &engines)
        for vm in directory.all {
            vm.checkInvariants()
            let s = vm.snapshot()
            guard let index = files.registry.index(of: vm.id) else { Issue.record("no \(vm.id)"); continue }
            for (i, st) in s.stats.enumerated() {
                let offline = engines[i].snapshot(vm: index)
                // Per-vCPU policies depend on each vCPU's own order only: every counter is replay's.
                #expect(st.counters == offline.counters, "\(vm.id) \(policies[i])")
                #expect(st.gauges.contexts == offline.gauges.contexts && st.gauges.mappedPages == offline.gauges.mappedPages)
            }
            #expect(s.lockWaits.count == 3 && s.lockWaits.allSatisfy { $0 == s.lockWaits[0] && $0.acquisitions > 0 })
        }
    }

    /// A per-vCPU policy whose shard type the lanes have no array for (a new policy, one file
    /// and one registry row, its shard the generic `EngineShard`) runs boxed from the lane's
    /// `others`, with the same counters as the compact shard.
    @Test func aShardTypeWithoutALaneArrayRunsBoxed() async throws {
        let path = try Self.trace()
        let boxed = PolicySpec(kind: GenericShardPolicy.kind, parameter: 3)
        #expect(boxed.isPerVCPU)
        let directory = try await Self.concurrentReplayCheckingSnapshots(path, policies: [boxed, .perVCPULRU(k: 3)])
        for vm in directory.all {
            vm.checkInvariants()
            let s = vm.snapshot(vcpus: true)
            #expect(s.stats[0].counters == s.stats[1].counters, "\(vm.id)")
            #expect(s.stats[0].gauges == s.stats[1].gauges, "\(vm.id)")
            #expect(s.stats[0].counters.events == 20_000)
        }
    }

    /// Concurrent ordering may interleave vCPUs but loses nothing, and every snapshot taken while
    /// it runs satisfies the identities of DESIGN §4.
    @Test func concurrentOrderingLosesNothingAndSnapshotsAreConsistent() async throws {
        let path = try Self.trace()
        let directory = try await Self.concurrentReplayCheckingSnapshots(path, policies: [.seed, .perVCPULRU(k: 1)])
        for vm in directory.all {
            let s = vm.snapshot()
            #expect(s.events == 20_000)
            #expect(s.stats.allSatisfy { $0.counters.events == 20_000 && $0.counters.switches == s.stats[0].counters.switches })
            #expect(s.lockWait.acquisitions > 0)
        }
    }

    @Test func pauseStopsFeedingAndResumeGoesOn() async throws {
        var spec = SimulationSpec()
        spec.vm = "p"
        spec.length = .events(SimulationSpec.maxEvents)
        let vm = DaemonConfig.SimulatedVM(id: "p", workload: .simulate(spec), policy: .seed, shadowPolicies: [], speed: .factor(50))
        let directory = VMDirectory()
        let runner = WorkloadRunner(kind: .simulated(vm), directory: directory, defaultPagesPerContext: 4, logger: Logger(label: "test"))
        runner.start()
        try await Task.sleep(for: .milliseconds(200))
        runner.setPaused(true)
        try await Task.sleep(for: .milliseconds(100))
        let rt = try #require(directory.vm("p"))
        #expect(rt.state == .paused)
        let a = rt.snapshot().events
        try await Task.sleep(for: .milliseconds(200))
        #expect(rt.snapshot().events == a)
        runner.setPaused(false)
        try await Task.sleep(for: .milliseconds(300))
        #expect(rt.state == .running)
        #expect(rt.snapshot().events > a)
        runner.stop()
    }
}

/// `per-vcpu-lru` as a new per-vCPU policy's row would first be: the generic `EngineShard`.
enum GenericShardPolicy {
    static let kind = PolicyKind(
        name: "engine-shard-lru", parameter: PolicyKind.perVCPULRU.parameter, shortName: "eng", policy: PerVCPULRU.self,
        maxMappedContextsPerVCPU: { k in k + 1 },
        makeEngine: { spec, pages in PolicyKind.perVCPULRU.makeEngine(spec, pages) },
        makeShard: { spec, info, pages in EngineShard(info: info, defaultPagesPerContext: pages, policy: PerVCPULRU(k: spec.parameter)) })
}
