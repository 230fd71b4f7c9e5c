"""Shared helpers for the end-to-end tests: the binary under test and how to run it."""
import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("NESTCACHE_BIN", REPO / ".build" / "debug" / "nestcache"))

# DESIGN §4: counters (summed per VM and over VMs) and gauges (summed over VMs in totals).
COUNTERS = ["events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs",
            "recycles", "uncached", "steals", "migrations", "migration_hits", "map_pages",
            "unmap_pages"]
GAUGES = ["contexts", "free", "mapped_pages", "peak_mapped_pages"]
DERIVED = ["hit_ratio", "exposure", "overhead_ns"]


@pytest.fixture(scope="session")
def nestcache():
    """Path of the built `nestcache`; a missing binary fails (make test builds it first)."""
    assert BIN.is_file() and os.access(BIN, os.X_OK), (
        f"{BIN} is missing: run `swift build` (make test does), or set NESTCACHE_BIN")
    return BIN


def run(binary, *args, stdin=None):
    return subprocess.run([str(binary), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=120)


def replay_json(binary, files, policy, *extra, context=""):
    """`nestcache replay FILES --policy P --json`, parsed; fails with stderr on a non-zero exit."""
    files = [files] if isinstance(files, (str, os.PathLike)) else files
    proc = run(binary, "replay", *files, "--policy", policy, *extra, "--json")
    assert proc.returncode == 0, (
        f"{context}: replay --policy {policy} exited {proc.returncode}\nstderr:\n{proc.stderr}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"{context}: replay --policy {policy} printed no JSON ({e}):\n{proc.stdout[:2000]}")
