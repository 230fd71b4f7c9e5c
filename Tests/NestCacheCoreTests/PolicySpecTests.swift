import NestCacheCore
import Testing

@Suite struct PolicySpecTests {
    @Test func parsesAndPrintsEveryPolicy() throws {
        #expect(try PolicySpec(parsing: "per-vm-table") == .perVMTable(contextsPerVCPU: 8))
        #expect(try PolicySpec(parsing: "per-vm-table:16") == .perVMTable(contextsPerVCPU: 16))
        #expect(try PolicySpec(parsing: "per-vcpu-lru") == .perVCPULRU(k: 3))
        #expect(try PolicySpec(parsing: "per-vcpu-lru:0") == .perVCPULRU(k: 0))
        #expect(try PolicySpec(parsing: "single") == .single)
        #expect(try PolicySpec(parsing: "map-per-entry") == .mapPerEntry)
        for spec in everyPolicy { #expect(try PolicySpec(parsing: spec.description) == spec) }
        #expect(try PolicySpec.parseList("single, per-vm-table:2") == [.single, .perVMTable(contextsPerVCPU: 2)])
    }

    @Test func rejectsBadSpecsWithAClearMessage() {
        let cases: [(String, String)] = [
            ("lru", "unknown policy 'lru' (expected \(PolicyKind.usageList))"),
            ("per-vm-table:0", "policy 'per-vm-table:0': R (contexts per L1 vCPU) must be an integer from 1 to 4096, got '0'"),
            ("per-vm-table:x", "policy 'per-vm-table:x': R (contexts per L1 vCPU) must be an integer from 1 to 4096, got 'x'"),
            ("per-vcpu-lru:-1", "policy 'per-vcpu-lru:-1': K (previous contexts per vCPU) must be an integer from 0 to 1023, got '-1'"),
            ("per-vcpu-lru:", "policy 'per-vcpu-lru:': K (previous contexts per vCPU) must be an integer from 0 to 1023, got ''"),
            ("single:2", "policy 'single:2': 'single' takes no parameter"),
        ]
        for (text, message) in cases {
            #expect(throws: PolicySpec.ParseError(description: message)) { try PolicySpec(parsing: text) }
        }
        #expect(throws: PolicySpec.ParseError.self) { try PolicySpec.parseList("single,,per-vm-table") }
    }
}
