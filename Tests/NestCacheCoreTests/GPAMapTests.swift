import NestCacheCore
import NestCacheWorkload
import Testing

@Suite struct GPAMapTests {
    /// Random inserts, updates and removes against Dictionary, invariants after each step.
    @Test func behavesLikeADictionary() {
        var rng = SplitMix64(seed: 42)
        var map = GPAMap()
        var dict: [GPA: Int32] = [:]
        for step in 0..<20_000 {
            let g = GPA(UInt64(Int.random(in: 0..<300, using: &rng)) << 12)
            if Int.random(in: 0..<3, using: &rng) == 0 {
                #expect(map.removeValue(for: g) == dict.removeValue(forKey: g), "step \(step)")
            } else {
                let v = Int32(step)
                #expect(map.updateValue(v, for: g) == dict.updateValue(v, forKey: g), "step \(step)")
            }
            if step % 97 == 0 { map.checkInvariants() }
            #expect(map.count == dict.count)
        }
        for (g, v) in dict { #expect(map.value(for: g) == v) }
        map.checkInvariants()
    }
}
