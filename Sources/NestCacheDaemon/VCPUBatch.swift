import NestCacheCore
import NestCacheWorkload

/// One VM's events of one batch, split by vCPU once, on the feeder (`VCPUSplit`: each vCPU's
/// events contiguous with their migration flags, and the switches), so that each vCPU queue
/// applies its own events in place. (Each of 16 queues scanning the whole batch for its own
/// events cost more than the engines' work; copying its own events out of a chain through the
/// batch, on the queues, a tenth of the CPU: BENCHMARKS.md, "nestcache-bench daemon".)
///
/// A simulated VM's batch is split by the simulator as it generates; another source's by
/// `VCPUSplit.fill` with the VM's `SwitchTracker`. The storage stays from batch to batch (the
/// runner keeps a few for reuse): no allocation per batch once grown.
///
/// Written only by the feeder, and only while none of its closures is queued; the vCPU queues'
/// closures read it after `async` handed it to them (Dispatch orders the writes before), and
/// the feeder writes it again only after the batch's group has notified.
final class VCPUBatch: @unchecked Sendable {
    var split = VCPUSplit()
}
