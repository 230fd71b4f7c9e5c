import Foundation
@testable import NestCacheTOML
import Testing

@Suite struct TOMLParserTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyValueKindWithItsLine() throws {
        let doc = try TOMLParser.parse("""
            # comment
            s = "a\\tb\\u00e9\\U0001F600"   # trailing comment
            l = 'C:\\path'
            m = \"\"\"
            one \\
                two\"\"\"
            ml = '''
            x''y'''
            i = -1_000
            h = 0xff
            o = 0o17
            b = 0b101
            f = 6.5e-1
            inf = -inf
            t = true
            d = 1979-05-27 07:32:00Z
            lt = 07:32:00.5
            a = [1, "two", [3.0],
                 { x = 1 },  # comments and newlines inside arrays
            ]
            it = { a.b = 1, c = "d" }
            "quoted key" = 1
            dotted . key = 2
            """)
        #expect(doc.keys == ["s", "l", "m", "ml", "i", "h", "o", "b", "f", "inf", "t", "d", "lt", "a", "it", "quoted key", "dotted"])
        #expect(doc["s"]?.string == "a\tbé😀" && doc["s"]?.line == 2)
        #expect(doc["l"]?.string == "C:\\path")
        #expect(doc["m"]?.string == "one two" && doc["m"]?.line == 4)
        #expect(doc["ml"]?.string == "x''y" && doc["ml"]?.line == 7)
        #expect(doc["i"]?.int == -1000 && doc["h"]?.int == 255 && doc["o"]?.int == 15 && doc["b"]?.int == 5)
        #expect(doc["f"]?.double == 0.65 && doc["inf"]?.double == -.infinity && doc["t"]?.bool == true)
        #expect(doc["d"]?.kind == .datetime("1979-05-27 07:32:00Z") && doc["lt"]?.kind == .datetime("07:32:00.5"))
        #expect(doc["a"]?.array?.count == 4 && doc["a"]?.array?[3].table?["x"]?.int == 1 && doc["a"]?.line == 18)
        #expect(doc["it"]?.table?["a"]?.table?["b"]?.int == 1)
        #expect(doc["quoted key"]?.int == 1 && doc["dotted"]?.table?["key"]?.int == 2 && doc["dotted"]?.line == 23)
    }

    @Test func tablesAndArraysOfTablesRememberTheirHeaderLines() throws {
        let doc = try TOMLParser.parse("""
            [daemon]
            socket = "/s"

            [[vm]]
            id = "a"
            [vm.simulate]
            seed = 1
            [[vm]]
            id = "b"
            [x.y.z]
            [x]
            w = 1
            """)
        #expect(doc.keys == ["daemon", "vm", "x"])
        #expect(doc["daemon"]?.line == 1 && doc["daemon"]?.table?["socket"]?.line == 2)
        let vms = try #require(doc["vm"]?.array)
        #expect(vms.map(\.line) == [4, 8])
        #expect(vms[0].table?["simulate"]?.line == 6 && vms[0].table?["simulate"]?.table?["seed"]?.int == 1)
        #expect(vms[1].table?["id"]?.string == "b" && vms[1].table?["simulate"] == nil)
        // A table made on the way to [x.y.z] takes the line of its own header when it gets one.
        #expect(doc["x"]?.line == 11 && doc["x"]?.table?["y"]?.table?["z"]?.table?.isEmpty == true)
    }

    /// Each error names its line and what was wrong. The first is the typo that made TOMLKit's
    /// bundled toml++ abort the daemon (issue 8).
    @Test(arguments: [
        ("[.vm]]\nid = 1", 1, "expected a key"),
        ("[daemon]\nx = 1\n[daemon\n", 3, "expected ']' to close the table header"),
        ("a = 1\na = 2", 2, "duplicate key a (first at line 1)"),
        ("[t]\na.b = 1\na.b = 2", 3, "duplicate key t.a.b (first at line 2)"),
        ("[a]\n[a]", 2, "table [a] is defined twice (first at line 1)"),
        ("[a.b]\nc = 1\n[a]\nb.d = 1", 4, "cannot add to table a.b with a dotted key"),
        ("a = [1]\n[[a]]", 2, "a is already an array"),
        ("[[a]]\n[a]", 2, "[a] is an array of tables"),
        ("a = {b = 1}\n[a.c]", 2, "a is already a table"),
        ("a = {b = 1,}", 1, "expected a key"),
        ("a = {b = 1\n}", 1, "expected ',' or '}'"),
        ("a = [1 2]", 1, "expected ',' or ']'"),
        ("a = \"open\nb = 1", 1, "unterminated string"),
        ("a = \"\\q\"", 1, "unknown escape"),
        ("a = \"\\uD800\"", 1, "names no Unicode scalar value"),
        ("a = 01", 1, "'01' is not a valid value"),
        ("a = 1__0", 1, "not a valid value"),
        ("a = 9223372036854775808", 1, "not a valid value"),
        ("a = 1e999", 1, "not a valid value"),
        ("a = 2023-02-29", 1, "not a valid date"),
        ("a = 1\n\nb = ", 3, "expected a value"),
        ("a = 1 b = 2", 1, "expected the end of the line"),
        ("a = 1\r\nb = 2\r", 2, "carriage return"),
        ("# bell \u{07}\n", 1, "control character"),
        ("= 1", 1, "expected a key"),
    ])
    func errorsNameTheLine(_ text: String, _ line: Int, _ fragment: String) {
        do {
            let doc = try TOMLParser.parse(text)
            Issue.record("accepted \(text.debugDescription): \(doc)")
        } catch {
            #expect(error.line == line, "\(text.debugDescription): \(error)")
            #expect(error.message.contains(fragment), "\(text.debugDescription): \(error)")
        }
    }

    @Test func invalidUTF8IsRefusedWithItsLine() {
        #expect(throws: TOMLError(line: 2, "invalid UTF-8 (byte 0xff)")) { try TOMLParser.parse(bytes: Array("a = 1\nb = \"".utf8) + [0xFF, 0x22]) }
        // Overlong '/' and a UTF-16 surrogate encoded in UTF-8.
        #expect(throws: TOMLError.self) { try TOMLParser.parse(bytes: [0x61, 0x3D, 0x22, 0xC0, 0xAF, 0x22]) }
        #expect(throws: TOMLError.self) { try TOMLParser.parse(bytes: [0x61, 0x3D, 0x22, 0xED, 0xA0, 0x80, 0x22]) }
    }

    /// Nesting is bounded, so no input can exhaust the stack (a fuzzer's first find in most
    /// recursive-descent parsers).
    @Test func deepNestingIsAnErrorNotACrash() {
        for text in ["a = " + String(repeating: "[", count: 100_000),
                     "a = " + String(repeating: "{b=", count: 100_000),
                     "[" + Array(repeating: "a", count: 10_000).joined(separator: ".") + "]",
                     Array(repeating: "a", count: 10_000).joined(separator: ".") + " = 1"] {
            #expect(throws: TOMLError.self) { try TOMLParser.parse(text) }
        }
        #expect(throws: Never.self) {
            try TOMLParser.parse("a = " + String(repeating: "[", count: TOMLParser.maxDepth) + String(repeating: "]", count: TOMLParser.maxDepth))
        }
    }

    /// Mutations of the shipped configuration (seeded; the seed is in every failure): each one
    /// parses or throws a `TOMLError` whose line is inside the text. A crash fails the run.
    @Test func mutationsOfTheShippedConfigNeverEscape() throws {
        let original = Array(try String(contentsOf: Self.root.appendingPathComponent("config/nestcached.toml"), encoding: .utf8).utf8)
        let specials = Array("[]{}\"'=.#,\\\n\r\t 0xe_+-:".utf8) + [0x00, 0x7F, 0xFF, 0xC3]
        var rng = SplitMix(seed: 0x70_6D_6C)
        var accepted = 0, refused = 0
        for round in 0..<4000 {
            var bytes = original
            for _ in 0...(rng.next() % 4) {
                let at = Int(rng.next() % UInt64(bytes.count + 1))
                switch rng.next() % 4 {
                case 0 where at < bytes.count: bytes[at] = specials[Int(rng.next() % UInt64(specials.count))]
                case 1: bytes.insert(specials[Int(rng.next() % UInt64(specials.count))], at: at)
                case 2 where at < bytes.count: bytes.remove(at: at)
                default:
                    let from = Int(rng.next() % UInt64(bytes.count))
                    bytes.insert(contentsOf: bytes[from..<min(bytes.count, from + Int(rng.next() % 40))], at: at)
                }
            }
            let lines = bytes.count(where: { $0 == 0x0A }) + 1
            do {
                _ = try TOMLParser.parse(bytes: bytes)
                accepted += 1
            } catch {
                refused += 1
                #expect((1...lines).contains(error.line), "round \(round): line \(error.line) of \(lines): \(error)")
            }
        }
        // Both outcomes occur, so the mutations reach past the first byte of the grammar.
        #expect(accepted > 100 && refused > 1000, "accepted \(accepted), refused \(refused)")
    }
}

/// The tests' own seeded generator (SplitMix64), so a failure's round reproduces.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
