import NestCacheCore

extension BoundsResult {
    /// DESIGN §11: `{"vms": {"ID": {"switches": N, "l1_vcpus": M, "lru_hits": [K = 0..kmax],
    /// "opt_vcpu_hits": [K = 0..kmax], "opt_vm_hits": {"R": hits, ...}}}}`, VMs by id, ratios
    /// ascending.
    public var json: JSON {
        .object([("vms", .object(vms.map { vm in (vm.id, .object(members(vm))) }))])
    }

    /// One VM's object of `json` as members (`show bounds VM json` adds its own).
    public func members(_ vm: VM) -> [(String, JSON)] {
        [
            ("switches", .uint(vm.switches)),
            ("l1_vcpus", .int(Int64(vm.l1VCPUs))),
            ("lru_hits", .array(vm.lruHits.map(JSON.uint))),
            ("opt_vcpu_hits", .array(vm.optVCPUHits.map(JSON.uint))),
            ("opt_vm_hits", .object(zip(ratios, vm.optVMHits).map { (String($0), JSON.uint($1)) })),
        ]
    }

    /// Tables for people, per VM: hits and hit ratios of the per-vCPU LRU and its optimum by K,
    /// then of the shared optimum by R.
    public var text: String {
        var out = ""
        for (i, vm) in vms.enumerated() {
            if i > 0 { out += "\n" }
            out += "vm \(vm.id): \(vm.switches) switch\(vm.switches == 1 ? "" : "es"), M = \(vm.l1VCPUs) L1 vCPU\(vm.l1VCPUs == 1 ? "" : "s")\n"
            func ratio(_ hits: UInt64) -> String {
                TextTable.human(column: "hit_ratio", .number(vm.switches == 0 ? nil : Double(hits) / Double(vm.switches)))
            }
            var perVCPU = [["K", "contexts/vCPU", "LRU hits", "LRU hit ratio", "OPT-vCPU hits", "OPT-vCPU hit ratio"]]
            for k in 0...kmax {
                perVCPU.append([
                    String(k), String(k + 1), String(vm.lruHits[k]), ratio(vm.lruHits[k]),
                    String(vm.optVCPUHits[k]), ratio(vm.optVCPUHits[k]),
                ])
            }
            out += TextTable.render(perVCPU, leftAligned: [])
            out += "\n"
            var shared = [["R", "contexts", "OPT-VM hits", "OPT-VM hit ratio"]]
            for (r, hits) in zip(ratios, vm.optVMHits) {
                shared.append([String(r), String(r * vm.l1VCPUs), String(hits), ratio(hits)])
            }
            out += TextTable.render(shared, leftAligned: [])
        }
        return out
    }
}
