import NestCacheDaemon
import NestCacheTOML

/// The configuration loader on arbitrary bytes: the TOML parser, then the validation of every
/// section. The only way out is a `DaemonConfig` or a `ConfigError` naming a line of the input
/// (nestcached exits 78 with it, or refuses a reload).
enum FuzzConfig {
    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let lines = data.count(where: { $0 == 0x0A }) + 1
        do {
            let c = try DaemonConfig.load(bytes: Array(data), path: "fuzz.toml", checkFiles: false)
            // What loaded must load again from its own text, to the same value.
            let again = try DaemonConfig.load(text: c.text, path: "fuzz.toml", checkFiles: false)
            fuzzCheck(again == c, "reloading the same text gave another configuration")
        } catch {
            fuzzCheck(error.file == "fuzz.toml", "error names \(error.file)")
            if let l = error.line { fuzzCheck(l >= 1 && l <= lines, "error at line \(l) of \(lines): \(error)") }
            fuzzCheck(!error.message.isEmpty, "empty message")
        }
        // The parser alone, on the same bytes: a document or a TOMLError inside the text.
        do {
            _ = try TOMLParser.parse(bytes: data)
        } catch {
            fuzzCheck(error.line >= 1 && error.line <= lines, "TOML error at line \(error.line) of \(lines)")
        }
    }
}
