"""End-to-end checks of `nestcache bounds` (DESIGN §11): the JSON's shape, values worked out by
hand, agreement with `nestcache replay`, and exit codes."""
import json

import pytest

from conftest import REPO, replay_json, run

SAMPLE = REPO / "samples" / "web0.trace"
MAGIC = "# nestcache-trace v1"

# Two VMs, their events interleaved. `alpha` declares 2 L1 vCPUs; `beta` declares nothing and
# has 2 distinct vCPUs (vCPU 3 only clears), so M = 2 for both.
HAND = f"""{MAGIC}
# vm alpha l1_vcpus=2
1 alpha 0 load 0xa000
2 beta 0 load 0x10000
3 alpha 0 enter 0xa000
4 alpha 0 load 0xb000
5 beta 0 load 0x11000
6 alpha 0 clear 0xb000
7 beta 0 load 0x12000
8 alpha 0 load 0xb000
9 beta 0 load 0x10000
10 alpha 1 load 0xa000
11 beta 3 clear 0x11000
12 alpha 0 load 0xa000
13 beta 0 load 0x11000
14 alpha 1 load 0xb000
15 beta 0 load 0x12000
16 beta 0 enter 0x12000
17 alpha 1 load 0xa000
18 beta 0 load 0x10000
"""

# Worked by hand (a = 0xa000, b = 0xb000; x, y, z = 0x10000, 0x11000, 0x12000), --kmax 3.
#
# alpha, switches (DESIGN §2): v0 a; v0 b; [v0 clear b drops v0's current] v0 b again; v1 a;
#   v0 a; v1 b; v1 a. 7 switches (the enter of a is no switch: a is v0's current).
#   v0 switches to a b b a, v1 to a b a; the VM to a b b a a b a.
#   lru_hits: position in the vCPU's most-recent-first list: v0 new, new, 0 (after the clear), 1;
#     v1 new, new, 1. K = 0: 1; K >= 1: 3.
#   opt_vcpu_hits: 1 context: v0 a b b a gets 1 whichever it keeps; v1 a b a leaves b out
#     (never needed again) and hits a: 1. K = 0: 2. 2 contexts: v0 2, v1 1: K >= 1: 3.
#   opt_vm_hits: C = R * 2 >= 2 holds a and b: every switch but the first to each: 5.
#
# beta, switches: v0 x y z x y z x (the clear on v3 is of no current; the enter of z is no switch).
#   lru_hits: a cycle of 3: x, y, z new, then each at position 2: K <= 1: 0; K >= 2: 4.
#   opt_vcpu_hits: reuse intervals x 0-3, y 1-4, z 2-5, x 3-6 (indices in the sequence).
#     1 context: at most 1 interval over any gap: x 0-3 and x 3-6: 2 hits (Belady: y and z are
#     needed after x, so they are left out). 2 contexts: x 0-3, y 1-4, x 3-6 (z 2-5 would be a
#     third over the gap 2-3): 3. 3 contexts and more: all 4.
#   opt_vm_hits: C = 1 * 2 = 2: 3 (as 2 contexts above); C = 2 * 2 = 4: 4.
EXPECTED = {
    "vms": {
        "alpha": {"switches": 7, "l1_vcpus": 2, "lru_hits": [1, 3, 3, 3],
                  "opt_vcpu_hits": [2, 3, 3, 3], "opt_vm_hits": {"1": 5, "2": 5}},
        "beta": {"switches": 7, "l1_vcpus": 2, "lru_hits": [0, 0, 4, 4],
                 "opt_vcpu_hits": [2, 3, 4, 4], "opt_vm_hits": {"1": 3, "2": 4}},
    }
}


def bounds_json(binary, *args, context=""):
    proc = run(binary, "bounds", *args, "--json")
    assert proc.returncode == 0, f"{context}: bounds exited {proc.returncode}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"{context}: expected one line of JSON, got {len(lines)}"
    return json.loads(lines[0])


def test_hand_worked_trace(nestcache, tmp_path):
    trace = tmp_path / "hand.trace"
    trace.write_text(HAND)
    # Ratios given out of order and repeated: the keys come sorted, once each.
    out = bounds_json(nestcache, trace, "--kmax", "3", "--ratios", "2,1,2", context="hand")
    assert out == EXPECTED


def check_shape(out, kmax, ratios, where):
    assert list(out) == ["vms"], f"{where}: top-level keys {list(out)}"
    for vm, b in out["vms"].items():
        w = f"{where} {vm}"
        assert list(b) == ["switches", "l1_vcpus", "lru_hits", "opt_vcpu_hits", "opt_vm_hits"], (
            f"{w}: keys {list(b)}")
        assert isinstance(b["switches"], int) and isinstance(b["l1_vcpus"], int), w
        for key in ["lru_hits", "opt_vcpu_hits"]:
            assert len(b[key]) == kmax + 1, f"{w}: {key} has {len(b[key])} entries, not kmax + 1"
            assert all(isinstance(h, int) and 0 <= h <= b["switches"] for h in b[key]), f"{w}: {key}"
            assert b[key] == sorted(b[key]), f"{w}: {key} is not monotone in K"
        assert list(b["opt_vm_hits"]) == [str(r) for r in ratios], f"{w}: opt_vm_hits keys"
        vm_hits = list(b["opt_vm_hits"].values())
        assert vm_hits == sorted(vm_hits) and all(h <= b["switches"] for h in vm_hits), f"{w}: opt_vm_hits"
        for k in range(kmax + 1):
            assert b["opt_vcpu_hits"][k] >= b["lru_hits"][k], f"{w}: OPT below LRU at K={k}"


def test_defaults_on_the_sample_agree_with_replay(nestcache):
    out = bounds_json(nestcache, SAMPLE, context="sample")
    check_shape(out, 16, [1, 2, 4, 8, 16], "sample")
    assert sorted(out["vms"]) == ["web0", "win1"]
    # lru_hits[K] is the hits of per-vcpu-lru:K; opt_vm_hits[R] bounds per-vm-table:R.
    for k in [0, 1, 3, 7, 16]:
        rep = replay_json(nestcache, SAMPLE, f"per-vcpu-lru:{k}", context=f"K={k}")
        for vm, b in out["vms"].items():
            assert b["lru_hits"][k] == rep["vms"][vm]["hits"], f"{vm} K={k}"
            assert b["switches"] == rep["vms"][vm]["switches"], vm
    for r in [1, 2, 8]:
        rep = replay_json(nestcache, SAMPLE, f"per-vm-table:{r}", context=f"R={r}")
        for vm, b in out["vms"].items():
            assert b["opt_vm_hits"][str(r)] >= rep["vms"][vm]["hits"], f"{vm} R={r}"


def test_selftest_preset(nestcache):
    # selftest-sched, 12 L2 vCPUs on 1 L1 vCPU, 4 rounds (worked in BoundsTests.swift): no LRU
    # below 12 contexts hits; the optimum with c contexts hits 3c up to 36; per-vm-table:8's
    # DESIGN §4 count, 24, is the optimum for 8 contexts.
    out = bounds_json(nestcache, "--preset", "selftest-sched", "--set", "n=12", "--kmax", "12",
                      "--ratios", "8,12", context="selftest")
    b = out["vms"]["selftest"]
    assert (b["switches"], b["l1_vcpus"]) == (48, 1)
    assert b["lru_hits"] == [0] * 11 + [36, 36]
    assert b["opt_vcpu_hits"] == [min(36, 3 * (k + 1)) for k in range(13)]
    assert b["opt_vm_hits"] == {"8": 24, "12": 36}


def test_text_output(nestcache, tmp_path):
    trace = tmp_path / "hand.trace"
    trace.write_text(HAND)
    proc = run(nestcache, "bounds", trace, "--kmax", "2", "--ratios", "1")
    assert proc.returncode == 0, proc.stderr
    assert "vm alpha: 7 switches, M = 2 L1 vCPUs" in proc.stdout
    assert "OPT-vCPU hits" in proc.stdout and "OPT-VM hits" in proc.stdout
    assert "42.86%" in proc.stdout  # beta's 3 of 7 with R = 1
    assert proc.stdout.rstrip().endswith("input: invalid_lines 0")  # the reader's figures


@pytest.mark.parametrize("args", [
    ["--kmax", "-1"], ["--kmax", "1024"], ["--ratios", "0"], ["--ratios", "1,,2"],
    ["--ratios", "x"], ["--ratios", "4097"], ["--preset", "thrash"], ["--set", "seed=1"],
])
def test_usage_errors_exit_64(nestcache, args):
    proc = run(nestcache, "bounds", SAMPLE, *args)
    assert proc.returncode == 64, f"{args}: exit {proc.returncode}, stderr: {proc.stderr}"
    assert proc.stderr.strip(), f"{args}: no message"


def test_no_input_exits_64(nestcache):
    assert run(nestcache, "bounds").returncode == 64


def test_missing_and_bad_files(nestcache, tmp_path):
    assert run(nestcache, "bounds", tmp_path / "none.trace").returncode == 66
    bad = tmp_path / "bad.trace"
    bad.write_text(f"{MAGIC}\n1 a 0 load 0x1008\n")
    proc = run(nestcache, "bounds", bad, "--json")
    assert proc.returncode == 65 and f"{bad}:2: " in proc.stderr, proc.stderr
