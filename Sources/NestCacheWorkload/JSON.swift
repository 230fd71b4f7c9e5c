/// A JSON value with ordered objects, so output never depends on Dictionary order.
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.serialized() == b.serialized() }

    /// One line of JSON.
    public func serialized() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .uint(let u): out += String(u)
        case .double(let d):
            if d.isFinite {
                // Integral values print without a fraction; others with up to 6 decimals.
                if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) } else { out += String(format6(d)) }
            } else {
                out += "null"
            }
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(k, into: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        // Most strings (keys, VM ids) need no escape: one append instead of one per scalar
        // (a 1,000-VM report spent 5% of a replay here).
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out += s
            out += "\""
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    public static func number(_ d: Double?) -> JSON { d.map(JSON.double) ?? .null }
}

/// `d` with at most 6 decimals, trailing zeros dropped (stable across platforms, unlike `%g`).
public func format6(_ d: Double) -> String {
    let scaled = (d * 1_000_000).rounded()
    guard abs(scaled) < 9e18 else { return String(d) }
    let n = Int64(scaled)
    let sign = n < 0 ? "-" : ""
    let a = n.magnitude
    var frac = String(a % 1_000_000)
    frac = String(repeating: "0", count: 6 - frac.count) + frac
    while frac.hasSuffix("0") { frac.removeLast() }
    return sign + String(a / 1_000_000) + (frac.isEmpty ? "" : "." + frac)
}
