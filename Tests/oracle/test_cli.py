"""End-to-end checks of the built `nestcache replay` (DESIGN §4, §5, §9): exit codes, error
messages, JSON shape, and the §4 identities on the shipped sample trace."""
import json
import math
import re
import subprocess
import sys

import pytest

from conftest import COUNTERS, DERIVED, GAUGES, REPO, replay_json, run

SAMPLE = REPO / "samples" / "web0.trace"
POLICIES = ["map-per-entry", "single", "per-vcpu-lru:3", "per-vcpu-lru:7", "per-vm-table:8",
            "per-vm-table:1"]
MAGIC = "# nestcache-trace v1"


def test_sample_trace_is_what_the_script_makes():
    """samples/web0.trace is generated, not edited: regenerate with `make sample`."""
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "make-sample-trace.py")],
                          capture_output=True, text=True, check=True).stdout
    assert made == SAMPLE.read_text(), "samples/web0.trace is stale: run `make sample`"


def check_identities(c, where):
    """DESIGN §4 identities on one counters-and-gauges object."""
    for key in COUNTERS + GAUGES + DERIVED:
        assert key in c, f"{where}: key {key!r} missing from {sorted(c)}"
    for key in COUNTERS + GAUGES:
        assert isinstance(c[key], int) and c[key] >= 0, f"{where}: {key} = {c[key]!r}"
    assert c["hits"] + c["misses"] == c["switches"], f"{where}: hits + misses != switches: {c}"
    assert c["allocs"] + c["recycles"] + c["uncached"] == c["misses"], (
        f"{where}: allocs + recycles + uncached != misses: {c}")
    assert c["events"] == c["loads"] + c["entries"] + c["clears"], (
        f"{where}: events != loads + entries + clears: {c}")
    assert c["migration_hits"] <= c["hits"], f"{where}: migration_hits > hits: {c}"
    assert c["migrations"] <= c["switches"], f"{where}: migrations > switches: {c}"
    assert c["map_pages"] - c["unmap_pages"] == c["mapped_pages"], (
        f"{where}: map_pages - unmap_pages != mapped_pages: {c}")
    assert c["mapped_pages"] <= c["peak_mapped_pages"], f"{where}: mapped > peak: {c}"
    if c["switches"] == 0:
        assert c["hit_ratio"] is None, f"{where}: hit_ratio with no switches: {c}"
    else:
        # Printed with 6 decimals.
        assert math.isclose(c["hit_ratio"], c["hits"] / c["switches"], abs_tol=1e-6), (
            f"{where}: hit_ratio != hits / switches: {c}")


@pytest.mark.parametrize("policy", POLICIES)
def test_sample_replay_json_and_identities(nestcache, policy):
    out = replay_json(nestcache, SAMPLE, policy, context=f"sample {policy}")
    assert out["policy"] == policy
    assert out["pages_per_context"] == 4  # the default (DESIGN §1); the trace's VMs declare their own
    assert out["invalid_lines"] == 0
    assert sorted(out["vms"]) == ["web0", "win1"]
    check_identities(out["totals"], f"{policy} totals")
    for vm, c in out["vms"].items():
        check_identities(c, f"{policy} vm {vm}")
    # Totals are sums over VMs, for counters and gauges alike (DESIGN §4).
    for key in COUNTERS + GAUGES:
        assert out["totals"][key] == sum(c[key] for c in out["vms"].values()), (
            f"{policy}: totals.{key} is not the sum over VMs")
    # Policy-independent facts of the sample (hand-checkable with awk).
    assert out["totals"]["events"] == 3000
    assert out["totals"]["migrations"] > 0
    if policy == "map-per-entry":
        assert out["totals"]["hits"] == 0 and out["totals"]["uncached"] == out["totals"]["misses"]
        assert out["totals"]["contexts"] == 0


def test_replay_is_deterministic_and_policy_independent_counts_agree(nestcache):
    runs = {p: replay_json(nestcache, SAMPLE, p, context=p) for p in POLICIES}
    again = replay_json(nestcache, SAMPLE, "per-vm-table:8", context="again")
    assert again == runs["per-vm-table:8"], "two replays of the same trace differ"
    # DESIGN §2: the workload's state is the same under every policy.
    for key in ["events", "loads", "entries", "clears", "switches", "migrations"]:
        values = {p: r["totals"][key] for p, r in runs.items()}
        assert len(set(values.values())) == 1, f"{key} differs between policies: {values}"


def test_pages_option_sets_pages_per_context(nestcache, tmp_path):
    trace = tmp_path / "p.trace"
    # One vCPU enters two GPAs in turn: under map-per-entry every enter maps P pages.
    trace.write_text(f"{MAGIC}\n1 vm 0 enter 0x1000\n2 vm 0 enter 0x2000\n3 vm 0 load 0x1000\n")
    out = replay_json(nestcache, trace, "map-per-entry", "--pages", "5", context="--pages 5")
    assert out["pages_per_context"] == 5
    # enter 0x1000 maps 5; next event unmaps them, enter 0x2000 maps 5; the load unmaps them.
    assert (out["totals"]["map_pages"], out["totals"]["unmap_pages"]) == (10, 10)
    assert out["totals"]["peak_mapped_pages"] == 5


def test_separators_comments_and_blank_lines(nestcache, tmp_path):
    """DESIGN §5: fields split on runs of spaces or tabs; `#` lines and blank lines are comments."""
    plain = tmp_path / "plain.trace"
    fancy = tmp_path / "fancy.trace"
    plain.write_text(f"{MAGIC}\n10 a 0 load 0x1000\n20 a 0 enter 0x1000\n30 a 1 enter 0x1000\n"
                     "40 a 0 clear 0x1000\n")
    fancy.write_text(f"{MAGIC}\n# a comment\n\n10\ta\t0\tload\t0x1000\n20   a 0  enter \t0x1000\n"
                     "\n30 a 1 enter 0x1000\n# another\n40 a 0 clear 0x1000\n")
    a = replay_json(nestcache, plain, "per-vm-table:8", context="plain")
    b = replay_json(nestcache, fancy, "per-vm-table:8", context="fancy")
    assert a["totals"] == b["totals"]
    assert a["totals"]["migrations"] == 1  # vCPU 1 switched to a GPA vCPU 0 switched to last


def test_missing_file_exits_66(nestcache, tmp_path):
    missing = tmp_path / "no-such.trace"
    proc = run(nestcache, "replay", missing, "--policy", "single", "--json")
    assert proc.returncode == 66, f"exit {proc.returncode}, stderr: {proc.stderr}"
    assert "no-such.trace" in proc.stderr


# A bare `per-vcpu-lru` / `per-vm-table` takes the default K = 3 / R = 8 (DESIGN §3).
@pytest.mark.parametrize("policy", ["lru", "per-vcpu-lru:x", "per-vcpu-lru:-1",
                                    "per-vm-table:0", "single:2", ""])
def test_bad_policy_exits_64(nestcache, policy):
    proc = run(nestcache, "replay", SAMPLE, "--policy", policy, "--json")
    assert proc.returncode == 64, f"--policy {policy!r}: exit {proc.returncode}, stderr: {proc.stderr}"
    assert proc.stderr.strip(), f"--policy {policy!r}: no message on stderr"


def test_unknown_option_exits_64(nestcache):
    proc = run(nestcache, "replay", SAMPLE, "--no-such-option")
    assert proc.returncode == 64, f"exit {proc.returncode}, stderr: {proc.stderr}"


# (lines after the magic, 1-based line number of the bad line)
BAD_TRACES = {
    "bad magic": ("# nestcache-trace v2\n1 a 0 load 0x1000\n", 1),
    "unknown op": (f"{MAGIC}\n1 a 0 load 0x1000\n2 a 0 vmptrld 0x1000\n", 3),
    "unaligned gpa": (f"{MAGIC}\n1 a 0 load 0x1000\n2 a 0 enter 0x1008\n", 3),
    "gpa not hex": (f"{MAGIC}\n1 a 0 load 4096\n", 2),
    "gpa above 2^52": (f"{MAGIC}\n1 a 0 load 0x10000000000000\n", 2),
    "time goes back": (f"{MAGIC}\n5 a 0 load 0x1000\n\n# c\n4 a 0 enter 0x1000\n", 5),
    "missing field": (f"{MAGIC}\n1 a 0 load 0x1000\n2 a 0 enter\n", 3),
    "extra field": (f"{MAGIC}\n1 a 0 load 0x1000 junk\n", 2),
    "negative time": (f"{MAGIC}\n-1 a 0 load 0x1000\n", 2),
    "vcpu not a number": (f"{MAGIC}\n1 a x load 0x1000\n", 2),
    "vcpu too big": (f"{MAGIC}\n1 a 4096 load 0x1000\n", 2),
    "bad vm id": (f"{MAGIC}\n1 a/b 0 load 0x1000\n", 2),
}


@pytest.mark.parametrize("name", sorted(BAD_TRACES))
def test_malformed_trace_exits_65_with_file_and_line(nestcache, tmp_path, name):
    text, line = BAD_TRACES[name]
    trace = tmp_path / "bad.trace"
    trace.write_text(text)
    proc = run(nestcache, "replay", trace, "--policy", "per-vm-table:8", "--json")
    assert proc.returncode == 65, f"{name}: exit {proc.returncode}, stderr: {proc.stderr}"
    assert f"{trace}:{line}: " in proc.stderr, (
        f"{name}: expected `{trace}:{line}: message` on stderr, got: {proc.stderr!r}")


def test_json_is_one_document_on_stdout(nestcache):
    proc = run(nestcache, "replay", SAMPLE, "--policy", "per-vcpu-lru:3", "--json")
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # nothing but the JSON on stdout


def test_the_cli_links_no_daemon_libraries(nestcache):
    """Issue 12: `nestcache` talks to the daemon through NestCacheControl only; it links neither
    libsystemd nor (statically) SwiftNIO or the TOML parser. Issue 10: the Swift runtime is linked
    in (Package.swift: `-static-stdlib` in debug builds, a static executable in release ones), so
    ldd lists no Swift library, or nothing at all, and says nothing of what the Swift code uses:
    the symbols do (libsystemd's included, defined or not)."""
    ldd = subprocess.run(["ldd", str(nestcache)], capture_output=True, text=True)
    libs = ldd.stdout + ldd.stderr
    assert ldd.returncode == 0 or "not a dynamic executable" in libs, libs
    assert "libsystemd" not in libs, libs
    assert "libswiftCore" not in libs and "libFoundation" not in libs, f"Swift runtime loaded dynamically:\n{libs}"
    symbols = subprocess.run(["nm", "-C", str(nestcache)], capture_output=True, text=True).stdout
    assert symbols, "nm printed nothing"
    for module in ["NIOPosix", "NestCacheTOML", "NestCacheDaemon"]:
        assert f"{module}." not in symbols, f"nestcache contains {module}"
    for function in ["sd_notify", "sd_listen_fds", "sd_journal_sendv"]:
        assert not re.search(rf"\b{function}\b", symbols), f"nestcache refers to libsystemd's {function}"
