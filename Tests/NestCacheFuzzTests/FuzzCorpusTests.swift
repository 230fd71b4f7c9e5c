import Foundation
import NestCacheFuzzTargets
import Testing

/// Every committed fuzz input (seeds and found crashes) through its target, in every build: a
/// crash once found and fixed stays fixed (a trap here fails the run).
@Suite struct FuzzCorpusTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    @Test(arguments: FuzzTarget.allCases)
    func corpusAndRegressionsPass(_ target: FuzzTarget) throws {
        let seeds = FuzzCorpus.files(in: "\(Self.fuzz)/corpus/\(target.rawValue)")
        let regressions = FuzzCorpus.files(in: "\(Self.fuzz)/regressions/\(target.rawValue)")
        #expect(seeds.count >= 3, "Fuzz/corpus/\(target.rawValue) has \(seeds.count) seeds")
        for path in seeds + regressions {
            let bytes = try #require(FuzzCorpus.read(path), "cannot read \(path)")
            bytes.withUnsafeBufferPointer { target.run($0) }
        }
    }
}
