import Logging
import NestCacheCore
import NestCacheWorkload
import NestCacheTOML

extension DaemonConfig {
    /// Parses and validates a TOML configuration (DESIGN §7). Every error names the key and its
    /// line; no input, however malformed, does anything but throw (NestCacheTOML's parser).
    /// `checkFiles`: replay traces must exist and be readable (off for unit tests of the syntax
    /// alone).
    public static func load(text: String, path: String, checkFiles: Bool = true) throws(ConfigError) -> DaemonConfig {
        let root: TOMLTable
        do {
            root = try TOMLParser.parse(text)
        } catch {
            throw ConfigError(file: path, line: error.line, "TOML syntax: \(error.message)")
        }
        var loader = ConfigLoader(path: path, lines: KeyLines(root), checkFiles: checkFiles)
        var config = try loader.load(root)
        config.path = path
        config.text = text
        return config
    }

    /// Reads and loads a file.
    public static func load(path: String) throws(ConfigError) -> DaemonConfig {
        guard let bytes = readFile(path) else {
            throw ConfigError(file: path, line: nil, "cannot read the configuration file (or it is over 1 MiB)")
        }
        return try load(bytes: bytes, path: path)
    }

    /// Loads a file's bytes. Invalid UTF-8 is an error naming its line, never decoded into
    /// replacement characters.
    public static func load(bytes: [UInt8], path: String, checkFiles: Bool = true) throws(ConfigError) -> DaemonConfig {
        do {
            try TOMLParser.validateUTF8(bytes)
        } catch {
            throw ConfigError(file: path, line: error.line, "TOML syntax: \(error.message)")
        }
        return try load(text: String(decoding: bytes, as: UTF8.self), path: path, checkFiles: checkFiles)
    }

    /// The embedded default (`config/nestcached.toml`, byte for byte).
    public static func embeddedDefault() throws(ConfigError) -> DaemonConfig {
        try load(text: EmbeddedConfig.text, path: "(embedded default)")
    }
}

/// The line of every key and table, by table path (`vm[1].simulate.seed`), from the parsed
/// document, for messages about keys whose value is fine as TOML but wrong as configuration.
struct KeyLines {
    var lines: [String: Int] = [:]

    init(_ root: TOMLTable) {
        add(root, prefix: "")
    }

    private mutating func add(_ table: TOMLTable, prefix: String) {
        for key in table.keys {
            guard let v = table[key] else { continue }
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            lines[path] = v.line
            if let t = v.table {
                add(t, prefix: path)
            } else if let a = v.array {
                for (i, item) in a.enumerated() {
                    guard let t = item.table else { continue }
                    lines["\(path)[\(i)]"] = item.line
                    add(t, prefix: "\(path)[\(i)]")
                }
            }
        }
    }

    func line(_ path: String) -> Int? { lines[path] }
}

struct ConfigLoader {
    let path: String
    let lines: KeyLines
    let checkFiles: Bool

    func error(_ key: String, _ message: String) -> ConfigError {
        // Fall back to the enclosing table's line when the key's own is unknown.
        var p = key
        while true {
            if let l = lines.line(p) { return ConfigError(file: path, line: l, message) }
            guard let dot = p.lastIndex(of: ".") else { break }
            p = String(p[..<dot])
        }
        return ConfigError(file: path, line: nil, message)
    }

    func checkKeys(_ table: TOMLTable, at prefix: String, allowed: [String], name: String) throws(ConfigError) {
        for key in table.keys where !allowed.contains(key) {
            throw error(join(prefix, key), "unknown key '\(key)' in \(name) (expected \(allowed.joined(separator: ", ")))")
        }
    }

    func join(_ prefix: String, _ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

    // MARK: Typed getters: each error names the key and says what was expected.

    func string(_ t: TOMLTable, _ key: String, at prefix: String) throws(ConfigError) -> String? {
        guard let v = t[key] else { return nil }
        guard let s = v.string else { throw error(join(prefix, key), "'\(key)' must be a string, got \(v.typeName)") }
        return s
    }

    func integer(_ t: TOMLTable, _ key: String, at prefix: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let v = t[key] else { return nil }
        guard let i = v.int, range.contains(i) else {
            throw error(join(prefix, key), "'\(key)' must be an integer from \(range.lowerBound) to \(range.upperBound), got \(v.debugText)")
        }
        return i
    }

    func number(_ t: TOMLTable, _ key: String, at prefix: String, _ range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let v = t[key] else { return nil }
        guard let d = v.double ?? v.int.map(Double.init), range.contains(d) else {
            throw error(join(prefix, key), "'\(key)' must be a number from \(format(range.lowerBound)) to \(format(range.upperBound)), got \(v.debugText)")
        }
        return d
    }

    func boolean(_ t: TOMLTable, _ key: String, at prefix: String) throws(ConfigError) -> Bool? {
        guard let v = t[key] else { return nil }
        guard let b = v.bool else { throw error(join(prefix, key), "'\(key)' must be true or false, got \(v.debugText)") }
        return b
    }

    func table(_ t: TOMLTable, _ key: String, at prefix: String) throws(ConfigError) -> TOMLTable? {
        guard let v = t[key] else { return nil }
        guard let sub = v.table else { throw error(join(prefix, key), "'\(key)' must be a table ([\(key)])") }
        return sub
    }

    func tables(_ t: TOMLTable, _ key: String) throws(ConfigError) -> [TOMLTable] {
        guard let v = t[key] else { return [] }
        guard let a = v.array else { throw error(key, "'\(key)' must be an array of tables ([[\(key)]])") }
        var out: [TOMLTable] = []
        for item in a {
            guard let sub = item.table else { throw error(key, "'\(key)' must be an array of tables ([[\(key)]])") }
            out.append(sub)
        }
        return out
    }

    func policy(_ t: TOMLTable, _ key: String, at prefix: String) throws(ConfigError) -> PolicySpec? {
        guard let s = try string(t, key, at: prefix) else { return nil }
        do { return try PolicySpec(parsing: s) } catch { throw self.error(join(prefix, key), "'\(key)': \(error)") }
    }

    func policies(_ t: TOMLTable, _ key: String, at prefix: String) throws(ConfigError) -> [PolicySpec]? {
        guard let v = t[key] else { return nil }
        guard let a = v.array else { throw error(join(prefix, key), "'\(key)' must be an array of policy strings") }
        var out: [PolicySpec] = []
        for item in a {
            guard let s = item.string else { throw error(join(prefix, key), "'\(key)' must be an array of policy strings") }
            do { out.append(try PolicySpec(parsing: s)) } catch { throw self.error(join(prefix, key), "'\(key)': \(error)") }
        }
        return out
    }

    func speed(_ t: TOMLTable, at prefix: String, default d: Speed) throws(ConfigError) -> Speed {
        guard let v = t["speed"] else { return d }
        let text = v.string ?? v.double.map { String($0) } ?? v.int.map { String($0) } ?? ""
        guard let s = Speed(text: text) else {
            throw error(join(prefix, "speed"), "'speed' must be \"max\", \"realtime\" or a factor above 0, got \(v.debugText)")
        }
        return s
    }

    // MARK: Sections

    mutating func load(_ root: TOMLTable) throws(ConfigError) -> DaemonConfig {
        try checkKeys(root, at: "", allowed: ["daemon", "defaults", "vm", "replay", "live"], name: "the top level")
        var c = DaemonConfig()
        if let d = try table(root, "daemon", at: "") { c.daemon = try daemonSection(d) }
        if let d = try table(root, "defaults", at: "") { c.defaults = try defaultsSection(d) }
        var ids: [String: String] = [:]
        for (i, t) in try tables(root, "vm").enumerated() {
            let vm = try simulatedVM(t, at: "vm[\(i)]", defaults: c.defaults)
            if let other = ids[vm.id] { throw error("vm[\(i)].id", "duplicate VM id '\(vm.id)' (also \(other))") }
            ids[vm.id] = "[[vm]] #\(i + 1)"
            c.vms.append(vm)
        }
        for (i, t) in try tables(root, "replay").enumerated() {
            let r = try replaySource(t, at: "replay[\(i)]", defaults: c.defaults)
            if let vm = r.vm {
                if let other = ids[vm] { throw error("replay[\(i)].vm", "duplicate VM id '\(vm)' (also \(other))") }
                ids[vm] = "[[replay]] #\(i + 1)"
            }
            c.replays.append(r)
        }
        for (i, t) in try tables(root, "live").enumerated() {
            let l = try liveSource(t, at: "live[\(i)]", defaults: c.defaults)
            if let vm = l.vm {
                if let other = ids[vm] { throw error("live[\(i)].vm", "duplicate VM id '\(vm)' (also \(other))") }
                ids[vm] = "[[live]] #\(i + 1)"
            }
            if let other = c.lives.firstIndex(where: { $0.trace == l.trace }) {
                throw error("live[\(i)].trace", "'\(l.trace)' is already followed by [[live]] #\(other + 1)")
            }
            c.lives.append(l)
        }
        return c
    }

    func daemonSection(_ t: TOMLTable) throws(ConfigError) -> DaemonConfig.DaemonSection {
        let p = "daemon"
        try checkKeys(t, at: p, allowed: ["socket", "socket_mode", "max_clients", "idle_timeout_s", "log_level",
                                          "summary_interval_s", "textfile", "metrics_listen", "bounds_window"], name: "[daemon]")
        var d = DaemonConfig.DaemonSection()
        if let s = try string(t, "socket", at: p) {
            guard s.hasPrefix("/"), s.utf8.count < 108 else {
                throw error("daemon.socket", "'socket' must be an absolute path shorter than 108 bytes (sun_path), got '\(s)'")
            }
            d.socket = s
        }
        if let v = t["socket_mode"] {
            let mode: UInt32? = switch v.kind {
            case .integer(let i): UInt32(exactly: i)
            case .string(let s): UInt32(s, radix: 8)
            default: nil
            }
            guard let mode, mode <= 0o777 else {
                throw error("daemon.socket_mode", "'socket_mode' must be an octal mode such as \"0660\" or 0o660, got \(v.debugText)")
            }
            d.socketMode = mode
        }
        if let n = try integer(t, "max_clients", at: p, 1...65536) { d.maxClients = n }
        if let n = try number(t, "idle_timeout_s", at: p, 0.1...86400) { d.idleTimeoutS = n }
        if let s = try string(t, "log_level", at: p) {
            guard let level = Logger.Level(rawValue: s) else {
                throw error("daemon.log_level", "'log_level' must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(s)'")
            }
            d.logLevel = level
        }
        if let n = try number(t, "summary_interval_s", at: p, 0...86400) { d.summaryIntervalS = n }
        if let n = try integer(t, "bounds_window", at: p, 0...SwitchWindow.maxCapacity) { d.boundsWindow = n }
        if let s = try string(t, "textfile", at: p) {
            guard s.hasPrefix("/"), s.hasSuffix(".prom") else {
                throw error("daemon.textfile", "'textfile' must be an absolute path ending in .prom (node_exporter reads only those), got '\(s)'")
            }
            d.textfile = s
        }
        if let s = try string(t, "metrics_listen", at: p) {
            guard let m = MetricsListen(parsing: s) else {
                throw error("daemon.metrics_listen", "'metrics_listen' must be HOST:PORT with an IPv4 address, [IPv6 address] or localhost and a port from 0 to 65535 (\"127.0.0.1:9464\", \"[::1]:9464\"), got '\(s)'")
            }
            d.metricsListen = m
        }
        return d
    }

    func defaultsSection(_ t: TOMLTable) throws(ConfigError) -> DaemonConfig.Defaults {
        let p = "defaults"
        try checkKeys(t, at: p, allowed: ["policy", "shadow_policies", "pages_per_context", "map_ns", "unmap_ns", "lookup_ns"],
                      name: "[defaults]")
        var d = DaemonConfig.Defaults()
        if let x = try policy(t, "policy", at: p) { d.policy = x }
        if let x = try policies(t, "shadow_policies", at: p) { d.shadowPolicies = x }
        if let n = try integer(t, "pages_per_context", at: p, 1...64) { d.pagesPerContext = n }
        if let n = try number(t, "map_ns", at: p, 0...1e9) { d.cost.mapNs = n }
        if let n = try number(t, "unmap_ns", at: p, 0...1e9) { d.cost.unmapNs = n }
        if let n = try number(t, "lookup_ns", at: p, 0...1e9) { d.cost.lookupNs = n }
        return d
    }

    func simulatedVM(_ t: TOMLTable, at p: String, defaults: DaemonConfig.Defaults) throws(ConfigError) -> DaemonConfig.SimulatedVM {
        try checkKeys(t, at: p, allowed: ["id", "l1_vcpus", "memory_mib", "policy", "shadow_policies", "speed", "simulate"],
                      name: "[[vm]]")
        guard let id = try string(t, "id", at: p) else { throw error(p, "[[vm]] needs an 'id'") }
        guard VMInfo.isValidID(Array(id.utf8)) else {
            throw error("\(p).id", "'id' must match [A-Za-z0-9_.:-]{1,64}, got '\(id)'")
        }
        let sim = try table(t, "simulate", at: p) ?? TOMLTable()
        let sp = "\(p).simulate"
        var workload = WorkloadSpec.simulate(SimulationSpec())
        if let preset = try string(sim, "preset", at: sp) {
            do { workload = try WorkloadSpec.preset(named: preset) } catch { throw self.error("\(sp).preset", error.message) }
        }
        // A daemon's simulated VM runs until stopped unless its length is given.
        if sim["events"] == nil, sim["duration_s"] == nil, case .simulate = workload {
            try apply(&workload, "events", String(SimulationSpec.maxEvents), at: sp)
        }
        try apply(&workload, "vm", id, at: p + ".id")
        if let n = try integer(t, "l1_vcpus", at: p, 1...VCPULimit.count) { try apply(&workload, "l1_vcpus", String(n), at: "\(p).l1_vcpus") }
        if let n = try integer(t, "memory_mib", at: p, 1...(1 << 24)) { try apply(&workload, "memory_mib", String(n), at: "\(p).memory_mib") }
        for key in sim.keys.sorted() where key != "preset" {
            guard let v = sim[key] else { continue }
            let text: String
            if let s = v.string { text = s } else if let b = v.bool { text = b ? "true" : "false" }
            else if let i = v.int { text = String(i) } else if let d = v.double { text = String(d) }
            else { throw error("\(sp).\(key)", "'\(key)' must be a string, number or boolean") }
            if key == "vm" { throw error("\(sp).vm", "set the VM's name with [[vm]] id, not [vm.simulate] vm") }
            try apply(&workload, key, text, at: "\(sp).\(key)")
        }
        return DaemonConfig.SimulatedVM(
            id: id, workload: workload,
            policy: try policy(t, "policy", at: p) ?? defaults.policy,
            shadowPolicies: try policies(t, "shadow_policies", at: p) ?? defaults.shadowPolicies,
            speed: try speed(t, at: p, default: .realtime))
    }

    func apply(_ w: inout WorkloadSpec, _ key: String, _ value: String, at keyPath: String) throws(ConfigError) {
        do { try w.set(key, value) } catch { throw self.error(keyPath, error.message) }
    }

    func replaySource(_ t: TOMLTable, at p: String, defaults: DaemonConfig.Defaults) throws(ConfigError) -> DaemonConfig.ReplaySource {
        try checkKeys(t, at: p, allowed: ["trace", "format", "speed", "loop", "ordering", "vm", "policy", "shadow_policies"],
                      name: "[[replay]]")
        guard let trace = try string(t, "trace", at: p) else { throw error(p, "[[replay]] needs a 'trace' file") }
        if checkFiles, !isReadableFile(trace) {
            throw error("\(p).trace", "'trace': cannot read '\(trace)'")
        }
        var format = TraceFileSequence.Format.auto
        if let f = try string(t, "format", at: p) {
            guard let x = TraceFileSequence.Format(rawValue: f) else {
                throw error("\(p).format", "'format' must be auto, native or ftrace, got '\(f)'")
            }
            format = x
        }
        var ordering = Ordering.concurrent
        if let o = try string(t, "ordering", at: p) {
            guard let x = Ordering(rawValue: o) else { throw error("\(p).ordering", "'ordering' must be strict or concurrent, got '\(o)'") }
            ordering = x
        }
        let vm = try string(t, "vm", at: p)
        if let vm, !VMInfo.isValidID(Array(vm.utf8)) {
            throw error("\(p).vm", "'vm' must match [A-Za-z0-9_.:-]{1,64}, got '\(vm)'")
        }
        return DaemonConfig.ReplaySource(
            trace: trace, format: format, speed: try speed(t, at: p, default: .max),
            loop: try boolean(t, "loop", at: p) ?? false, ordering: ordering, vm: vm,
            policy: try policy(t, "policy", at: p) ?? defaults.policy,
            shadowPolicies: try policies(t, "shadow_policies", at: p) ?? defaults.shadowPolicies)
    }

    func liveSource(_ t: TOMLTable, at p: String, defaults: DaemonConfig.Defaults) throws(ConfigError) -> DaemonConfig.LiveSource {
        try checkKeys(t, at: p, allowed: ["trace", "format", "vm", "policy", "shadow_policies", "waiting_after_s"],
                      name: "[[live]]")
        guard let trace = try string(t, "trace", at: p) else { throw error(p, "[[live]] needs a 'trace' (a FIFO, a file or trace_pipe)") }
        guard trace.hasPrefix("/") else { throw error("\(p).trace", "'trace' must be an absolute path, got '\(trace)'") }
        if checkFiles, let problem = liveInputProblem(trace) {
            throw error("\(p).trace", "'trace': \(problem)")
        }
        var format = LiveTrace.Format.ftrace
        if let f = try string(t, "format", at: p) {
            guard let x = LiveTrace.Format(rawValue: f) else {
                throw error("\(p).format", "'format' must be ftrace or native, got '\(f)'")
            }
            format = x
        }
        let vm = try string(t, "vm", at: p)
        if let vm, !VMInfo.isValidID(Array(vm.utf8)) {
            throw error("\(p).vm", "'vm' must match [A-Za-z0-9_.:-]{1,64}, got '\(vm)'")
        }
        return DaemonConfig.LiveSource(
            trace: trace, format: format, vm: vm,
            policy: try policy(t, "policy", at: p) ?? defaults.policy,
            shadowPolicies: try policies(t, "shadow_policies", at: p) ?? defaults.shadowPolicies,
            waitingAfterS: try number(t, "waiting_after_s", at: p, 0.1...86400) ?? 10)
    }
}
