import NestCacheCore
import NestCacheWorkload

/// Prometheus text exposition format 0.0.4 for `show metrics` and the textfile output.
///
/// Every counter of DESIGN §4 as `nestcache_NAME_total{vm,policy}` for the primary and each
/// shadow policy; gauges without the suffix; the primary policy's per-vCPU `hits`, `misses`,
/// `recycles` and `steals` with a `vcpu` label; the lock wait per VM and policy. Series are sorted by VM, then by
/// policy order in the configuration, so scrapes diff cleanly.
public enum Metrics {
    /// The counters also exported per vCPU (DESIGN §8).
    static let perVCPUCounters: Set<String> = ["hits", "misses", "recycles", "steals"]

    public static func render(_ vms: [VMSnapshot], uptimeSeconds: Double, version: String) -> String {
        var out = ""
        out.reserveCapacity(256 + vms.count * 4096)
        family(&out, "nestcache_build_info", "gauge", "Version of nestcached.")
        out += "nestcache_build_info{version=\"\(escape(version))\"} 1\n"
        family(&out, "nestcache_uptime_seconds", "gauge", "Seconds since nestcached started.")
        out += "nestcache_uptime_seconds \(number(uptimeSeconds))\n"

        families(&out, vms, Counters.fields, suffix: "_total", type: "counter", \.counters)
        families(&out, vms, Gauges.fields, suffix: "", type: "gauge", \.gauges)
        family(&out, "nestcache_hit_ratio", "gauge", "hits / switches (absent before the first switch).")
        for vm in vms {
            for (p, stats) in zip(vm.policies, vm.stats) {
                if let r = stats.hitRatio { out += "nestcache_hit_ratio{vm=\"\(escape(vm.id))\",policy=\"\(p)\"} \(number(r))\n" }
            }
        }
        family(&out, "nestcache_exposure", "gauge", "peak_mapped_pages * 4096 / guest memory bytes.")
        for vm in vms {
            for (p, stats) in zip(vm.policies, vm.stats) {
                if let x = stats.exposure { out += "nestcache_exposure{vm=\"\(escape(vm.id))\",policy=\"\(p)\"} \(number(x))\n" }
            }
        }
        for field in Counters.fields where perVCPUCounters.contains(field.name) {
            let name = field.name
            family(&out, "nestcache_vcpu_\(name)_total", "counter", "Per L1 vCPU, primary policy: " + field.help)
            for vm in vms {
                guard let p = vm.policies.first else { continue }
                for (v, c) in vm.vcpus.enumerated() where c.events > 0 {
                    out += "nestcache_vcpu_\(name)_total{vm=\"\(escape(vm.id))\",vcpu=\"\(v)\",policy=\"\(p)\"} \(c[keyPath: field.keyPath])\n"
                }
            }
        }
        family(&out, "nestcache_lock_wait_seconds_total", "counter",
               "Time vCPU queues waited for the policy's locks (per-vm-table: its VM-wide lock; per-vCPU policies: the vCPU lane locks).")
        for vm in vms {
            let waits = vm.lockWaits.isEmpty ? [vm.lockWait] : vm.lockWaits
            for (p, w) in zip(vm.policies, waits) {
                out += "nestcache_lock_wait_seconds_total{vm=\"\(escape(vm.id))\",policy=\"\(p)\"} \(number(Double(w.totalNs) / 1e9))\n"
            }
        }
        family(&out, "nestcache_vm_running", "gauge", "1 while the VM's workload is running, 0 when paused, done or failed.")
        for vm in vms {
            out += "nestcache_vm_running{vm=\"\(escape(vm.id))\",policy=\"\(vm.policies.first?.description ?? "")\",state=\"\(vm.state.rawValue)\"} \(vm.state == .running ? 1 : 0)\n"
        }
        return out
    }

    /// A family per field of a counter row, a series per VM and policy.
    static func families<Row: CounterRow>(
        _ out: inout String, _ vms: [VMSnapshot], _ fields: [CounterField<Row>], suffix: String, type: String,
        _ row: (StatsSnapshot) -> Row
    ) {
        for field in fields {
            let name = "nestcache_\(field.name)\(suffix)"
            family(&out, name, type, field.help)
            for vm in vms {
                for (p, stats) in zip(vm.policies, vm.stats) {
                    out += "\(name){vm=\"\(escape(vm.id))\",policy=\"\(p)\"} \(row(stats)[keyPath: field.keyPath])\n"
                }
            }
        }
    }

    static func family(_ out: inout String, _ name: String, _ type: String, _ help: String) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// Label values escape backslash, double quote and newline (format 0.0.4). By scalar, not by
    /// Character: "\r\n" is one Character in Swift and would slip a raw newline through.
    static func escape(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            switch u {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            default: out.append(u)
            }
        }
        return String(out)
    }

    static func number(_ d: Double) -> String {
        d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)) : "NaN"
    }
}
