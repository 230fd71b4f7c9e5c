#!/usr/bin/env python3
"""Writes the trace shapes of BENCHMARKS.md ("Replay vs C baseline and libCacheSim, by trace
shape"), deterministically (fixed seeds; the same arguments give the same bytes).

  switch-heavy  one VM declaring l1_vcpus=8; each event on a random vCPU of 8 with a random GPA
                of 80: 5% clear, the rest enter (almost every event is a switch); ~32 bytes a line
  entry-heavy   `nestcache simulate --preset cloud-mixed --set events=N --emit FILE`: long runs
                of entries per switch, as the simulator emits (needs --nestcache)
  many-vms      1,000 VMs with 20-character ids, interleaved at random (even-numbered ones
                declare l1_vcpus=4, odd ones are undeclared so M counts the vCPUs seen); 4 vCPUs
                and 12 GPAs per VM: 10% load, 85% enter, 5% clear
  ftrace        raw tracefs text (`/sys/kernel/tracing/trace` layout, no tgid column) of the
                first N events of the entry-heavy stream: each load is a `kvm_exit ... reason
                VMPTRLD`, each clear a `kvm_exit ... reason VMCLEAR`, each enter a `kvm_exit ...
                reason VMRESUME` then a `kvm_nested_vmenter ... vmcs: GPA` (as nestcache-bench's
                writeFtrace raw layout)

Usage: make-bench-traces.py --dir DIR [--nestcache BIN] [--scale F] [SHAPE ...]
Files: DIR/switch-heavy.trace, entry-heavy.trace, many-vms.trace, ftrace.txt (an existing file
is kept unless --force). --scale multiplies every event count (the tests use small ones).
"""
import argparse
import os
import random
import subprocess
import sys

SHAPES = ["switch-heavy", "entry-heavy", "many-vms", "ftrace"]
FILES = {"switch-heavy": "switch-heavy.trace", "entry-heavy": "entry-heavy.trace",
         "many-vms": "many-vms.trace", "ftrace": "ftrace.txt"}
EVENTS = {"switch-heavy": 2_000_000, "entry-heavy": 2_000_000, "many-vms": 1_000_000,
          "ftrace": 250_000}


def write_lines(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", buffering=1 << 20) as f:
        for chunk in lines:
            f.write(chunk)
    os.replace(tmp, path)


def switch_heavy(n):
    rng = random.Random(10_01)
    yield "# nestcache-trace v1\n# vm sw0 l1_vcpus=8 memory_mib=16384\n"
    gpas = ["0x%x" % (0x10000000 + i * 0x1000) for i in range(80)]
    t = 1_000_000
    out = []
    for _ in range(n):
        t += rng.randrange(1, 64)
        op = "clear" if rng.random() < 0.05 else "enter"
        out.append(f"{t} sw0 {rng.randrange(8)} {op} {gpas[rng.randrange(80)]}\n")
        if len(out) == 65536:
            yield "".join(out)
            out = []
    yield "".join(out)


def vm_id(i):
    return f"tenant-{i:04d}-worker{i % 100:02d}"  # 20 characters


def many_vms(n, vms=1000):
    rng = random.Random(10_03)
    head = ["# nestcache-trace v1\n"]
    for i in range(0, vms, 2):
        head.append(f"# vm {vm_id(i)} l1_vcpus=4 memory_mib=4096\n")
    yield "".join(head)
    ids = [vm_id(i) for i in range(vms)]
    gpas = ["0x%x" % (0x200000000 + i * 0x1000) for i in range(12)]
    t = 5_000_000
    out = []
    for _ in range(n):
        t += rng.randrange(0, 16)
        r = rng.random()
        op = "load" if r < 0.10 else ("clear" if r < 0.15 else "enter")
        out.append(f"{t} {ids[rng.randrange(vms)]} {rng.randrange(4)} {op} {gpas[rng.randrange(12)]}\n")
        if len(out) == 65536:
            yield "".join(out)
            out = []
    yield "".join(out)


def entry_heavy(path, n, nestcache):
    if not nestcache:
        sys.exit("make-bench-traces: entry-heavy needs --nestcache BIN")
    tmp = path + ".tmp"
    subprocess.run([nestcache, "simulate", "--preset", "cloud-mixed", "--set", f"events={n}",
                    "--emit", tmp], check=True, stdout=subprocess.DEVNULL)
    os.replace(tmp, path)


def ftrace(source, n):
    """Raw tracefs lines for the first n events of a native trace (one VM, vCPU = thread)."""
    yield ("# tracer: nop\n#\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
           "#              | |         |   |||||     |         |\n")
    reasons = {"load": "VMPTRLD", "clear": "VMCLEAR", "enter": "VMRESUME"}
    out = []
    count = 0
    with open(source) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            t, _vm, v, op, gpa = line.split()
            t, v = int(t), int(v)
            micros = t // 1000 % 1_000_000
            prefix = f"       CPU {v}/KVM-{10_000 + v}   [{v % 1000:03d}] "
            time = f"{1000 + t // 1_000_000_000}.{micros:06d}: "
            out.append(prefix + "d.... " + time + f"kvm_exit: vcpu {v} reason {reasons[op]} rip "
                       "0xffffffffc0a1b2c3 info1 0x0000000000000000 info2 0x0000000000000000 "
                       "intr_info 0x00000000 error_code 0x00000000\n")
            if op == "enter":
                out.append(prefix + "..... " + time + "kvm_nested_vmenter: rip: 0xffffffffc0a1b4d0 "
                           f"vmcs: 0x{int(gpa, 16):016x} nested_rip: 0x00007f3a1c2e1000 int_ctl: "
                           "0x00000000 event_inj: 0x00000000 nested_ept=y nested_eptp: "
                           "0x000000010b00005e\n")
            count += 1
            if len(out) >= 65536:
                yield "".join(out)
                out = []
            if count == n:
                break
    yield "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nestcache", help="the nestcache binary (entry-heavy and ftrace shapes)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("shapes", nargs="*", default=SHAPES)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    for shape in args.shapes:
        if shape not in SHAPES:
            sys.exit(f"make-bench-traces: unknown shape {shape!r} (expected {', '.join(SHAPES)})")
    # ftrace is made from the entry-heavy file: make that one first.
    order = sorted(set(args.shapes) | ({"entry-heavy"} if "ftrace" in args.shapes else set()),
                   key=SHAPES.index)
    for shape in order:
        path = os.path.join(args.dir, FILES[shape])
        if os.path.exists(path) and not args.force:
            continue
        n = max(1, int(EVENTS[shape] * args.scale))
        if shape == "switch-heavy":
            write_lines(path, switch_heavy(n))
        elif shape == "many-vms":
            write_lines(path, many_vms(n))
        elif shape == "entry-heavy":
            entry_heavy(path, n, args.nestcache)
        else:
            write_lines(path, ftrace(os.path.join(args.dir, FILES["entry-heavy"]), n))
        print(f"make-bench-traces: wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
