/// A TOML 1.0 parser that cannot crash: every sequence of bytes ends in a document or a
/// `TOMLError` with the line and what was expected there.
///
/// Why our own: nestcached used TOMLKit, whose bundled toml++ hits a C++ assertion (SIGABRT) on a
/// one-character typo such as `[.vm]]`, killing a running daemon at reload. This parser is a
/// plain recursive descent over bytes, bounded in depth (`maxDepth`) so that no input can
/// overflow the stack, and it records the line of every key, which the configuration's error
/// messages need (docs/DESIGN-NOTES.md).
///
/// Complexity: O(n) in the input's length (each byte is read a bounded number of times), plus a
/// dictionary operation per key.
public enum TOMLParser {
    /// Deepest nesting of tables, arrays, inline tables and dotted key parts in any one path.
    public static let maxDepth = 64

    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var text = text
        return try text.withUTF8 { buffer in Result { () throws(TOMLError) in try parse(bytes: buffer) } }.get()
    }

    public static func parse(bytes: [UInt8]) throws(TOMLError) -> TOMLTable {
        try bytes.withUnsafeBufferPointer { buffer in Result { () throws(TOMLError) in try parse(bytes: buffer) } }.get()
    }

    public static func parse(bytes: UnsafeBufferPointer<UInt8>) throws(TOMLError) -> TOMLTable {
        try validateUTF8(bytes)
        var scanner = Scanner(bytes: bytes)
        return try scanner.document()
    }

    /// Rejects anything that is not well-formed UTF-8 (overlong forms and surrogates included),
    /// naming the line, before the grammar sees a byte.
    public static func validateUTF8(_ bytes: [UInt8]) throws(TOMLError) {
        try bytes.withUnsafeBufferPointer { b in Result { () throws(TOMLError) in try validateUTF8(b) } }.get()
    }

    static func validateUTF8(_ b: UnsafeBufferPointer<UInt8>) throws(TOMLError) {
        var i = 0
        var line = 1
        while i < b.count {
            let c = b[i]
            if c < 0x80 {
                if c == 0x0A { line += 1 }
                i += 1
                continue
            }
            let length: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: throw TOMLError(line: line, "invalid UTF-8 (byte 0x\(String(c, radix: 16)))")
            }
            guard i + length <= b.count else { throw TOMLError(line: line, "invalid UTF-8 (truncated sequence)") }
            for j in 1..<length {
                let cc = b[i + j]
                let (lo, hi) = j == 1 ? (lower, upper) : (0x80, 0xBF)
                guard cc >= lo && cc <= hi else { throw TOMLError(line: line, "invalid UTF-8 (byte 0x\(String(cc, radix: 16)))") }
            }
            i += length
        }
    }
}

// MARK: - The mutable tree built while parsing

/// A table under construction. How it came to exist decides what may still be added to it
/// (TOML 1.0 §Table): a table named by a header is defined once; one created on the way to a
/// header (`a` in `[a.b]`) may be defined later by its own header; one created by dotted keys
/// can be extended only by dotted keys of the same section, or have sub-tables by header.
private final class TableNode {
    enum Origin { case header, implicit, dotted }
    enum Entry {
        case value(TOMLValue)  // scalars, arrays and inline tables: frozen once written
        case table(TableNode)
        case tables([TableNode], line: Int)  // an array of tables, appended to by [[header]]
    }

    var origin: Origin
    var line: Int
    var keys: [String] = []
    var entries: [String: Entry] = [:]

    init(_ origin: Origin, line: Int) {
        self.origin = origin
        self.line = line
    }

    subscript(key: String) -> Entry? { entries[key] }

    func set(_ key: String, _ entry: Entry) {
        if entries.updateValue(entry, forKey: key) == nil { keys.append(key) }
    }

    func frozen() -> TOMLTable {
        var t = TOMLTable()
        for k in keys {
            guard let e = entries[k] else { continue }
            switch e {
            case .value(let v): t.insert(k, v)
            case .table(let n): t.insert(k, TOMLValue(.table(n.frozen()), line: n.line))
            case .tables(let ns, let line):
                t.insert(k, TOMLValue(.array(ns.map { TOMLValue(.table($0.frozen()), line: $0.line) }), line: line))
            }
        }
        return t
    }
}

private func describe(_ path: [String]) -> String { path.map(quotedIfNeeded).joined(separator: ".") }

private func quotedIfNeeded(_ key: String) -> String {
    let bare = !key.isEmpty && key.utf8.allSatisfy(isBareKeyByte)
    return bare ? key : "\"\(key)\""
}

private func isBareKeyByte(_ c: UInt8) -> Bool {
    (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
        || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
}

// MARK: - The scanner

private struct Scanner {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0
    var line = 1

    init(bytes: UnsafeBufferPointer<UInt8>) {
        b = bytes
        // A UTF-8 byte-order mark is not content.
        if b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { i = 3 }
    }

    var atEnd: Bool { i >= b.count }
    func peek(_ off: Int = 0) -> UInt8? { i + off < b.count ? b[i + off] : nil }
    func fail(_ message: String) -> TOMLError { TOMLError(line: line, message) }

    func found() -> String {
        guard let c = peek() else { return "the end of the file" }
        switch c {
        case 0x0A, 0x0D: return "the end of the line"
        case 0x20...0x7E: return "'\(Character(Unicode.Scalar(c)))'"
        default: return "byte 0x\(String(c, radix: 16))"
        }
    }

    mutating func skipSpaces() {
        while let c = peek(), c == 0x20 || c == 0x09 { i += 1 }
    }

    /// A newline (LF or CRLF) here, consumed; false if there is none.
    mutating func newline() throws(TOMLError) -> Bool {
        if peek() == 0x0A { i += 1; line += 1; return true }
        if peek() == 0x0D {
            guard peek(1) == 0x0A else { throw fail("a carriage return must be followed by a line feed") }
            i += 2; line += 1
            return true
        }
        return false
    }

    mutating func comment() throws(TOMLError) {
        guard peek() == UInt8(ascii: "#") else { return }
        i += 1
        while let c = peek(), c != 0x0A {
            if c == 0x0D && peek(1) == 0x0A { break }
            if isControl(c) { throw fail("control character 0x\(String(c, radix: 16)) in a comment") }
            i += 1
        }
    }

    /// After a key/value pair or a header: spaces, an optional comment, then the end of the line.
    mutating func endOfLine(after what: String) throws(TOMLError) {
        skipSpaces()
        try comment()
        guard try newline() || atEnd else { throw fail("expected the end of the line after \(what), found \(found())") }
    }

    /// Spaces, newlines and comments, inside arrays.
    mutating func skipBlank() throws(TOMLError) {
        while true {
            skipSpaces()
            try comment()
            guard try newline() else { return }
        }
    }

    // MARK: Document

    mutating func document() throws(TOMLError) -> TOMLTable {
        let root = TableNode(.header, line: 1)
        var current = root
        var section: [String] = []  // the current table's path, for messages
        while true {
            skipSpaces()
            guard let c = peek() else { break }
            if c == UInt8(ascii: "#") {
                try comment()
                guard try newline() || atEnd else { throw fail("expected the end of the line") }
            } else if try newline() {
                continue
            } else if c == UInt8(ascii: "[") {
                (current, section) = try header(root)
            } else {
                let (key, value, keyLine) = try keyValue(depth: 0)
                try insert(value, at: key, into: current, section: section, line: keyLine)
                try endOfLine(after: "the value of \(describe(key))")
            }
        }
        return root.frozen()
    }

    /// `[a.b]` or `[[a.b]]`: the table that the following keys go into.
    mutating func header(_ root: TableNode) throws(TOMLError) -> (TableNode, [String]) {
        let headerLine = line
        i += 1
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { i += 1 }
        skipSpaces()
        let path = try key()
        skipSpaces()
        let close = isArray ? "]]" : "]"
        guard peek() == UInt8(ascii: "]"), !isArray || peek(1) == UInt8(ascii: "]") else {
            throw fail("expected '\(close)' to close the table header [\(isArray ? "[" : "")\(describe(path)), found \(found())")
        }
        i += isArray ? 2 : 1
        try endOfLine(after: "the table header")

        var node = root
        for (n, k) in path.dropLast().enumerated() {
            switch node[k] {
            case nil:
                let t = TableNode(.implicit, line: headerLine)
                node.set(k, .table(t))
                node = t
            case .table(let t): node = t
            case .tables(let ts, _):
                guard let last = ts.last else { throw fail("internal: empty array of tables") }
                node = last
            case .value(let v):
                throw fail("\(describe(Array(path[...n]))) is already \(v.typeName) (line \(v.line)), not a table")
            }
        }
        guard let last = path.last else { throw fail("expected a key in the table header") }
        let name = describe(path)
        switch (node[last], isArray) {
        case (nil, false):
            let t = TableNode(.header, line: headerLine)
            node.set(last, .table(t))
            return (t, path)
        case (nil, true):
            let t = TableNode(.header, line: headerLine)
            node.set(last, .tables([t], line: headerLine))
            return (t, path)
        case (.table(let t), false):
            guard t.origin == .implicit else { throw fail("table [\(name)] is defined twice (first at line \(t.line))") }
            t.origin = .header
            t.line = headerLine
            return (t, path)
        case (.tables(var ts, let firstLine), true):
            let t = TableNode(.header, line: headerLine)
            ts.append(t)
            node.set(last, .tables(ts, line: firstLine))
            return (t, path)
        case (.tables(_, let firstLine), false):
            throw fail("[\(name)] is an array of tables ([[\(name)]] at line \(firstLine)), not a table")
        case (.table(let t), true):
            throw fail("[[\(name)]] is already a table (line \(t.line)), not an array of tables")
        case (.value(let v), _):
            throw fail("\(name) is already \(v.typeName) (line \(v.line)); a \(isArray ? "static array" : "value") cannot be reopened by a header")
        }
    }

    /// Files `value` under a possibly dotted key in `table` (a section or an inline table).
    mutating func insert(_ value: TOMLValue, at key: [String], into table: TableNode, section: [String],
                         line keyLine: Int) throws(TOMLError) {
        var node = table
        let key = section + key  // only for messages: `node` starts at the section
        for (n, k) in key.enumerated().dropFirst(section.count).dropLast() {
            switch node[k] {
            case nil:
                let t = TableNode(.dotted, line: keyLine)
                node.set(k, .table(t))
                node = t
            case .table(let t) where t.origin == .dotted:
                node = t
            case .table(let t):
                throw TOMLError(line: keyLine, "cannot add to table \(describe(Array(key[...n]))) with a dotted key: it is defined by a header (line \(t.line))")
            case .tables(_, let l):
                throw TOMLError(line: keyLine, "cannot add to \(describe(Array(key[...n]))) with a dotted key: it is an array of tables (line \(l))")
            case .value(let v):
                throw TOMLError(line: keyLine, "\(describe(Array(key[...n]))) is already \(v.typeName) (line \(v.line)), not a table")
            }
        }
        guard let last = key.last, key.count > section.count else { throw TOMLError(line: keyLine, "expected a key") }
        if let existing = node[last] {
            let l: Int
            switch existing {
            case .value(let v): l = v.line
            case .table(let t): l = t.line
            case .tables(_, let x): l = x
            }
            throw TOMLError(line: keyLine, "duplicate key \(describe(key)) (first at line \(l))")
        }
        node.set(last, .value(value))
    }

    // MARK: Keys

    /// `a`, `"a b"`, `'a'`, and dotted `a . b`.
    mutating func key() throws(TOMLError) -> [String] {
        var parts: [String] = []
        while true {
            guard parts.count < TOMLParser.maxDepth else { throw fail("a key of more than \(TOMLParser.maxDepth) parts") }
            guard let c = peek() else { throw fail("expected a key, found the end of the file") }
            if c == UInt8(ascii: "\"") {
                if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") { throw fail("a key cannot be a multi-line string") }
                i += 1
                parts.append(try basicString())
            } else if c == UInt8(ascii: "'") {
                if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") { throw fail("a key cannot be a multi-line string") }
                i += 1
                parts.append(try literalString())
            } else if isBareKeyByte(c) {
                let start = i
                while let d = peek(), isBareKeyByte(d) { i += 1 }
                parts.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
            } else {
                throw fail("expected a key (letters, digits, '_', '-', or a quoted string), found \(found())")
            }
            skipSpaces()
            guard peek() == UInt8(ascii: ".") else { return parts }
            i += 1
            skipSpaces()
        }
    }

    /// `key = value`: the (dotted) key, its value and the key's line. `depth`: the nesting so far.
    mutating func keyValue(depth: Int) throws(TOMLError) -> ([String], TOMLValue, Int) {
        let keyLine = line
        let key = try key()
        skipSpaces()
        guard peek() == UInt8(ascii: "=") else { throw fail("expected '=' after the key \(describe(key)), found \(found())") }
        i += 1
        skipSpaces()
        return (key, try value(depth: depth + key.count, keyLine: keyLine), keyLine)
    }

    // MARK: Values

    mutating func value(depth: Int, keyLine: Int) throws(TOMLError) -> TOMLValue {
        guard depth <= TOMLParser.maxDepth else { throw fail("values nested more than \(TOMLParser.maxDepth) deep") }
        guard let c = peek() else { throw fail("expected a value, found the end of the file") }
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            let literal = c == UInt8(ascii: "'")
            if peek(1) == c, peek(2) == c {
                i += 3
                return TOMLValue(.string(try multilineString(literal: literal)), line: keyLine)
            }
            i += 1
            return TOMLValue(.string(try literal ? literalString() : basicString()), line: keyLine)
        case UInt8(ascii: "["):
            i += 1
            return TOMLValue(.array(try array(depth: depth + 1)), line: keyLine)
        case UInt8(ascii: "{"):
            i += 1
            return TOMLValue(.table(try inlineTable(depth: depth + 1)), line: keyLine)
        default:
            return TOMLValue(try scalar(), line: keyLine)
        }
    }

    mutating func array(depth: Int) throws(TOMLError) -> [TOMLValue] {
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            if peek() == UInt8(ascii: "]") { i += 1; return items }
            items.append(try value(depth: depth, keyLine: line))
            try skipBlank()
            switch peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return items
            default: throw fail("expected ',' or ']' in the array, found \(found())")
            }
        }
    }

    /// `{ a = 1, b.c = 2 }`: on one line, no trailing comma (TOML 1.0), frozen once closed.
    mutating func inlineTable(depth: Int) throws(TOMLError) -> TOMLTable {
        let table = TableNode(.dotted, line: line)
        skipSpaces()
        if peek() == UInt8(ascii: "}") { i += 1; return table.frozen() }
        while true {
            skipSpaces()
            let (key, v, keyLine) = try keyValue(depth: depth)
            try insert(v, at: key, into: table, section: [], line: keyLine)
            skipSpaces()
            switch peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return table.frozen()
            default: throw fail("expected ',' or '}' in the inline table (on one line, TOML 1.0), found \(found())")
            }
        }
    }

    // MARK: Strings

    mutating func basicString() throws(TOMLError) -> String {
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw fail("unterminated string") }
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                i += 1
                try escape(into: &out)
            case 0x0A, 0x0D:
                throw fail("unterminated string (a basic string ends on its line; use \"\"\" for several lines)")
            default:
                if isControl(c) { throw fail("control character 0x\(String(c, radix: 16)) in a string (escape it)") }
                out.append(c)
                i += 1
            }
        }
    }

    mutating func literalString() throws(TOMLError) -> String {
        let start = i
        while true {
            guard let c = peek() else { throw fail("unterminated literal string") }
            if c == UInt8(ascii: "'") {
                defer { i += 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            }
            if c == 0x0A || c == 0x0D { throw fail("unterminated literal string (use ''' for several lines)") }
            if isControl(c) { throw fail("control character 0x\(String(c, radix: 16)) in a string") }
            i += 1
        }
    }

    /// `"""…"""` or `'''…'''`: a newline right after the opening is dropped; up to two quotes may
    /// stand before the closing three.
    mutating func multilineString(literal: Bool) throws(TOMLError) -> String {
        let quote = literal ? UInt8(ascii: "'") : UInt8(ascii: "\"")
        var out: [UInt8] = []
        _ = try newline()
        while true {
            guard let c = peek() else { throw fail("unterminated multi-line string") }
            if c == quote {
                var n = 0
                while peek(n) == quote { n += 1 }
                if n >= 3 {
                    guard n <= 5 else { throw fail("too many quotes at the end of a multi-line string") }
                    out.append(contentsOf: repeatElement(quote, count: n - 3))
                    i += n
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(contentsOf: repeatElement(quote, count: n))
                i += n
            } else if c == 0x0A || c == 0x0D {
                guard try newline() else { throw fail("a carriage return must be followed by a line feed") }
                out.append(0x0A)
            } else if !literal && c == UInt8(ascii: "\\") {
                // A line-ending backslash trims the newline and the blanks that follow it.
                var j = 1
                while let d = peek(j), d == 0x20 || d == 0x09 { j += 1 }
                if peek(j) == 0x0A || (peek(j) == 0x0D && peek(j + 1) == 0x0A) {
                    i += j
                    while true {
                        skipSpaces()
                        guard try newline() else { break }
                    }
                } else {
                    i += 1
                    try escape(into: &out)
                }
            } else {
                if isControl(c) { throw fail("control character 0x\(String(c, radix: 16)) in a string") }
                out.append(c)
                i += 1
            }
        }
    }

    /// After a backslash in a basic string.
    mutating func escape(into out: inout [UInt8]) throws(TOMLError) {
        guard let c = peek() else { throw fail("unterminated string") }
        i += 1
        switch c {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = c == UInt8(ascii: "u") ? 4 : 8
            var v: UInt32 = 0
            for _ in 0..<n {
                guard let d = peek(), let h = hexValue(d) else { throw fail("\\\(Character(Unicode.Scalar(c))) needs \(n) hex digits") }
                v = v << 4 | UInt32(h)
                i += 1
            }
            guard let scalar = Unicode.Scalar(v) else { throw fail("\\\(Character(Unicode.Scalar(c))) names no Unicode scalar value") }
            out.append(contentsOf: String(Character(scalar)).utf8)
        default:
            throw fail("unknown escape '\\\(found(at: i - 1))' (expected \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)")
        }
    }

    func found(at j: Int) -> String {
        guard j < b.count else { return "" }
        let c = b[j]
        return (0x21...0x7E).contains(c) ? String(Character(Unicode.Scalar(c))) : "0x\(String(c, radix: 16))"
    }

    // MARK: Scalars: booleans, numbers, dates

    mutating func scalar() throws(TOMLError) -> TOMLValue.Kind {
        let start = i
        while let c = peek(), isScalarByte(c) { i += 1 }
        // `1979-05-27 07:32:00`: a space may separate a date from its time.
        if i - start == 10, peek() == 0x20, let d0 = peek(1), let d1 = peek(2), isDigit(d0), isDigit(d1), peek(3) == UInt8(ascii: ":"),
           isDate(b[start..<i]) {
            i += 1
            while let c = peek(), isScalarByte(c) { i += 1 }
        }
        let token = UnsafeBufferPointer(rebasing: b[start..<i])
        guard !token.isEmpty else { throw fail("expected a value (string, number, boolean, date, array or inline table), found \(found())") }
        let text = String(decoding: token, as: UTF8.self)
        switch text {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if token.count >= 8, isDigit(token[0]), isDigit(token[1]), token[2] == UInt8(ascii: ":") || token[4] == UInt8(ascii: "-") {
            guard validDateTime(token) else { throw fail("'\(text)' is not a valid date or time (RFC 3339)") }
            return .datetime(text)
        }
        if let n = integer(token) { return .integer(n) }
        if let d = float(token) { return .float(d) }
        throw fail("'\(text)' is not a valid value (expected a string, number, boolean, date, array or inline table)")
    }

    /// Decimal (no leading zeros), or unsigned `0x`, `0o`, `0b`; `_` only between digits.
    func integer(_ t: UnsafeBufferPointer<UInt8>) -> Int64? {
        if t.count > 2, t[0] == UInt8(ascii: "0") {
            let radix: UInt64
            switch t[1] {
            case UInt8(ascii: "x"): radix = 16
            case UInt8(ascii: "o"): radix = 8
            case UInt8(ascii: "b"): radix = 2
            default: radix = 0
            }
            if radix != 0 {
                guard let m = digits(UnsafeBufferPointer(rebasing: t[2...]), radix: radix), m <= UInt64(Int64.max) else { return nil }
                return Int64(m)
            }
        }
        var body = t[...]
        var negative = false
        if let s = body.first, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") {
            negative = s == UInt8(ascii: "-")
            body = body.dropFirst()
        }
        guard let first = body.first, first != UInt8(ascii: "0") || body.count == 1 else { return nil }
        guard let m = digits(UnsafeBufferPointer(rebasing: body), radix: 10) else { return nil }
        if negative {
            guard m <= UInt64(Int64.max) + 1 else { return nil }
            return m == UInt64(Int64.max) + 1 ? Int64.min : -Int64(m)
        }
        guard m <= UInt64(Int64.max) else { return nil }
        return Int64(m)
    }

    /// `DIGIT (_? DIGIT)*` in `radix`, nil on a misplaced `_`, a foreign digit or overflow.
    func digits(_ t: UnsafeBufferPointer<UInt8>, radix: UInt64) -> UInt64? {
        guard let f = t.first, f != UInt8(ascii: "_"), t.last != UInt8(ascii: "_") else { return nil }
        var v: UInt64 = 0
        var previousUnderscore = false
        for c in t {
            if c == UInt8(ascii: "_") {
                guard !previousUnderscore else { return nil }
                previousUnderscore = true
                continue
            }
            previousUnderscore = false
            guard let d = hexValue(c), UInt64(d) < radix else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: radix)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            v = s
        }
        return v
    }

    /// `[+-] int (frac exp? | exp)` with TOML's `_` rules; finite.
    func float(_ t: UnsafeBufferPointer<UInt8>) -> Double? {
        var j = 0
        if t.first == UInt8(ascii: "+") || t.first == UInt8(ascii: "-") { j = 1 }
        func run(_ from: Int) -> Int? {  // end of a `DIGIT (_? DIGIT)*` run, nil if malformed
            var k = from
            guard k < t.count, isDigit(t[k]) else { return nil }
            while k < t.count {
                if isDigit(t[k]) { k += 1 } else if t[k] == UInt8(ascii: "_"), k + 1 < t.count, isDigit(t[k + 1]) { k += 2 } else { break }
            }
            return k
        }
        guard let intEnd = run(j) else { return nil }
        if t[j] == UInt8(ascii: "0"), intEnd - j > 1 { return nil }  // no leading zeros
        var k = intEnd
        var sawFraction = false, sawExponent = false
        if k < t.count, t[k] == UInt8(ascii: ".") {
            guard let e = run(k + 1) else { return nil }
            k = e
            sawFraction = true
        }
        if k < t.count, t[k] == UInt8(ascii: "e") || t[k] == UInt8(ascii: "E") {
            k += 1
            if k < t.count, t[k] == UInt8(ascii: "+") || t[k] == UInt8(ascii: "-") { k += 1 }
            guard let e = run(k) else { return nil }
            k = e
            sawExponent = true
        }
        guard k == t.count, sawFraction || sawExponent else { return nil }
        let text = String(decoding: t.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
        guard let d = Double(text), d.isFinite else { return nil }
        return d
    }
}

// MARK: - Byte classes and dates

private func isControl(_ c: UInt8) -> Bool { (c < 0x20 && c != 0x09) || c == 0x7F }
private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// What a number, boolean or date-time token may contain.
private func isScalarByte(_ c: UInt8) -> Bool {
    isBareKeyByte(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":")
}

private func number<C: Collection<UInt8>>(_ t: C, _ from: Int, _ count: Int) -> Int? where C.Index == Int {
    guard from + count <= t.endIndex else { return nil }
    var v = 0
    for k in from..<(from + count) {
        guard isDigit(t[k]) else { return nil }
        v = v * 10 + Int(t[k] - UInt8(ascii: "0"))
    }
    return v
}

/// `YYYY-MM-DD`, a real day of the proleptic Gregorian calendar.
private func isDate<C: Collection<UInt8>>(_ t: C) -> Bool where C.Index == Int {
    let s = t.startIndex
    guard t.count == 10, let y = number(t, s, 4), t[s + 4] == UInt8(ascii: "-"), let m = number(t, s + 5, 2),
          t[s + 7] == UInt8(ascii: "-"), let d = number(t, s + 8, 2), (1...12).contains(m) else { return false }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
    let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    return (1...days).contains(d)
}

/// `HH:MM:SS[.frac]`, from `s`; the index after it, or nil.
private func timeEnd(_ t: UnsafeBufferPointer<UInt8>, _ s: Int) -> Int? {
    guard let h = number(t, s, 2), s + 2 < t.count, t[s + 2] == UInt8(ascii: ":"), let mi = number(t, s + 3, 2),
          s + 5 < t.count, t[s + 5] == UInt8(ascii: ":"), let se = number(t, s + 6, 2),
          h < 24, mi < 60, se <= 60 else { return nil }
    var k = s + 8
    if k < t.count, t[k] == UInt8(ascii: ".") {
        k += 1
        let digitsStart = k
        while k < t.count, isDigit(t[k]) { k += 1 }
        guard k > digitsStart else { return nil }
    }
    return k
}

/// RFC 3339 as TOML takes it: local date, local time, local or offset date-time (`T`, `t` or a
/// space between date and time; `Z`, `z` or `±HH:MM` offsets).
private func validDateTime(_ t: UnsafeBufferPointer<UInt8>) -> Bool {
    if t.count >= 3, t[2] == UInt8(ascii: ":") { return timeEnd(t, 0) == t.count }
    guard t.count >= 10, isDate(UnsafeBufferPointer(rebasing: t[0..<10])) else { return false }
    if t.count == 10 { return true }
    guard [UInt8(ascii: "T"), UInt8(ascii: "t"), 0x20].contains(t[10]), let k = timeEnd(t, 11) else { return false }
    if k == t.count { return true }
    if k + 1 == t.count, t[k] == UInt8(ascii: "Z") || t[k] == UInt8(ascii: "z") { return true }
    guard k + 6 == t.count, t[k] == UInt8(ascii: "+") || t[k] == UInt8(ascii: "-"), let oh = number(t, k + 1, 2),
          t[k + 3] == UInt8(ascii: ":"), let om = number(t, k + 4, 2) else { return false }
    return oh < 24 && om < 60
}
