import Foundation
import NestCacheWorkload
import Testing

@Suite struct JSONTests {
    /// What Foundation's parser reads back from our serialization.
    static func parsed(_ v: JSON) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(v.serialized().utf8), options: [.fragmentsAllowed])
    }

    /// Every string survives a round trip through a real parser: quotes, backslashes, every
    /// control character, non-ASCII, and nothing is split across lines.
    @Test func stringsRoundTrip() throws {
        var all = (0..<0x80).map { String(UnicodeScalar(UInt8($0))) }.joined()
        all += "é ü ✓ 𝄞 \u{7F} \u{2028}"
        for s in [all, "", "\"", "\\", "a\"b\\c\nd\re\tf"] {
            let text = JSON.string(s).serialized()
            #expect(!text.contains("\n") && !text.contains("\r"))
            #expect(try Self.parsed(.string(s)) as? String == s)
        }
        #expect(JSON.string("\u{1}").serialized() == "\"\\u0001\"")
    }

    /// Objects keep their order (output never depends on hashing) and nest.
    @Test func objectsKeepOrderAndNest() throws {
        let v = JSON.object([("z", .uint(1)), ("a", .array([.null, .bool(true), .int(-3)])), ("m", .object([]))])
        #expect(v.serialized() == #"{"z":1,"a":[null,true,-3],"m":{}}"#)
        let back = try #require(try Self.parsed(v) as? [String: Any])
        #expect(back["z"] as? Int == 1)
        #expect((back["a"] as? [Any])?.count == 3)
    }

    /// Numbers: integers exact to 64 bits, fractions to 6 decimals, non-finite as null.
    @Test func numbers() {
        #expect(JSON.uint(UInt64.max).serialized() == "18446744073709551615")
        #expect(JSON.int(Int64.min).serialized() == "-9223372036854775808")
        #expect(JSON.double(2).serialized() == "2")
        #expect(JSON.double(-0.5).serialized() == "-0.5")
        #expect(JSON.double(1.0 / 3).serialized() == "0.333333")
        #expect(JSON.double(2.0000004).serialized() == "2")
        #expect(JSON.double(.nan).serialized() == "null")
        #expect(JSON.double(-.infinity).serialized() == "null")
        #expect(JSON.number(nil).serialized() == "null")
        #expect(JSON.double(1e20).serialized() == "1e+20")
    }

    @Test func format6DropsTrailingZeros() {
        #expect(format6(0) == "0")
        #expect(format6(0.1) == "0.1")
        #expect(format6(-1.25) == "-1.25")
        #expect(format6(0.0000004) == "0")
        #expect(format6(0.0000005) == "0.000001")
        #expect(format6(123456.654321) == "123456.654321")
    }

    @Test func equalityIsBySerialization() {
        #expect(JSON.object([("a", .uint(1))]) == JSON.object([("a", .uint(1))]))
        #expect(JSON.object([("a", .uint(1)), ("b", .null)]) != JSON.object([("b", .null), ("a", .uint(1))]))
    }
}
