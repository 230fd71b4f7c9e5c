/// Portable pseudo-random numbers for the simulator (DESIGN §6: the same parameters and seed give
/// the same stream on every machine).
///
/// Why not the standard library: `SystemRandomNumberGenerator` is not seedable, and the algorithms
/// behind `Int.random(in:using:)`, `Double.random(in:using:)` and `shuffle(using:)` are not part
/// of Swift's API contract — they have changed between releases and may again, which would change
/// every simulated stream. So everything the simulator draws goes through the three functions
/// here: `next()` (xoshiro256**), `nextDouble()` and `bounded(_:)`, whose algorithms are written
/// down below and pinned by reference-vector tests. Float arithmetic on the results uses only
/// `+ - * /` and conversions, which IEEE 754 defines exactly on every platform (Swift does not
/// contract `a * b + c` into a fused multiply-add on its own); no libm function (`log`, `exp`,
/// `pow`) is used, because libm results differ between C libraries in the last bit.

/// SplitMix64 (Steele, Lea, Flood 2014; Vigna's `splitmix64.c`): a 64-bit counter passed through
/// a mixing function. Used here only to expand a 64-bit seed into xoshiro's 256-bit state, as
/// the xoshiro authors recommend.
///
/// Reference: seed 1234567 gives 6457827717110365317, 3203168211198807973, 9817491932198370423,
/// 4593380528125082431, 16408922859458223821 (Rosetta Code, "Pseudo-random numbers/Splitmix64").
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** 1.0 (Blackman and Vigna 2018, `xoshiro256starstar.c`): 256 bits of state, period
/// 2^256 - 1, passes BigCrush; about 1 ns per output.
///
/// Reference: the state {1, 2, 3, 4} gives 11520, 0, 1509978240, 1215971899390074240, ... (the
/// test vector of Rust's `rand_xoshiro`, produced with the reference C code).
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var s0: UInt64
    public private(set) var s1: UInt64
    public private(set) var s2: UInt64
    public private(set) var s3: UInt64

    /// Seeds the state with four consecutive SplitMix64 outputs of `seed` (never all zero:
    /// SplitMix64's output function is a bijection, so four consecutive outputs are distinct).
    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next()
        s1 = sm.next()
        s2 = sm.next()
        s3 = sm.next()
    }

    /// Sets the raw state (reference-vector tests). The all-zero state is a fixed point; it is
    /// accepted but never produced by `init(seed:)`.
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        (s0, s1, s2, s3) = state
    }

    @inline(__always)
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// A double in [0, 1): the top 53 bits of `next()` times 2^-53, the xoshiro authors' recipe.
    /// Every result is a multiple of 2^-53, computed exactly.
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform integer in `0 ..< bound` (`bound > 0`), by Lemire's multiply-and-reject
    /// ("Fast random integer generation in an interval", ACM TOMACS 2019): the high word of
    /// `next() * bound`, rejecting the few low words that would bias it. No division on the
    /// common path; exactly uniform.
    @inline(__always)
    public mutating func bounded(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bounded(0)")
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound  // 2^64 mod bound
            while m.low < threshold {
                m = next().multipliedFullWidth(by: bound)
            }
        }
        return m.high
    }

    /// True with probability `p` as a threshold on `next()`: see `Chance`.
    @inline(__always)
    public mutating func happens(_ chance: Chance) -> Bool {
        chance.isCertain || next() < chance.threshold
    }
}

/// A probability turned, once, into an integer threshold on 64-bit outputs, so each draw is one
/// integer compare: true iff `next() < threshold` (probability `threshold / 2^64`), or always
/// when `p >= 1`.
public struct Chance: Sendable, Equatable {
    public let threshold: UInt64
    public let isCertain: Bool

    /// `p` in [0, 1]; values outside are clamped.
    public init(_ p: Double) {
        if !(p > 0) {
            threshold = 0
            isCertain = false
        } else if p >= 1 {
            threshold = .max
            isCertain = true
        } else {
            // p * 2^64 < 2^64 for p < 1 (p <= 1 - 2^-53), so the conversion is in range; exact
            // because p * 2^64 only changes the exponent.
            threshold = UInt64(p * 0x1.0p64)
            isCertain = false
        }
    }
}

/// Deterministic `log` and `exp` from `+ - * /` only (see the top of this file: libm's are not
/// the same on every machine). Accurate to a few ulps, which is plenty for Zipf weights; what
/// matters is that every machine computes the same bits.
enum PortableMath {
    static let ln2 = 0.693_147_180_559_945_3

    /// ln(x) for finite x > 0.
    static func log(_ x: Double) -> Double {
        precondition(x > 0 && x.isFinite, "log(\(x))")
        // x = m * 2^e with m in [1, 2): exact decomposition.
        var e = Double(Int(x.exponent))
        var m = x.significand
        // Move m into [sqrt(1/2), sqrt(2)) so the series below converges fast.
        if m > 1.414_213_562_373_095_1 {
            m /= 2
            e += 1
        }
        // ln m = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172: terms shrink by z^2 < 0.03.
        let z = (m - 1) / (m + 1)
        let z2 = z * z
        var term = z
        var sum = 0.0
        var k = 1.0
        while true {
            let next = sum + term / k
            if next == sum { break }
            sum = next
            term *= z2
            k += 2
        }
        return e * ln2 + 2 * sum
    }

    /// e^y for finite y; 0 below about -745, +inf above about 709.
    static func exp(_ y: Double) -> Double {
        precondition(y.isFinite, "exp(\(y))")
        if y < -745.2 { return 0 }
        if y > 709.8 { return .infinity }
        // y = k ln2 + r, r in about [-ln2/2, ln2/2]; e^y = 2^k e^r.
        let k = (y / ln2).rounded(.toNearestOrEven)
        let r = y - k * ln2
        // Taylor series of e^r, |r| < 0.35: converges in under 20 terms.
        var term = 1.0
        var sum = 1.0
        var n = 1.0
        while true {
            term = term * r / n
            let next = sum + term
            if next == sum { break }
            sum = next
            n += 1
        }
        // Exact scaling by 2^k (two steps keep subnormal results right enough for weights).
        let ki = Int(k)
        if ki < -1000 {
            return Double(sign: .plus, exponent: ki + 1000, significand: sum) * 0x1.0p-1000
        }
        return Double(sign: .plus, exponent: ki, significand: sum)
    }

    /// x^(-s) for x >= 1, s >= 0.
    static func inversePower(_ x: Double, _ s: Double) -> Double {
        s == 0 ? 1 : exp(-s * log(x))
    }
}
