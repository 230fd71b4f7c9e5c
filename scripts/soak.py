#!/usr/bin/env python3
"""`make soak` (not in CI): nestcached for MINUTES with VMS simulated VMs, reload storms and client
churn. Reports RSS and open file descriptors after warm-up and at the end, and fails if any
counter of a VM whose definition never changed went back, if a request failed, or if file
descriptors leaked. Usage: scripts/soak.py [--minutes 10] [--vms 1000] [--binary PATH]"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

COUNTERS = ["events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs", "recycles",
            "uncached", "steals", "migrations", "migration_hits", "map_pages", "unmap_pages"]


def config(vms, extra):
    out = ['[daemon]', 'socket_mode = "0600"', 'max_clients = 256', 'summary_interval_s = 30', 'log_level = "notice"',
           '[defaults]', 'policy = "per-vm-table:8"', 'shadow_policies = ["per-vcpu-lru:3", "single", "map-per-entry"]']
    for i in range(vms):
        out += ["", "[[vm]]", f'id = "soak{i:04d}"', "l1_vcpus = 4", "memory_mib = 4096", "[vm.simulate]",
                'scheduler = "pinned"', "l2_vcpus = 12", "migration_rate = 0.05", "entries_per_switch = 2",
                "switch_rate_hz = 50", f"seed = {i + 1}"]
    if extra:  # one VM that reloads add and remove, so that storms really change something
        out += ["", "[[vm]]", 'id = "churn"', "l1_vcpus = 2", "[vm.simulate]", "switch_rate_hz = 100"]
    return "\n".join(out) + "\n"


def request(path, line, timeout=30):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise OSError(f"closed after {len(buf)} bytes")
            buf += chunk
        return buf.decode()


def usage(pid):
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    return rss // 1024, len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--binary", default=".build/release/nestcached")
    ap.add_argument("--clients", type=int, default=32)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nestcache-soak-")
    cfg, sock = os.path.join(work, "soak.toml"), os.path.join(work, "sock")
    with open(cfg, "w") as f:
        f.write(config(a.vms, False))
    d = subprocess.Popen([a.binary, "--config", cfg, "--socket", sock], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "stderr"), "w"))
    deadline = time.monotonic() + 30
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(5)  # warm-up: every VM fed
    start_rss, start_fds = usage(d.pid)
    print(f"soak: {a.vms} VMs x 4 policies, {a.clients} churning clients, reload storms every 20 s, {a.minutes} min")
    print(f"soak: after warm-up: RSS {start_rss} MiB, {start_fds} fds")
    stop = threading.Event()
    failures, served = [], [0]
    checked = set()
    lock = threading.Lock()

    def client(n):
        # Each client checks its own answers: they are served in the order it asked. (Answers of
        # different clients can come back in another order than they were served.)
        rng = random.Random(n)
        last = {}
        while not stop.is_set():
            try:
                if rng.random() < 0.1:
                    request(sock, "show metrics")
                else:
                    vm = f"soak{rng.randrange(a.vms):04d}"
                    j = json.loads(request(sock, f"show stats {vm} json"))
                    v = j["vms"][vm]
                    prev = last.get(vm)
                    if prev:
                        for k in COUNTERS:
                            if v[k] < prev[k]:
                                failures.append(f"{vm}.{k} went back from {prev[k]} to {v[k]}")
                    last[vm] = {k: v[k] for k in COUNTERS}
                    with lock:
                        checked.add(vm)
                with lock:
                    served[0] += 1
            except Exception as e:  # noqa: BLE001 - a failed request is the finding
                if not stop.is_set():
                    failures.append(f"client {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    end = time.monotonic() + a.minutes * 60
    storms = reloads = 0
    extra = False
    samples, next_sample = [], time.monotonic() + 60
    while time.monotonic() < end and d.poll() is None:
        if time.monotonic() >= next_sample:
            samples.append(usage(d.pid)[0])
            next_sample += 60
        time.sleep(min(20, max(0, end - time.monotonic()), max(0.1, next_sample - time.monotonic())))
        if time.monotonic() >= end:
            break
        extra = not extra
        with open(cfg, "w") as f:
            f.write(config(a.vms, extra))
        for _ in range(20):
            d.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        storms += 1
        reloads += 20
    stop.set()
    for t in threads:
        t.join(60)
    alive = d.poll() is None
    end_rss, end_fds = usage(d.pid) if alive else (0, 0)
    info = json.loads(request(sock, "show info json")) if alive else {}
    d.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        code = d.wait(60)
    except subprocess.TimeoutExpired:
        # Where it is stuck, for the report; then it is killed.
        bt = subprocess.run(["gdb", "-p", str(d.pid), "-batch", "-ex", "thread apply all bt 12"], capture_output=True, text=True)
        with open(os.path.join(work, "stuck-threads.txt"), "w") as f:
            f.write(bt.stdout + bt.stderr)
        print(f"soak: no exit 60 s after SIGTERM; threads in {work}/stuck-threads.txt")
        d.kill()
        code = d.wait(10)
    print(f"soak: exited {time.monotonic() - t0:.1f} s after SIGTERM")
    print(f"soak: at the end: RSS {end_rss} MiB, {end_fds} fds; {served[0]} requests answered; "
          f"{storms} storms ({reloads} SIGHUPs, {info.get('reloads')} reloads applied); exit {code}")
    print(f"soak: RSS by minute (MiB): {' '.join(map(str, samples))}")
    print(f"soak: counters checked on {len(checked)} VMs, every one only grew" if not failures else "")
    ok = alive and code == 0 and not failures and end_fds <= start_fds + 4
    if not ok:
        print("soak: FAILED:", *(failures[:10] or [f"alive={alive} exit={code} fds {start_fds}->{end_fds}"]), sep="\n  ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
