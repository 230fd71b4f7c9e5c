import Dispatch
import NIOCore

extension Daemon {
    /// How long one rendering of the metrics serves every reader (the socket's `show metrics`, the
    /// HTTP endpoint, the textfile). With 1,000 VMs the text is about 7 MB: 32 clients scraping at
    /// once each rendered it and copied it into a buffer of their own, and glibc kept the 350 MiB
    /// that took (`make soak`). Now they share one immutable `ByteBuffer` (copy-on-write: writing
    /// it to a channel copies nothing), at most this old, the same bound as the snapshots' own lag.
    static let metricsMaxAgeNs: UInt64 = 250_000_000

    /// The Prometheus text of every VM (DESIGN §8 `show metrics`), rendered at most once per
    /// `metricsMaxAgeNs` and shared.
    func metricsBuffer() -> ByteBuffer {
        let now = DispatchTime.now().uptimeNanoseconds
        return metricsCache.withLock { cache in
            if let c = cache, now &- c.atNs < Self.metricsMaxAgeNs { return c.buffer }
            let text = Metrics.render(snapshots(vcpus: true), uptimeSeconds: uptimeSeconds, version: Self.version)
            let buffer = ByteBuffer(string: text)
            cache = (now, buffer)
            return buffer
        }
    }
}
