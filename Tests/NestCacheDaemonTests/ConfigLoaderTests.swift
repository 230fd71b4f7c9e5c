import Foundation
@testable import NestCacheDaemon
import NestCacheCore
import NestCacheWorkload
import Testing

@Suite struct ConfigLoaderTests {
    /// The repository's root, from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func embeddedDefaultEqualsTheExampleByteForByte() throws {
        let file = try String(contentsOf: Self.root.appendingPathComponent("config/nestcached.toml"), encoding: .utf8)
        #expect(EmbeddedConfig.text == file, "run scripts/embed-config.sh")
        let c = try DaemonConfig.embeddedDefault()
        #expect(c.vms.map(\.id) == ["microvm", "cloud", "thrash"])
        #expect(c.defaults.policy == .seed)
        #expect(c.vms[2].shadowPolicies == [.perVCPULRU(k: 8), .single, .mapPerEntry])
        #expect(c.daemon.socket == nil && c.daemon.socketMode == 0o660 && c.daemon.maxClients == 64)
    }

    @Test func readsEverySection() throws {
        let text = """
            [daemon]
            socket = "/tmp/x.sock"
            socket_mode = 0o600
            max_clients = 3
            idle_timeout_s = 1.5
            log_level = "debug"
            summary_interval_s = 0
            textfile = "/tmp/n.prom"
            [defaults]
            policy = "per-vcpu-lru:3"
            shadow_policies = []
            pages_per_context = 5
            map_ns = 1000
            [[vm]]
            id = "a"
            l1_vcpus = 2
            speed = 10
            [vm.simulate]
            preset = "thrash"
            events = 500
            [[replay]]
            trace = "/etc/hostname"
            format = "native"
            ordering = "strict"
            loop = true
            policy = "single"
            """
        let c = try DaemonConfig.load(text: text, path: "t.toml")
        #expect(c.daemon.socket == "/tmp/x.sock" && c.daemon.socketMode == 0o600 && c.daemon.maxClients == 3)
        #expect(c.daemon.idleTimeoutS == 1.5 && c.daemon.logLevel == .debug && c.daemon.textfile == "/tmp/n.prom")
        #expect(c.defaults.policy == .perVCPULRU(k: 3) && c.defaults.shadowPolicies.isEmpty && c.defaults.pagesPerContext == 5)
        #expect(c.defaults.cost.mapNs == 1000 && c.defaults.cost.unmapNs == 200)
        #expect(c.vms.count == 1 && c.vms[0].speed == .factor(10) && c.vms[0].policy == .perVCPULRU(k: 3))
        guard case .simulate(let sim) = c.vms[0].workload else { Issue.record("not simulated"); return }
        #expect(sim.l1VCPUs == 2 && sim.vm == "a" && sim.length == .events(500) && sim.vmclearOnSwitch)
        #expect(c.replays.count == 1 && c.replays[0].ordering == .strict && c.replays[0].loop && c.replays[0].policy == .single)
        #expect(c.replays[0].speed == .max)
    }

    /// Every error names the key and its line.
    @Test(arguments: [
        ("[daemon]\nfoo = 1", "t.toml:2: unknown key 'foo' in [daemon] (expected socket, socket_mode, max_clients, idle_timeout_s, log_level, summary_interval_s, textfile, metrics_listen, bounds_window)"),
        ("[daemon]\nmax_clients = 0", "t.toml:2: 'max_clients' must be an integer from 1 to 65536, got 0"),
        ("[daemon]\nsocket_mode = \"999\"", "t.toml:2: 'socket_mode' must be an octal mode such as \"0660\" or 0o660, got '999'"),
        ("[daemon]\nlog_level = \"loud\"", "t.toml:2: 'log_level' must be one of trace, debug, info, notice, warning, error, critical, got 'loud'"),
        ("[daemon]\nsocket = \"relative\"", "t.toml:2: 'socket' must be an absolute path shorter than 108 bytes (sun_path), got 'relative'"),
        ("[defaults]\n\npolicy = \"lru\"", "t.toml:3: 'policy': unknown policy 'lru' (expected per-vm-table:R, per-vcpu-lru:K, single or map-per-entry)"),
        ("[defaults]\nshadow_policies = [\"single\", 3]", "t.toml:2: 'shadow_policies' must be an array of policy strings"),
        ("[[vm]]\nl1_vcpus = 2", "t.toml:1: [[vm]] needs an 'id'"),
        ("[[vm]]\nid = \"a b\"", "t.toml:2: 'id' must match [A-Za-z0-9_.:-]{1,64}, got 'a b'"),
        ("[[vm]]\nid = \"a\"\n[vm.simulate]\nscheduler = \"fifo\"", "t.toml:4: scheduler must be one of round-robin, random, zipf, pinned, got 'fifo'"),
        ("[[vm]]\nid = \"a\"\n[vm.simulate]\npreset = \"nope\"", "t.toml:4: unknown preset 'nope' (known: selftest-migrate, selftest-sched, microvm-dense, cloud-mixed, thrash)"),
        ("[[vm]]\nid = \"a\"\n[[vm]]\nid = \"a\"", "t.toml:4: duplicate VM id 'a' (also [[vm]] #1)"),
        ("[[vm]]\nid = \"a\"\nspeed = \"fast\"", "t.toml:3: 'speed' must be \"max\", \"realtime\" or a factor above 0, got 'fast'"),
        ("[[replay]]\ntrace = \"/nonexistent/x.trace\"", "t.toml:2: 'trace': cannot read '/nonexistent/x.trace'"),
        ("[[replay]]\ntrace = \"/etc/hostname\"\nordering = \"fifo\"", "t.toml:3: 'ordering' must be strict or concurrent, got 'fifo'"),
        ("[[replay]]\nformat = \"native\"", "t.toml:1: [[replay]] needs a 'trace' file"),
        ("[extra]\nx = 1", "t.toml:1: unknown key 'extra' in the top level (expected daemon, defaults, vm, replay, live)"),
        ("[daemon\n", "t.toml:1: TOML syntax: "),
        ("[daemon]\nmetrics_listen = \"9464\"", "t.toml:2: 'metrics_listen' must be HOST:PORT with an IPv4 address, [IPv6 address] or localhost and a port from 0 to 65535 (\"127.0.0.1:9464\", \"[::1]:9464\"), got '9464'"),
        ("[live]\ntrace = \"/etc/hostname\"", "t.toml:1: 'live' must be an array of tables ([[live]])"),
        ("[[live]]\ntrace = \"/etc/hostname\"\nloop = true", "t.toml:3: unknown key 'loop' in [[live]] (expected trace, format, vm, policy, shadow_policies, waiting_after_s)"),
        ("[[live]]\ntrace = \"/etc/hostname\"\nformat = \"auto\"", "t.toml:3: 'format' must be ftrace or native, got 'auto'"),
        ("[[live]]\ntrace = \"relative.txt\"", "t.toml:2: 'trace' must be an absolute path, got 'relative.txt'"),
        ("[[live]]\ntrace = \"/nonexistent/x\"", "t.toml:2: 'trace': cannot read '/nonexistent/x': No such file or directory"),
        ("[[live]]\ntrace = \"/etc\"", "t.toml:2: 'trace': '/etc' is not a FIFO or a regular file"),
        ("[[live]]\ntrace = \"/etc/hostname\"\nvm = \"a b\"", "t.toml:3: 'vm' must match [A-Za-z0-9_.:-]{1,64}, got 'a b'"),
        ("[[live]]\ntrace = \"/etc/hostname\"\nwaiting_after_s = 0", "t.toml:3: 'waiting_after_s' must be a number from 0.1 to 86400, got 0"),
    ])
    func errorsNameTheKeyAndLine(_ text: String, _ message: String) {
        do {
            _ = try DaemonConfig.load(text: text, path: "t.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "got: \(error.description)")
            if !message.hasSuffix(": ") { #expect(error.description == message) }
        }
    }

    @Test(arguments: [
        ("127.0.0.1:9464", "127.0.0.1", 9464), ("localhost:0", "127.0.0.1", 0), ("0.0.0.0:65535", "0.0.0.0", 65535),
        ("[::1]:9464", "::1", 9464), ("[::]:80", "::", 80),
    ])
    func metricsListenParses(_ text: String, _ host: String, _ port: Int) throws {
        let m = try #require(MetricsListen(parsing: text))
        #expect(m.host == host && m.port == port)
    }

    @Test(arguments: ["", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80",
                      "::1:9464", "[::1]", "[::1]9464", "[127.0.0.1]:80", "example.com:80", "256.0.0.1:80", "127.0.0.1:0x50",
                      "127.0.0.1:٣"])
    func metricsListenRejects(_ text: String) {
        #expect(MetricsListen(parsing: text) == nil, "accepted \(text)")
    }

    @Test func liveSourceDefaults() throws {
        let c = try DaemonConfig.load(text: "[[live]]\ntrace = \"/etc/hostname\"\nvm = \"cap\"", path: "t.toml")
        #expect(c.lives == [DaemonConfig.LiveSource(trace: "/etc/hostname", format: .ftrace, vm: "cap", policy: .seed,
                                                    shadowPolicies: DaemonConfig.Defaults().shadowPolicies, waitingAfterS: 10)])
    }
}
