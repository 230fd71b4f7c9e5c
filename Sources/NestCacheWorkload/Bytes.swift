/// Small parsers over byte views, shared by the readers.
public enum Bytes {
    /// Space, tab or carriage return. Most bytes a reader tests are above 0x20: one comparison.
    @inline(__always)
    public static func isSpace(_ c: UInt8) -> Bool { c <= 0x20 && (c == 0x20 || c == 0x09 || c == 0x0D) }

    /// Parses unsigned decimal; nil on an empty field, a non-digit or overflow.
    @inline(__always)
    public static func decimal(_ s: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard !s.isEmpty else { return nil }
        var v: UInt64 = 0
        for c in s {
            let d = c &- 0x30
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            v = a
        }
        return v
    }

    /// Parses `0x` followed by 1 to 16 hex digits; nil otherwise.
    @inline(__always)
    public static func hex0x(_ s: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard s.count > 2, s.count <= 18, s[0] == 0x30, s[1] == 0x78 else { return nil }
        var v: UInt64 = 0
        for c in s[2...] {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c &- 0x30
            case 0x61...0x66: d = c &- 0x61 &+ 10
            case 0x41...0x46: d = c &- 0x41 &+ 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// The text of a field for messages, cut to 40 characters and made printable.
    public static func quote(_ s: UnsafeBufferPointer<UInt8>) -> String {
        let cut = s.prefix(40)
        let printable = cut.map { (0x20..<0x7f).contains($0) ? $0 : UInt8(ascii: "?") }
        return "'" + String(decoding: printable, as: UTF8.self) + (s.count > 40 ? "…'" : "'")
    }
}
