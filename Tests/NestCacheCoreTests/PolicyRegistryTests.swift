import Foundation
import NestCacheCore
import NestCacheReference
import Testing

/// The registry is the one list of policies: these fail when a policy is added without its row,
/// without a reference model, or with a row that the rest of the program cannot use.
@Suite struct PolicyRegistryTests {
    static let policiesDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/NestCacheCore/Policies")

    /// Every `PolicyKind` declared in a policy file, and every `ContextPolicy` there, has a row.
    @Test func everyPolicyFileHasItsRow() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.policiesDirectory.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count >= 3)
        var declaredKinds: [String] = []
        for file in files {
            let text = try String(contentsOf: Self.policiesDirectory.appendingPathComponent(file), encoding: .utf8)
            for m in text.matches(of: /= PolicyKind\(\s*name: "([^"]+)"/) { declaredKinds.append(String(m.1)) }
            for m in text.matches(of: /struct (\w+): ContextPolicy/) {
                #expect(text.contains("policy: \(m.1).self"), "\(file): \(m.1) has no PolicyKind")
            }
        }
        #expect(declaredKinds.sorted() == PolicyKind.registry.map(\.name).sorted(),
                "kinds declared in Policies/ vs rows of PolicyKind.registry")
    }

    @Test func rowsAreUsable() throws {
        let names = PolicyKind.registry.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(Set(PolicyKind.registry.map(\.shortName)).count == names.count)
        for kind in PolicyKind.registry {
            #expect(kind.shortName.count <= 6, "\(kind): report columns are 72 wide")
            #expect(!kind.name.contains(":") && !kind.name.contains(",") && !kind.name.contains(" "), "\(kind)")
            #expect(PolicyKind.usageList.contains(kind.usage))
            let spec = try PolicySpec(parsing: kind.name)
            #expect(spec.kind == kind)
            #expect(try PolicySpec(parsing: spec.description) == spec)
            if let p = kind.parameter {
                #expect(spec.parameter == p.defaultValue)
                #expect(throws: PolicySpec.ParseError.self) { try PolicySpec(parsing: "\(kind.name):\(p.range.upperBound + 1)") }
            }
            #expect(ReferenceModel.covers(kind), "\(kind): write its rules in ReferenceModel")
            #expect(spec.makeEngine().spec == spec)
            #expect(spec.maxMappedContextsPerVCPU >= 1)
            #expect(spec.isPerVCPU == (spec.makeShard(info: VMInfo(id: "vm"), defaultPagesPerContext: 4) != nil))
        }
        let usages = PolicyKind.registry.map(\.usage)
        #expect(PolicyKind.usageList == usages.dropLast().joined(separator: ", ") + " or " + usages[usages.count - 1])
    }
}
