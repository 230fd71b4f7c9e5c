import NestCacheCore

/// The break-even map+unmap cost of DESIGN §11: how cheap mapping and unmapping a page would have
/// to be for a policy's saving over a baseline to stop mattering.
///
/// **The cost.** `c` is the cost, in ns, of mapping one page and later unmapping it, split
/// between the two at the cost model's own ratio: `map_ns = α·c`, `unmap_ns = (1 − α)·c`, with
/// `α = map_ns / (map_ns + unmap_ns)` of the model (0.6 by default: 300 and 200 ns; ½ when both
/// are 0). Lookups keep their modelled cost. DESIGN §4's `overhead_ns` per nested entry is then
/// a line in `c`:
///
///     overhead(c) = c·W + L     W = (α·map_pages + (1 − α)·unmap_pages) / entries
///                               L = lookups · lookup_ns / entries
///
/// (`W`: pages mapped and unmapped per entry, each side weighted by its share of `c`; since
/// `unmap_pages` trails `map_pages` only by the pages still mapped at the end, `W` is about the
/// pages mapped per entry.)
///
/// **The criterion.** A policy P "matters" against a baseline B at cost `c` while it saves at
/// least 1% of B's overhead: `overhead_B(c) − overhead_P(c) >= 0.01 · overhead_B(c)`. The
/// break-even cost `c*` is where the saving falls to exactly that share:
///
///     c·(W_B − W_P) − (L_P − L_B) = s·(c·W_B + L_B)        s = 0.01
///     c* = (L_P − L_B + s·L_B) / (W_B − W_P − s·W_B)
///
/// The relative saving `(c·ΔW − ΔL) / (c·W_B + L_B)` (ΔW = W_B − W_P, ΔL = L_P − L_B) is
/// monotone in `c`, rising when `ΔW·L_B + ΔL·W_B > 0`, so below `c*` the policy saves less than
/// 1% and above it at least 1%. Cases:
/// - `ΔW <= s·W_B`: even infinitely costly mapping never makes P save 1%: `.never`.
/// - numerator `<= 0` (P does no more lookups than B, and B has none): P saves at least 1% at
///   every cost above 0: `c* = 0`.
///
/// Only the lookups are a cost that does not scale with `c` in the model, so against `single`
/// (the same lookups as every caching policy) `c*` is proportional to `lookup_ns`; the report
/// says so next to the number.
public enum BreakEven {
    /// The share of the baseline's overhead below which a saving does not matter (1%).
    public static let defaultShare = 0.01

    /// One policy's overhead per entry as a line in `c`.
    public struct Line: Sendable, Equatable {
        /// Pages mapped and unmapped per entry, weighted (`W`).
        public var pagesPerEntry: Double
        /// ns per entry that do not scale with `c` (`L`: lookups).
        public var fixedNsPerEntry: Double

        public init(pagesPerEntry: Double, fixedNsPerEntry: Double) {
            self.pagesPerEntry = pagesPerEntry
            self.fixedNsPerEntry = fixedNsPerEntry
        }

        /// `c·W + L`.
        public func overhead(atCost c: Double) -> Double { c * pagesPerEntry + fixedNsPerEntry }
    }

    /// What `c*` came to.
    public enum Outcome: Sendable, Equatable {
        /// The saving is below the share for every `c` below this (ns per page mapped and
        /// unmapped), and at least the share above it.
        case below(Double)
        /// The saving never reaches the share, whatever `c`.
        case never

        /// The cost, or nil for `.never`.
        public var cost: Double? {
            if case .below(let c) = self { return c }
            return nil
        }
    }

    /// `α`: the share of `c` that is the map side (½ when the model's map and unmap costs are 0).
    public static func mapShare(_ cost: CostModel) -> Double {
        let sum = cost.mapNs + cost.unmapNs
        return sum > 0 ? cost.mapNs / sum : 0.5
    }

    /// `map_ns + unmap_ns` of the model: the `c` it assumes.
    public static func modelCost(_ cost: CostModel) -> Double { cost.mapNs + cost.unmapNs }

    /// The line of `stats` under `cost`'s split and lookup cost; nil without entries.
    public static func line(_ stats: StatsSnapshot, cost: CostModel) -> Line? {
        let c = stats.counters
        guard c.entries > 0 else { return nil }
        let a = mapShare(cost)
        let entries = Double(c.entries)
        let lookups = stats.countsLookups ? Double(c.switches) : 0
        return Line(
            pagesPerEntry: (a * Double(c.mapPages) + (1 - a) * Double(c.unmapPages)) / entries,
            fixedNsPerEntry: lookups * cost.lookupNs / entries)
    }

    /// `c*` of `policy` against `baseline` (see the type's comment).
    /// - Complexity: O(1).
    public static func cost(of policy: Line, over baseline: Line, share s: Double = defaultShare) -> Outcome {
        let denominator = baseline.pagesPerEntry - policy.pagesPerEntry - s * baseline.pagesPerEntry
        // A saving of exactly the share (up to rounding) is reached only in the limit: never.
        guard denominator > 1e-12 * max(1, baseline.pagesPerEntry) else { return .never }
        let numerator = policy.fixedNsPerEntry - baseline.fixedNsPerEntry + s * baseline.fixedNsPerEntry
        return .below(max(0, numerator / denominator))
    }

    /// `overhead_B(c) − overhead_P(c)`, ns per entry.
    public static func saving(of policy: Line, over baseline: Line, atCost c: Double) -> Double {
        baseline.overhead(atCost: c) - policy.overhead(atCost: c)
    }
}
