import NestCacheCore
import Testing

@testable import NestCacheWorkload

@Test func selftestLinesFollowTheSelftestsAssertions() throws {
    // vmx_l2_switch_test's check_stats: n <= 8: reuse n(s-1), recycle 0; n > 8: sched reuse
    // 8(s-1), recycle 0; migrate reuse 0, recycle ns - 8.
    let lines = try SelftestLines.lines(SelftestLines.defaultRuns)
    #expect(lines.count == 30)
    var i = 0
    for mode in ["migrate", "sched"] {
        for n in 2...16 {
            let s = 4
            let (reuse, recycle) = n <= 8 ? (n * (s - 1), 0) : mode == "sched" ? (8 * (s - 1), 0) : (0, n * s - 8)
            #expect(lines[i] == "vmx_l2_switch_test 4 switches with \(n) L2 vCPUS (vmx \(mode)) reuse \(reuse) recycle \(recycle)")
            i += 1
        }
    }
}
