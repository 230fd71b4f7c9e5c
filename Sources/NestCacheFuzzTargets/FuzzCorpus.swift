import NestCacheSystem
#if canImport(Glibc)
import Glibc
#endif

/// The committed inputs of each target: `Fuzz/corpus/TARGET` (seeds) and
/// `Fuzz/regressions/TARGET` (every crash found, kept so it stays fixed).
public enum FuzzCorpus {
    public static func read(_ path: String) -> [UInt8]? {
        Syscall.readFile(path)
    }

    /// The regular files directly in `directory`, sorted; empty if it does not exist.
    public static func files(in directory: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard !name.hasPrefix(".") else { continue }
            var st = stat()
            if stat("\(directory)/\(name)", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { names.append("\(directory)/\(name)") }
        }
        return names.sorted()
    }
}
