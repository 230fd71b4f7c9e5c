"""End-to-end checks of `nestcache simulate`, `convert`, `sweep` and `compare --simulate/--preset`
(DESIGN §5, §6, §9, §10): round trips through the native format, output shapes, exit codes."""
import csv
import io
import json

import pytest

from conftest import REPO, replay_json, run

FTRACE = REPO / "Tests" / "Fixtures" / "ftrace"
# Fixtures that read without --skip-invalid (bad_lines.txt is for the error paths), with the real
# captures and constructed layouts of test_cli_ftrace_layouts.py.
FTRACE_OK = sorted(p for p in FTRACE.glob("*.txt") if p.name != "bad_lines.txt") + sorted(
    FTRACE.glob("real/*.txt")) + sorted(FTRACE.glob("constructed/*.txt"))
PRESETS = ["selftest-migrate", "selftest-sched", "microvm-dense", "cloud-mixed", "thrash"]
SPEC = "l1_vcpus=4,l2_vcpus=20,scheduler=zipf,migration_rate=0.05,events=20000,seed=7"
MAGIC = "# nestcache-trace v1"


def ok(proc, what):
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\nstderr:\n{proc.stderr}"
    return proc


def policies_text(compare_json_text):
    """The `"policies":[...]` member of `compare --output json`, exactly as printed."""
    start = compare_json_text.index('"policies":')
    end = compare_json_text.index("}]", start) + 2
    return compare_json_text[start:end]


# --- simulate ---------------------------------------------------------------------------------

def test_list_presets_lists_the_five(nestcache):
    out = ok(run(nestcache, "simulate", "--list-presets"), "--list-presets").stdout
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == PRESETS
    assert all(len(line.split(None, 1)) == 2 for line in lines), "every preset has a summary"


@pytest.mark.parametrize("how", [("spec", SPEC), ("preset", "thrash"), ("preset", "selftest-sched")])
def test_emit_then_replay_equals_compare_simulate(nestcache, tmp_path, how):
    kind, value = how
    workload = [value] if kind == "spec" else ["--preset", value]
    extra = ["--set", "events=30000"] if value == "thrash" else []
    trace = tmp_path / "sim.trace"
    ok(run(nestcache, "simulate", *workload, *extra, "--emit", trace), "simulate")
    assert trace.read_text().splitlines()[0] == MAGIC

    on_file = ok(run(nestcache, "compare", trace, "--output", "json"), "compare FILE").stdout
    flag = ["--simulate", value] if kind == "spec" else ["--preset", value]
    direct = ok(run(nestcache, "compare", *flag, *extra, "--output", "json"), "compare --simulate").stdout
    # Same counters, byte for byte (the figures after them differ: invalid_lines vs simulated_*).
    assert policies_text(on_file) == policies_text(direct)

    # And replay of the file agrees with compare's rows, policy by policy.
    rows = {r["policy"]: r for r in json.loads(direct)["policies"]}
    for policy, row in rows.items():
        rep = replay_json(nestcache, trace, policy, context=f"{how} {policy}")["totals"]
        for key in ["switches", "misses", "recycles", "uncached", "steals", "peak_mapped_pages"]:
            assert rep[key] == row[key], f"{how} {policy}: replay {key}={rep[key]}, compare {row[key]}"

    sim = json.loads(direct)
    if kind == "spec":
        # The simulator's own count of switches equals every engine's (DESIGN §6 model).
        assert sim["simulated_switches"] == rows["per-vm-table:8"]["switches"]


def test_emit_is_deterministic_and_stdout_matches_file(nestcache, tmp_path):
    a, b = tmp_path / "a.trace", tmp_path / "b.trace"
    ok(run(nestcache, "simulate", SPEC, "--emit", a), "a")
    ok(run(nestcache, "simulate", SPEC, "--emit", b), "b")
    assert a.read_bytes() == b.read_bytes()
    out = ok(run(nestcache, "simulate", SPEC, "--emit", "-"), "stdout").stdout
    assert out == a.read_text()
    other = ok(run(nestcache, "simulate", SPEC.replace("seed=7", "seed=8"), "--emit", "-"), "seed 8").stdout
    assert other != out


@pytest.mark.parametrize("args", [
    ["--preset", "thrash", "--set", "no_such_key=1"],
    ["--preset", "no-such-preset"],
    ["l1_vcpus=0"],
    ["l1_vcpus=4,l2_vcpus"],
    ["--preset", "thrash", "--set", "migration_rate=2"],
    ["--preset", "selftest-sched", "--set", "n=99999"],
    ["--preset", "thrash", "--set", "events=1,seed=2"],
    ["l1_vcpus=2", "--preset", "thrash"],
    [],
])
def test_failing_simulate_exits_64_and_leaves_no_file(nestcache, tmp_path, args):
    target = tmp_path / "out.trace"
    proc = run(nestcache, "simulate", *args, "--emit", target)
    assert proc.returncode == 64, f"{args}: exit {proc.returncode}, stderr: {proc.stderr}"
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("Error: ") and len(first) > 10, f"{args}: {proc.stderr!r}"
    assert not target.exists(), f"{args}: {target} was created"
    assert list(tmp_path.iterdir()) == [], f"{args}: left {list(tmp_path.iterdir())}"


def test_simulate_unknown_key_names_it(nestcache, tmp_path):
    proc = run(nestcache, "simulate", "--preset", "thrash", "--set", "l3_vcpus=2", "--emit", tmp_path / "x")
    assert proc.returncode == 64
    assert "l3_vcpus" in proc.stderr.splitlines()[0]


def test_simulate_needs_emit(nestcache):
    proc = run(nestcache, "simulate", "--preset", "thrash")
    assert proc.returncode == 64 and "--emit" in proc.stderr


def test_simulate_into_missing_directory_fails_without_a_file(nestcache, tmp_path):
    target = tmp_path / "no-such-dir" / "x.trace"
    proc = run(nestcache, "simulate", "--preset", "selftest-sched", "--emit", target)
    assert proc.returncode == 1, proc.stderr
    assert not target.parent.exists()


# --- compare with workloads -------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [str(REPO / "samples" / "web0.trace"), "--preset", "thrash"],
    ["--simulate", SPEC, "--preset", "thrash"],
    ["--set", "events=10"],
    ["--preset", "thrash", "--set", "bogus"],
    ["--preset", "thrash", "--format", "ftrace"],
    [],
])
def test_compare_workload_usage_errors_exit_64(nestcache, args):
    proc = run(nestcache, "compare", *args)
    assert proc.returncode == 64, f"{args}: exit {proc.returncode}, stderr: {proc.stderr}"
    assert proc.stderr.startswith("Error: "), proc.stderr


def test_compare_set_changes_the_preset(nestcache):
    base = json.loads(ok(run(nestcache, "compare", "--preset", "selftest-sched", "--output", "json"), "base").stdout)
    more = json.loads(ok(run(nestcache, "compare", "--preset", "selftest-sched", "--set", "n=4",
                             "--output", "json"), "n=4").stdout)
    seed = {r["policy"]: r for r in base["policies"]}["per-vm-table:8"]
    seed4 = {r["policy"]: r for r in more["policies"]}["per-vm-table:8"]
    # DESIGN §4, sched, s = 4: n = 12 > 8 -> uncached (12-8)*4 = 16; n = 4 -> hits 12, misses 4.
    assert (seed["switches"], seed["uncached"]) == (48, 16)
    assert (seed4["switches"], seed4["misses"], seed4["uncached"]) == (16, 4, 0)


# --- convert ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", FTRACE_OK, ids=lambda p: p.name)
def test_convert_then_replay_equals_replay_of_ftrace(nestcache, tmp_path, fixture):
    out = tmp_path / "converted.trace"
    proc = ok(run(nestcache, "convert", fixture, "--to", "native", out), f"convert {fixture.name}")
    assert out.read_text().splitlines()[0] == MAGIC
    for key in ["invalid_lines", "evmcs_skipped", "unresolved_clears", "lost_events"]:
        assert f"{key}=" in proc.stderr, f"{fixture.name}: {key} not reported: {proc.stderr!r}"
    for policy in ["per-vm-table:8", "per-vcpu-lru:3", "map-per-entry"]:
        direct = replay_json(nestcache, fixture, policy, context=f"{fixture.name} direct")
        again = replay_json(nestcache, out, policy, context=f"{fixture.name} converted")
        assert again["totals"] == direct["totals"], f"{fixture.name} {policy}"
        assert again["vms"] == direct["vms"], f"{fixture.name} {policy}"


def test_convert_reports_reader_figures(nestcache, tmp_path):
    proc = ok(run(nestcache, "convert", FTRACE / "tracecmd_report.txt", "--to", "native",
                  tmp_path / "t.trace"), "convert")
    # The fixture has one `reason VMCLEAR` exit and one `[LOST 12 EVENTS]` marker.
    assert "unresolved_clears=1" in proc.stderr and "lost_events=12" in proc.stderr, proc.stderr
    proc = ok(run(nestcache, "convert", FTRACE / "evmcs.txt", tmp_path / "e.trace"), "evmcs")
    assert "evmcs_skipped=2" in proc.stderr, proc.stderr


def test_convert_raises_times_that_step_back(nestcache, tmp_path):
    # raw_tgid.txt merges CPU buffers: one line is earlier than the one before it.
    out = tmp_path / "t.trace"
    proc = ok(run(nestcache, "convert", FTRACE / "raw_tgid.txt", out), "convert")
    assert "raised" in proc.stderr
    times = [int(line.split()[0]) for line in out.read_text().splitlines() if not line.startswith("#")]
    assert times == sorted(times)


def test_convert_native_to_native_and_vm_name(nestcache, tmp_path):
    src = REPO / "samples" / "web0.trace"
    out = tmp_path / "copy.trace"
    ok(run(nestcache, "convert", src, "--to", "native", out), "native to native")
    a = replay_json(nestcache, src, "per-vm-table:8")
    b = replay_json(nestcache, out, "per-vm-table:8")
    assert a["totals"] == b["totals"] and a["vms"] == b["vms"]
    named = tmp_path / "named.trace"
    ok(run(nestcache, "convert", FTRACE / "svm_vmcb.txt", named, "--vm", "guest7"), "--vm")
    assert "# vm guest7" in named.read_text()


def test_convert_bad_input_exits_65_and_leaves_no_file(nestcache, tmp_path):
    out = tmp_path / "bad.trace"
    proc = run(nestcache, "convert", FTRACE / "bad_lines.txt", "--to", "native", out)
    assert proc.returncode == 65, proc.stderr
    assert "bad_lines.txt:4: " in proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = ok(run(nestcache, "convert", FTRACE / "bad_lines.txt", out, "--skip-invalid"), "skip")
    assert "invalid_lines=11" in proc.stderr


def test_convert_missing_input_exits_66(nestcache, tmp_path):
    proc = run(nestcache, "convert", tmp_path / "missing.txt", "--to", "native", tmp_path / "out.trace")
    assert proc.returncode == 66, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--to", "json"], ["only-one-argument"], []])
def test_convert_usage_exits_64(nestcache, tmp_path, args):
    full = [FTRACE / "evmcs.txt", tmp_path / "o.trace", *args] if args and args[0] == "--to" else args
    proc = run(nestcache, "convert", *full)
    assert proc.returncode == 64, f"{args}: {proc.stderr}"


# --- sweep ------------------------------------------------------------------------------------

SWEEP_POLICIES = (["map-per-entry"] + [f"per-vm-table:{r}" for r in (1, 2, 4, 8, 16)]
                  + [f"per-vcpu-lru:{k}" for k in (0, 1, 3, 7, 15)])
COLUMNS = ["ratio", "l1_vcpus", "l2_vcpus", "policy", "switches", "hits", "hit_ratio", "misses",
           "recycles", "uncached", "steals", "map_unmap_pages_per_1k_entries", "peak_mapped_pages",
           "exposure", "overhead_ns_per_entry"]


def sweep(nestcache, *args):
    return ok(run(nestcache, "sweep", *args), f"sweep {args}").stdout


def test_sweep_json_selftest_rows(nestcache):
    out = json.loads(sweep(nestcache, "--preset", "selftest-migrate", "--ratios", "4,12", "--output", "json"))
    rows = out["rows"]
    assert [(r["ratio"], r["policy"]) for r in rows] == [(n, p) for n in (4, 12) for p in SWEEP_POLICIES]
    assert all(list(r) == COLUMNS for r in rows)
    by = {(r["ratio"], r["policy"]): r for r in rows}
    # DESIGN §4 migrate, s = 4, C = R: n <= C -> hits n(s-1); n > C -> hits 0, recycles ns - C.
    assert (by[(4, "per-vm-table:4")]["hits"], by[(4, "per-vm-table:4")]["recycles"]) == (12, 0)
    assert (by[(4, "per-vm-table:2")]["hits"], by[(4, "per-vm-table:2")]["recycles"]) == (0, 14)
    assert (by[(12, "per-vm-table:8")]["hits"], by[(12, "per-vm-table:8")]["recycles"]) == (0, 40)
    assert (by[(12, "per-vm-table:16")]["hits"], by[(12, "per-vm-table:16")]["recycles"]) == (36, 0)
    assert all(r["l1_vcpus"] == 1 and r["l2_vcpus"] == r["ratio"] for r in rows)
    assert by[(4, "map-per-entry")]["exposure"] is None  # the selftest declares no memory


def test_sweep_csv_default_ratios_and_l2(nestcache):
    text = sweep(nestcache, "--simulate", "l1_vcpus=2,events=3000", "--output", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == COLUMNS
    ratios = [1, 2, 4, 8, 16, 32]
    assert [(int(r["ratio"]), r["policy"]) for r in rows] == [(x, p) for x in ratios for p in SWEEP_POLICIES]
    assert all(int(r["l2_vcpus"]) == 2 * int(r["ratio"]) and r["l1_vcpus"] == "2" for r in rows)
    for r in rows:
        assert int(r["hits"]) + int(r["misses"]) == int(r["switches"]), r
        assert float(r["exposure"]) > 0  # the simulated VM declares its memory


def test_sweep_markdown(nestcache):
    text = sweep(nestcache, "--preset", "thrash", "--set", "events=5000", "--ratios", "9",
                 "--policies", "per-vm-table:8,per-vcpu-lru:8", "--output", "markdown")
    lines = text.splitlines()
    assert lines[0].startswith("| L2:L1 |") and lines[1].startswith("| ---:")
    assert len(lines) == 4
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [c[3] for c in cells] == ["per-vm-table:8", "per-vcpu-lru:8"]
    assert all(c[0] == "9" and c[1] == "4" and c[2] == "36" for c in cells)


def test_sweep_is_independent_of_jobs(nestcache):
    args = ["--preset", "cloud-mixed", "--set", "events=20000", "--ratios", "1,3", "--output", "csv"]
    assert sweep(nestcache, *args, "--jobs", "1") == sweep(nestcache, *args, "--jobs", "2") \
        == sweep(nestcache, *args, "--jobs", "7")


def test_sweep_of_trace_files_matches_replay(nestcache):
    sample = REPO / "samples" / "web0.trace"
    out = json.loads(sweep(nestcache, sample, "--output", "json", "--jobs", "2"))
    assert [r["policy"] for r in out["rows"]] == SWEEP_POLICIES
    assert all(r["ratio"] is None and r["l2_vcpus"] is None for r in out["rows"])
    assert out["invalid_lines"] == 0
    for r in out["rows"]:
        t = replay_json(nestcache, sample, r["policy"])["totals"]
        assert (r["hits"], r["recycles"], r["uncached"], r["peak_mapped_pages"]) == (
            t["hits"], t["recycles"], t["uncached"], t["peak_mapped_pages"]), r["policy"]


@pytest.mark.parametrize("args,code", [
    (["--preset", "thrash", "--ratios", "0"], 64),
    (["--preset", "thrash", "--ratios", "1,x"], 64),
    (["--preset", "selftest-sched", "--ratios", "5000"], 64),  # n <= 4096
    (["--preset", "thrash", "--jobs", "0"], 64),
    (["--preset", "thrash", "--policies", "lru"], 64),
    (["--preset", "thrash", "--set", "nope=1"], 64),
    ([str(REPO / "samples" / "web0.trace"), "--ratios", "2"], 64),
    ([], 64),
    (["/nonexistent/x.trace"], 66),
    ([str(FTRACE / "bad_lines.txt")], 65),
])
def test_sweep_exit_codes(nestcache, args, code):
    proc = run(nestcache, "sweep", *args)
    assert proc.returncode == code, f"{args}: exit {proc.returncode}, stderr: {proc.stderr}"
    assert proc.stderr.strip(), f"{args}: no message"
    assert proc.stdout == "", f"{args}: printed {proc.stdout[:200]!r}"


@pytest.mark.parametrize("command", ["simulate", "convert", "sweep", "compare", "replay"])
def test_every_subcommand_has_help(nestcache, command):
    proc = run(nestcache, command, "--help")
    assert proc.returncode == 0 and "USAGE" in proc.stdout.upper(), proc.stdout + proc.stderr
