/// A parsed TOML document: values that remember the line they were written on, so that a
/// configuration error can say `FILE:LINE` for every key, not only for syntax errors.
///
/// Value types all the way down: a table is an ordered list of keys and a dictionary. The parser
/// (`TOMLParser`) builds them; the loaders only read them.
public struct TOMLValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        /// An RFC 3339 date, time or date-time, kept as written (after validation): nestcached
        /// has no key that takes one, so it is only ever named in an error.
        case datetime(String)
        case array([TOMLValue])
        case table(TOMLTable)
    }

    public var kind: Kind
    /// 1-based line of the key (of the `[header]` for a table, of `[[header]]` for an element
    /// of an array of tables).
    public var line: Int

    public init(_ kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
    }

    // `@inline(never)`: inlined into NestCacheDaemon's ConfigLoader under -O (cross-module
    // optimisation), these accessors crash Swift 6.3.1's CopyPropagation pass ("Found outside of
    // lifetime use" on the switch over `kind`). They run once per configuration key.
    @inline(never) public var string: String? { if case .string(let s) = kind { return s }; return nil }
    @inline(never) public var int: Int? { if case .integer(let i) = kind { return Int(exactly: i) }; return nil }
    @inline(never) public var double: Double? { if case .float(let d) = kind { return d }; return nil }
    @inline(never) public var bool: Bool? { if case .boolean(let b) = kind { return b }; return nil }
    @inline(never) public var array: [TOMLValue]? { if case .array(let a) = kind { return a }; return nil }
    @inline(never) public var table: TOMLTable? { if case .table(let t) = kind { return t }; return nil }

    /// The TOML type's name, for messages ("must be a string, got an integer").
    public var typeName: String {
        switch kind {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a float"
        case .boolean: "a boolean"
        case .datetime: "a date-time"
        case .array: "an array"
        case .table: "a table"
        }
    }

    /// The value as a reader would recognise it in a message: strings quoted, scalars as
    /// written, composite values by type.
    public var debugText: String {
        switch kind {
        case .string(let s): "'\(s)'"
        case .integer(let i): String(i)
        case .float(let d): String(d)
        case .boolean(let b): b ? "true" : "false"
        case .datetime(let s): s
        case .array, .table: typeName
        }
    }
}

/// A TOML table: keys in the order they were first written (messages name the first offender
/// the way a reader scanning the file would meet it).
public struct TOMLTable: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]

    public init() {}

    public subscript(key: String) -> TOMLValue? { values[key] }

    public var isEmpty: Bool { keys.isEmpty }

    /// Adds a key that is not there yet (the parser has checked).
    mutating func insert(_ key: String, _ value: TOMLValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }
}

/// A syntax or structure error: the 1-based line and what was expected there.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}
