import NestCacheCore

/// `nestcache report --selftest`: the result lines of the patch's selftest, computed here.
///
/// `vmx_l2_switch_test` (tools/testing/selftests/kvm/x86, in the series) ends each run with
///
///     printf("%s %u switches with %u L2 vCPUS (%s) reuse %" PRIu64 " recycle %" PRIu64 "\n",
///            progname, nr_switches, nr_l2_vcpus,
///            use_evmcs ? "evmcs" : (sched_only ? "vmx sched" : "vmx migrate"), reuse, recycle);
///
/// - the first `%s` is `argv[0]` (printed here as `vmx_l2_switch_test`, the binary's name);
/// - `nr_switches` is the rounds `s`: every L2 vCPU is run once per round;
/// - `nr_l2_vcpus` is `n` (the selftest allows 16 at most; we take any `n` a preset takes);
/// - the mode: `vmx migrate` (`-r`: VMPTRLD, VMLAUNCH, VMCLEAR each L2 in turn),
///   `vmx sched` (VMPTRLD, VMRESUME, no VMCLEAR until after the last round), or `evmcs`
///   (Hyper-V enlightened VMCS: no GPA in our model, not produced);
/// - `reuse` and `recycle` are the VM's `nested_context_reuse` and `nested_context_recycle`
///   stats: our `hits` and `recycles` under `per-vm-table:8` (the patch's
///   `KVM_NESTED_OVERSUB_RATIO` of 8 contexts per L1 vCPU, one L1 vCPU).
///
/// The sched run's final VMCLEARs come after the last switch, so they change neither figure
/// and `SelftestSource` leaves them out. Without `-c`/`-s` the selftest runs `n` = 2..16 with
/// `s` = 4, migrate first, then sched (`defaultRuns`); our lines then diff against its output
/// once `argv[0]` is normalised.
public enum SelftestLines {
    /// The name printed for `progname`.
    public static let programName = "vmx_l2_switch_test"
    /// The policy whose stats the selftest reads.
    public static let policy = PolicySpec.perVMTable(contextsPerVCPU: 8)

    /// The selftest's own matrix when run without options: migrate n = 2..16, then sched.
    public static var defaultRuns: [SelftestSpec] {
        [SelftestSpec.Mode.migrate, .sched].flatMap { mode in (2...16).map { SelftestSpec(mode: mode, n: $0, s: 4) } }
    }

    /// One line per run, in order.
    public static func lines(_ runs: [SelftestSpec]) throws(TraceError) -> [String] {
        var out: [String] = []
        for spec in runs {
            var engines = [policy.makeEngine()]
            try Replay.drive(SelftestSource(spec), into: &engines)
            let c = engines[0].totals.counters
            out.append(line(spec, reuse: c.hits, recycle: c.recycles))
        }
        return out
    }

    /// The selftest's printf for one run.
    public static func line(_ spec: SelftestSpec, reuse: UInt64, recycle: UInt64) -> String {
        "\(programName) \(spec.s) switches with \(spec.n) L2 vCPUS (vmx \(spec.mode.rawValue)) reuse \(reuse) recycle \(recycle)"
    }
}
