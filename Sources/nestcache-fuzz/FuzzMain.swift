#if canImport(Glibc)
import Glibc
#endif
import NestCacheFuzzTargets

#if NESTCACHE_FUZZ
import CLibFuzzer

// Built by `make fuzz` with `-sanitize=fuzzer,address -parse-as-library -D NESTCACHE_FUZZ`.
// SwiftPM links an executable's entry point under the name `<module>_main`, so that is where
// libFuzzer's driver starts; it calls the two functions below. NESTCACHE_FUZZ_TARGET names the target.
nonisolated(unsafe) var selected = FuzzTarget.config

@_cdecl("nestcache_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    _ = fuzzInitialize()
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzTestOneInput(data, size) }
}

func fuzzInitialize() -> CInt {
    let name = getenv("NESTCACHE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let t = FuzzTarget(rawValue: name) else {
        print("nestcache-fuzz: set NESTCACHE_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        exit(64)
    }
    selected = t
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected.run(UnsafeBufferPointer(start: data, count: size))
    return 0
}
#else
/// Ordinary builds: replays files through a target (the corpora, a crash to reproduce).
@main
struct FuzzReplay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let name = args.first, let target = FuzzTarget(rawValue: name), args.count > 1 else {
            print("usage: nestcache-fuzz TARGET FILE...   (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            exit(64)
        }
        for path in args.dropFirst() {
            guard let bytes = FuzzCorpus.read(path) else {
                print("nestcache-fuzz: cannot read \(path)")
                exit(66)
            }
            bytes.withUnsafeBufferPointer { target.run($0) }
        }
        print("nestcache-fuzz: \(target.rawValue): \(args.count - 1) inputs, no failure")
    }
}
#endif
