#!/usr/bin/env python3
"""nestcached under load (BENCHMARKS.md): `show stats json` latency with 64 concurrent clients
while a 16-vCPU VM runs at speed max, and resident memory with 1,000 simulated VMs of 64 vCPUs.

usage: scripts/bench-daemon.py [--bin .build/release/nestcached] [--clients 64] [--requests 200]
       [--rss-only] [--vms 1000] [--vcpus 64] [--l2 16,256] [--bounds-window N] [--policies P,S,...]
"""
import argparse, os, socket, statistics, subprocess, tempfile, threading, time

def request(path, line, timeout=10):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall((line + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n\n"):
        d = s.recv(1 << 16)
        if not d:
            break
        buf += d
    s.close()
    return buf

def start(binary, config_text, tmp):
    cfg = os.path.join(tmp, "bench.toml")
    sock = os.path.join(tmp, "bench.sock")
    with open(cfg, "w") as f:
        f.write(config_text)
    p = subprocess.Popen([binary, "--config", cfg, "--socket", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        if os.path.exists(sock):
            try:
                request(sock, "ping")
                return p, sock
            except OSError:
                pass
        time.sleep(0.01)
    p.kill()
    raise SystemExit("nestcached did not start")

def stop(p):
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()

def latency(binary, clients, requests):
    config = """
[daemon]
max_clients = 256
summary_interval_s = 0
[defaults]
policy = "per-vm-table:8"
shadow_policies = ["per-vcpu-lru:3", "single", "map-per-entry"]
[[vm]]
id = "load"
l1_vcpus = 16
speed = "max"
[vm.simulate]
preset = "cloud-mixed"
l2_vcpus = 128
"""
    with tempfile.TemporaryDirectory() as tmp:
        p, sock = start(binary, config, tmp)
        try:
            return measure_latency(p, sock, binary, clients, requests)
        finally:
            stop(p)


def measure_latency(p, sock, binary, clients, requests):
    """The latency table while `p` (serving `sock`) runs its load."""
    time.sleep(1)
    bench = os.path.join(os.path.dirname(binary), "nestcache-bench")
    e0 = int(request(sock, "show stats load json").split(b'"events":')[1].split(b",")[0])
    t0 = time.perf_counter()
    table = ""
    for interval in (50, 10, 0):
        out = subprocess.run([bench, "latency", "--socket", sock, "--clients", str(clients), "--requests", str(requests),
                              "--interval-ms", str(interval)], capture_output=True, text=True, check=True).stdout
        table += out if not table else out.split("\n", 2)[2]
    wall = time.perf_counter() - t0
    e1 = int(request(sock, "show stats load json").split(b'"events":')[1].split(b",")[0])
    print(f"show stats json from {clients} concurrent clients x {requests} requests (nestcache-bench latency),")
    print(f"while a 16-vCPU VM runs at speed max ({(e1 - e0) / wall / 1e6:.2f} M events/s meanwhile):")
    print(table, end="")


def rss(binary, vms, vcpus, l2, bounds_window=None, policies=None, seconds=5):
    """VmRSS of `vms` simulated VMs at 10 Hz after `seconds`. `bounds_window`: `[daemon]
    bounds_window` (None: the default, 8192); `policies`: primary first (None: the defaults, 4)."""
    daemon = "[daemon]\nsummary_interval_s = 0\n"
    if bounds_window is not None:
        daemon += f"bounds_window = {bounds_window}\n"
    if policies is not None:
        shadows = ", ".join(f'"{q}"' for q in policies[1:])
        daemon += f'[defaults]\npolicy = "{policies[0]}"\nshadow_policies = [{shadows}]\n'
    parts = [daemon]
    for i in range(vms):
        parts.append(f'[[vm]]\nid = "vm{i}"\nl1_vcpus = {vcpus}\n[vm.simulate]\nl2_vcpus = {l2}\nswitch_rate_hz = 10\nseed = {i + 1}\n')
    with tempfile.TemporaryDirectory() as tmp:
        p, sock = start(binary, "".join(parts), tmp)
        try:
            time.sleep(seconds)
            with open(f"/proc/{p.pid}/status") as f:
                status = {l.split(":")[0]: l.split(":")[1].strip() for l in f}
            # How far the VMs got (a loaded machine gets fewer events done, and holds less).
            info = request(sock, "show info").decode()
            events = info.split(" events,")[0].rsplit(" ", 1)[-1] if " events," in info else "?"
        finally:
            stop(p)
    what = f"{len(policies)} policies: {','.join(policies)}" if policies is not None else "4 policies each"
    if bounds_window is not None:
        what += f", bounds_window = {bounds_window}"
    print(f"{vms} simulated VMs of {vcpus} L1 vCPUs and {l2} L2 vCPUs ({what}), after {seconds} s: VmRSS {status['VmRSS']}, "
          f"VmHWM {status['VmHWM']}, threads {status['Threads']}, {events} events", flush=True)

if __name__ == "__main__":
    a = argparse.ArgumentParser()
    a.add_argument("--bin", default=".build/release/nestcached")
    a.add_argument("--clients", type=int, default=64)
    a.add_argument("--requests", type=int, default=200)
    a.add_argument("--vms", type=int, default=1000)
    a.add_argument("--vcpus", type=int, default=64)
    a.add_argument("--l2", type=lambda t: [int(x) for x in t.split(",")], default=None,
                   help="L2 vCPUs per VM for the RSS part, comma-separated (default: 16 and 4 per L1 vCPU)")
    a.add_argument("--rss-only", action="store_true", help="skip the latency part")
    a.add_argument("--bounds-window", type=int, default=None, help="[daemon] bounds_window for the RSS part")
    a.add_argument("--seconds", type=float, default=5, help="how long the RSS part's daemon runs before VmRSS is read")
    a.add_argument("--policies", type=lambda t: t.split(","), default=None,
                   help="primary,shadow,... for the RSS part (default: the daemon's four)")
    args = a.parse_args()
    if not args.rss_only:
        latency(args.bin, args.clients, args.requests)
    for l2 in args.l2 or (16, 4 * args.vcpus):  # the simulator's default, and 4 L2 vCPUs per L1 vCPU
        rss(args.bin, args.vms, args.vcpus, l2, args.bounds_window, args.policies, args.seconds)
