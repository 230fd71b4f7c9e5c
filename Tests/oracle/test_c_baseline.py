"""The benchmark's C baseline (bench/baseline.c) computes what `nestcache replay --policy
per-vm-table:8` computes: equal totals (15 counters, 4 gauges) on the sample trace and on small
versions of every trace shape of scripts/make-bench-traces.py. Keeps the BENCHMARKS.md ratios
honest; skipped where no C compiler is installed."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import COUNTERS, GAUGES, REPO, replay_json

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler (cc, gcc, clang) on PATH")
    out = tmp_path_factory.mktemp("baseline") / "baseline"
    subprocess.run([CC, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(REPO / "bench" / "baseline.c")], check=True)
    return out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, nestcache):
    d = tmp_path_factory.mktemp("shapes")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make-bench-traces.py"), "--dir", str(d),
                    "--nestcache", str(nestcache), "--scale", "0.01"], check=True)
    return d


@pytest.mark.parametrize("name", ["sample", "switch-heavy.trace", "entry-heavy.trace",
                                  "many-vms.trace", "ftrace.txt"])
def test_baseline_totals_equal_replay(baseline, shapes, nestcache, name):
    path = REPO / "samples" / "web0.trace" if name == "sample" else shapes / name
    c = subprocess.run([str(baseline), str(path)], capture_output=True, text=True, check=True)
    got = json.loads(c.stdout)
    want = replay_json(nestcache, path, "per-vm-table:8", context=name)["totals"]
    assert {k: got[k] for k in COUNTERS + GAUGES} == {k: want[k] for k in COUNTERS + GAUGES}
    assert want["events"] > 0


def test_baseline_rejects_what_replay_rejects(baseline, tmp_path):
    bad = tmp_path / "bad.trace"
    bad.write_text("# nestcache-trace v1\n# vm a l1_vcpus=2\n10 a 0 enter 0x1000\n5 a 1 enter 0x2000\n")
    c = subprocess.run([str(baseline), str(bad)], capture_output=True, text=True)
    assert c.returncode == 65 and "bad.trace:4:" in c.stderr
