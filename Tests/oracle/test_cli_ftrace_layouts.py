"""End-to-end checks of `nestcache replay FILE --format auto --json` on every ftrace layout real
tools print (DESIGN §5): perf script, trace-cmd report with libtraceevent's KVM plugin, raw
tracefs with or without the tgid column and with 4, 5 or no latency flags.

Tests/Fixtures/ftrace/real holds captures from mailing lists and bug reports, verbatim (each
file names its source); Tests/Fixtures/ftrace/constructed holds layouts for which no capture with
entries was found, built from the documented formats (each file says so). Every expected number
below is worked out by hand from DESIGN §2-5, in the comments; none is pasted from our output.
"""
import json

import pytest

from conftest import COUNTERS, GAUGES, REPO, run

FTRACE = REPO / "Tests" / "Fixtures" / "ftrace"
REAL = sorted((FTRACE / "real").glob("*.txt"))
CONSTRUCTED = sorted((FTRACE / "constructed").glob("*.txt"))
ZERO = dict.fromkeys(COUNTERS + GAUGES, 0)
FIGURES = ["invalid_lines", "evmcs_skipped", "unresolved_clears", "lost_events",
           "lost_event_markers", "pid_numbered_vcpus"]


def replay_auto(nestcache, path, *extra):
    """`replay PATH --format auto --json`: exit 0, nothing on stderr, the JSON."""
    proc = run(nestcache, "replay", path, "--format", "auto", "--json", *extra)
    assert proc.returncode == 0, f"{path.name}: exit {proc.returncode}\n{proc.stderr}"
    assert proc.stderr == "", f"{path.name}: stderr {proc.stderr!r}"
    return json.loads(proc.stdout)


def counters(c):
    return {k: c[k] for k in COUNTERS + GAUGES}


def figures(out):
    return {k: out[k] for k in FIGURES}


# --- real captures: no invalid line; figures and skipped events counted by hand --------------

# Per file: the reader's figures that are not 0, and the lines of unused events by name (counted
# by hand in the file; the Swift tests list them line by line). None of these captures has an
# entry with a control block GPA (the one of bugzilla 220549 is an eVMCS entry), so every
# counter is 0 and no VM is registered.
REAL_EXPECTED = {
    # perf script, bugzilla 220549: 58 lines: 5 kvm_entry, 5 kvm_exit (plugin, no vcpu),
    # 2 kvm_nested_vmexit (CAN'T FIND FIELD ...), 1 kvm_nested_vmenter with vmcs
    # 0xffffffffffffffff (eVMCS: skipped, counted), and 45 lines of 15 other events.
    "perf_script_bugzilla_220549.txt": (
        {"evmcs_skipped": 1},
        {"kvm_apic": 2, "kvm_apic_accept_irq": 2, "kvm_apicv_accept_irq": 2, "kvm_emulate_insn": 1,
         "kvm_eoi": 2, "kvm_fpu": 7, "kvm_ioapic_set_irq": 6, "kvm_mmio": 3, "kvm_msi_set_irq": 1,
         "kvm_msr": 1, "kvm_nested_vmexit_inject": 3, "kvm_pic_set_irq": 4, "kvm_set_irq": 7,
         "kvm_userspace_exit": 3, "vcpu_match_mmio": 1}),
    # 4 kvm_nested_vmexit lines: 2 with the plugin's CAN'T FIND FIELD prefix, 2 `rip 400433`.
    "tracecmd_plugin_cant_find_field.txt": ({}, {}),
    # 1 kvm_nested_vmexit, `reason hypercall`.
    "raw4_vkuznets_svm_hypercall.txt": ({}, {}),
    # 2 kvm_nested_vmexit, one `reason INVALID_STATE FAILED_VMENTRY`.
    "raw4_sohail_failed_vmentry.txt": ({}, {}),
    # 18 lines: 4 kvm_exit, 3 kvm_nested_vmexit, 2 kvm_entry; #DB, #DB [reinjected], #UD;
    # 2 page faults; 2 emulation tries of 2 lines each.
    "raw5_seanjc_l2_hlt_loop.txt": (
        {}, {"kvm_emulate_insn": 4, "kvm_inj_exception": 3, "kvm_page_fault": 2}),
    # 78 lines: 13 kvm_exit, 12 kvm_entry, 53 kvm/kvmmmu lines of 10 other events.
    "raw5_krause_cr0wp.txt": (
        {}, {"kvm_cpuid": 1, "kvm_cr": 3, "kvm_emulate_insn": 1, "kvm_inj_exception": 1,
             "kvm_mmu_pagetable_walk": 5, "kvm_mmu_paging_element": 19,
             "kvm_mmu_prepare_zap_page": 4, "kvm_mmu_walker_error": 2, "kvm_msr": 3,
             "kvm_tdp_mmu_spte_changed": 14}),
}


def test_every_real_fixture_has_expectations():
    assert sorted(p.name for p in REAL) == sorted(REAL_EXPECTED)


@pytest.mark.parametrize("fixture", REAL, ids=lambda p: p.name)
def test_real_capture_reads_whole(nestcache, fixture):
    nonzero, skipped = REAL_EXPECTED[fixture.name]
    out = replay_auto(nestcache, fixture)
    assert figures(out) == {**dict.fromkeys(FIGURES, 0), **nonzero}
    assert out["skipped_events"] == skipped
    assert list(out["skipped_events"]) == sorted(skipped), "skipped_events is sorted by name"
    assert counters(out["totals"]) == ZERO
    assert out["vms"] == {}


def test_real_source_is_named_in_each_fixture():
    for path in REAL:
        head = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any("Message-ID" in line or "bugzilla" in line for line in head), path.name


def test_perf_script_is_detected_not_native(nestcache):
    """--format auto reads a perf script file as ftrace: same output as --format ftrace; read as
    native it fails on its first line (exit 65)."""
    path = FTRACE / "real" / "perf_script_bugzilla_220549.txt"
    auto = replay_auto(nestcache, path)
    proc = run(nestcache, "replay", path, "--format", "ftrace", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == auto
    proc = run(nestcache, "replay", path, "--format", "native", "--json")
    assert proc.returncode == 65, proc.stderr


# --- constructed layouts with entries: counters by hand (per-vm-table:8, P = 4) ---------------

def vm(events, entries, clears, switches, hits, misses, allocs, steals, migrations,
       migration_hits, map_pages, contexts, free, mapped, peak):
    return {**ZERO, "events": events, "entries": entries, "clears": clears,
            "switches": switches, "hits": hits, "misses": misses, "allocs": allocs,
            "steals": steals, "migrations": migrations, "migration_hits": migration_hits,
            "map_pages": map_pages, "contexts": contexts, "free": free, "mapped_pages": mapped,
            "peak_mapped_pages": peak}


CONSTRUCTED_EXPECTED = {
    # Raw, record-tgid, 5 flags. VM 4100: v0 enters A (miss, alloc, map 4), v1 enters B (miss,
    # alloc, map 4), v0 enters B: a switch, B's context is attached to v1: hit, steal; B was last
    # switched to by v1: migration, and a migration hit; that context maps B: no map. v0 enters B
    # again: no switch, nothing mapped. The (-------) thread goes to --vm (the file's base name),
    # vCPU 5 by its comm: one miss, alloc, map 4. One VMCLEAR exit, unresolved.
    "raw_tgid_nested_vmenter.txt": (
        {"4100": vm(4, 4, 0, 3, 1, 2, 2, 1, 1, 1, 8, 2, 0, 8, 8),
         "raw_tgid_nested_vmenter": vm(1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 4, 1, 0, 4, 4)},
        {"unresolved_clears": 1}, {"kvm_fpu": 1, "sched_switch": 1}),
    # perf script, plugin: v0 (kvm_entry) enters A, v3 (comm) enters B: 2 misses, 2 allocs,
    # map 8. v0 enters B, then v3 enters A: each a hit on the other vCPU's context (a context
    # stays attached when its vCPU switches away): 2 steals, 2 migrations, 2 migration hits,
    # nothing mapped. The plugin's `reason VMCLEAR` is unresolved.
    "perf_script_default.txt": (
        {"perf_script_default": vm(4, 4, 0, 4, 2, 2, 2, 2, 2, 2, 8, 2, 0, 8, 8)},
        {"unresolved_clears": 1},
        {"kvm_fpu": 1, "kvm_nested_vmexit_inject": 1, "sched:sched_switch": 1}),
    # perf script -F +pid: VM 7000 (pid): threads 7001, 7002 numbered v0, v1; v0 A, v1 B (2
    # misses, map 8), v0 B: hit, steal, migration hit. VM 8000: v0 (comm) A: miss, map 4.
    "perf_script_pid_tid.txt": (
        {"7000": vm(3, 3, 0, 3, 1, 2, 2, 1, 1, 1, 8, 2, 0, 8, 8),
         "8000": vm(1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 4, 1, 0, 4, 4)},
        {"pid_numbered_vcpus": 2}, {}),
    # trace-cmd, SVM, plugin: v0 enters A (miss, alloc, map 4); vmcb B on v0: clear A (A's
    # context detached to the free list), enter B (miss; the table holds 1 < 8: alloc, map 4);
    # v1 enters A: hit on the free context (leaves the free list), migration hit (A was v0's),
    # still maps A; vmcb A on v0: clear B (detached), enter A: hit, steal from v1, migration hit.
    # 2 clears + 4 entries = 6 events; free list: B's context.
    "tracecmd_svm_plugin.txt": (
        {"tracecmd_svm_plugin": vm(6, 4, 2, 4, 2, 2, 2, 1, 2, 2, 8, 2, 1, 8, 8)},
        {}, {"kvm_nested_vmexit_inject": 1}),
}


def test_every_constructed_fixture_has_expectations():
    assert sorted(p.name for p in CONSTRUCTED) == sorted(CONSTRUCTED_EXPECTED)
    for path in CONSTRUCTED:
        assert "CONSTRUCTED, not captured" in path.read_text().splitlines()[0], path.name


@pytest.mark.parametrize("fixture", CONSTRUCTED, ids=lambda p: p.name)
def test_constructed_layout_counters(nestcache, fixture):
    vms, nonzero, skipped = CONSTRUCTED_EXPECTED[fixture.name]
    out = replay_auto(nestcache, fixture, "--policy", "per-vm-table:8")
    assert figures(out) == {**dict.fromkeys(FIGURES, 0), **nonzero}
    assert out["skipped_events"] == skipped
    assert {name: counters(c) for name, c in out["vms"].items()} == vms
    assert counters(out["totals"]) == {k: sum(c[k] for c in vms.values()) for k in ZERO}


def test_skipped_events_in_compare_and_convert(nestcache, tmp_path):
    """The reader's figures, skipped_events included, wherever they are reported."""
    path = FTRACE / "constructed" / "perf_script_default.txt"
    proc = run(nestcache, "compare", path, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["skipped_events"] == {
        "kvm_fpu": 1, "kvm_nested_vmexit_inject": 1, "sched:sched_switch": 1}
    proc = run(nestcache, "convert", path, "--to", "native", tmp_path / "t.trace")
    assert proc.returncode == 0, proc.stderr
    assert "skipped_events=kvm_fpu:1,kvm_nested_vmexit_inject:1,sched:sched_switch:1" in proc.stderr
    # A native trace reads no event names: no skipped_events member.
    out = json.loads(run(nestcache, "replay", tmp_path / "t.trace", "--json").stdout)
    assert "skipped_events" not in out


def test_files_of_one_run_add_skipped_events(nestcache):
    a = FTRACE / "real" / "raw5_seanjc_l2_hlt_loop.txt"  # kvm_emulate_insn 4, kvm_inj_exception 3, kvm_page_fault 2
    b = FTRACE / "real" / "raw5_krause_cr0wp.txt"  # kvm_emulate_insn 1, kvm_inj_exception 1, ...
    proc = run(nestcache, "replay", a, b, "--format", "auto", "--json")
    assert proc.returncode == 0, proc.stderr
    skipped = json.loads(proc.stdout)["skipped_events"]
    assert skipped["kvm_emulate_insn"] == 5 and skipped["kvm_inj_exception"] == 4
    assert skipped["kvm_page_fault"] == 2 and skipped["kvm_mmu_paging_element"] == 19
