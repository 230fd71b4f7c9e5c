#!/usr/bin/env python3
"""`nestcache replay --policy per-vm-table:8 --json FILE` against the C baseline
(bench/baseline.c) on the trace shapes of scripts/make-bench-traces.py, and PyPI libCacheSim's
LRU on the switch-heavy shape. Run by `scripts/bench.sh shapes` (BENCHMARKS.md, "Replay vs C
baseline and libCacheSim, by trace shape").

Honesty first: before timing, every contestant's totals (the 15 counters and 4 gauges of
DESIGN §4) must equal the C baseline's on every shape, or the run stops.

Timing: N rounds; in each round every shape runs every contestant once, in an order that rotates
from round to round (interleaved A/B, so load that comes and goes hits all alike). Reported: the
median wall time and the median CPU time (user + sys of the child, from wait4), events/s and MB/s
from the wall median, and the ratio C time / nestcache time (>= 1.0: nestcache at least as fast).

libCacheSim: the switch-heavy trace converted once (not timed) to libCacheSim's oracleGeneral
binary format (24 bytes a request: uint32 time in s, uint64 obj_id = the GPA, uint32 size = 1,
int64 next access = -1), one request per event (2 M), then `LRU(cache_size=64)` (per-vm-table:8's
8 x 8 contexts) `.process_trace(TraceReader(FILE, ORACLE_GENERAL_TRACE, ReaderInitParam(
ignore_obj_size=True)))`, timed around process_trace alone (C++ loop, no Python per request) and
as a whole process (interpreter start and import included).
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import struct
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
FILES = {"switch-heavy": "switch-heavy.trace", "entry-heavy": "entry-heavy.trace",
         "many-vms": "many-vms.trace", "ftrace": "ftrace.txt"}
KEYS = ["events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs", "recycles",
        "uncached", "steals", "migrations", "migration_hits", "map_pages", "unmap_pages",
        "contexts", "free", "mapped_pages", "peak_mapped_pages"]


def run_timed(argv):
    """(wall s, user+sys s, stdout) of one child."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # cumulative; differenced by the caller
    if p.returncode != 0:
        sys.exit(f"bench-shapes: {' '.join(argv)} exited {p.returncode}: {err.decode()[:500]}")
    return wall, ru.ru_utime + ru.ru_stime, out


class Contestant:
    def __init__(self, name, argv_for):
        self.name = name
        self.argv_for = argv_for

    def totals(self, path):
        _, _, out = run_timed(self.argv_for(path))
        d = json.loads(out)
        return d.get("totals", d)


def nestcache(bin_path):
    return lambda path: [bin_path, "replay", "--policy", "per-vm-table:8", "--json", path]


def to_oracle_general(trace, out):
    """One request per event: obj_id = GPA."""
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(trace):
        return
    pack = struct.Struct("<IQIq").pack
    with open(trace) as f, open(out + ".tmp", "wb") as o:
        buf = []
        for line in f:
            if line.startswith("#"):
                continue
            t, _vm, _v, _op, gpa = line.split()
            buf.append(pack(int(t) // 1_000_000_000, int(gpa, 16), 1, -1))
            if len(buf) == 65536:
                o.write(b"".join(buf))
                buf = []
        o.write(b"".join(buf))
    os.replace(out + ".tmp", out)


def lcs_run(path):
    """Child mode: time LRU(64).process_trace over an oracleGeneral file; print JSON."""
    import libcachesim as lcs
    reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE,
                             lcs.ReaderInitParam(ignore_obj_size=True))
    cache = lcs.LRU(cache_size=64)
    t0 = time.perf_counter()
    miss_ratio, _byte_miss_ratio = cache.process_trace(reader)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "miss_ratio": miss_ratio, "requests": os.path.getsize(path) // 24}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="nestcache (release) to measure")
    ap.add_argument("--before", help="another nestcache to measure alongside (e.g. main's)")
    ap.add_argument("--baseline", required=True, help="the C baseline binary")
    ap.add_argument("--dir", required=True, help="where the shape traces are")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--python", default=sys.executable, help="a Python with libcachesim (or skip)")
    ap.add_argument("--shapes", nargs="*", default=list(FILES))
    ap.add_argument("--lcs-run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lcs_run:
        return lcs_run(args.lcs_run)

    contestants = [Contestant("C baseline", lambda p: [args.baseline, p]),
                   Contestant("nestcache", nestcache(args.bin))]
    if args.before:
        contestants.append(Contestant("nestcache before", nestcache(args.before)))
    paths = {s: os.path.join(args.dir, FILES[s]) for s in args.shapes}

    print(f"## shapes: {os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; median of {args.runs} interleaved rounds")
    for shape, path in paths.items():
        ref = contestants[0].totals(path)
        for c in contestants[1:]:
            got = c.totals(path)
            diff = {k: (ref[k], got[k]) for k in KEYS if ref[k] != got[k]}
            if diff:
                sys.exit(f"bench-shapes: {c.name} disagrees with the C baseline on {shape}: {diff}")
    print("totals: every contestant equals the C baseline on every shape (15 counters, 4 gauges)")

    walls = {(s, c.name): [] for s in paths for c in contestants}
    cpus = {(s, c.name): [] for s in paths for c in contestants}
    last_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    last_cpu = last_cpu.ru_utime + last_cpu.ru_stime
    for r in range(args.runs):
        for shape, path in paths.items():
            order = contestants[r % len(contestants):] + contestants[:r % len(contestants)]
            for c in order:
                wall, cum, _ = run_timed(c.argv_for(path))
                walls[(shape, c.name)].append(wall)
                cpus[(shape, c.name)].append(cum - last_cpu)
                last_cpu = cum

    print("| shape | MB | events | program | wall s | CPU s | M events/s | MB/s | C time / this time (wall, CPU) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for shape, path in paths.items():
        mb = os.path.getsize(path) / 1e6
        events = contestants[0].totals(path)["events"]
        cw = statistics.median(walls[(shape, "C baseline")])
        cc = statistics.median(cpus[(shape, "C baseline")])
        for c in contestants:
            w = statistics.median(walls[(shape, c.name)])
            u = statistics.median(cpus[(shape, c.name)])
            print(f"| {shape} | {mb:.1f} | {events} | {c.name} | {w:.3f} | {u:.3f} | {events / w / 1e6:.1f} "
                  f"| {mb / w:.0f} | {cw / w:.2f}x, {cc / u:.2f}x |")

    has_lcs = subprocess.run([args.python, "-c", "import libcachesim"], capture_output=True).returncode == 0
    if "switch-heavy" in paths and not has_lcs:
        print(f"libCacheSim: not importable by {args.python} (make setup installs it in .venv): skipped")
    if "switch-heavy" in paths and has_lcs:
        ogb = os.path.join(args.dir, "switch-heavy.oracleGeneral.bin")
        to_oracle_general(paths["switch-heavy"], ogb)
        inner, outer = [], []
        info = {}
        for _ in range(args.runs):
            wall, _, out = run_timed([args.python, __file__, "--bin", "-", "--baseline", "-", "--dir", "-",
                                      "--lcs-run", ogb])
            info = json.loads(out)
            inner.append(info["seconds"])
            outer.append(wall)
        n = info["requests"]
        print(f"libCacheSim {lcs_version(args.python)} LRU(cache_size=64) on switch-heavy as oracleGeneral "
              f"({n} requests, {os.path.getsize(ogb) / 1e6:.1f} MB; miss ratio {info['miss_ratio']:.4f}): "
              f"process_trace alone {statistics.median(inner):.3f} s ({n / statistics.median(inner) / 1e6:.1f} M requests/s), "
              f"whole process {statistics.median(outer):.3f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def lcs_version(python):
    try:
        return subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('libcachesim'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


if __name__ == "__main__":
    main()
