"""DESIGN §7 `[[live]]`: a capture followed as it is written. A FIFO written in bursts by
writers that open and close it, and a regular file that grows (bursts ending mid-line), give
exactly the counters of `nestcache replay` of the same text, for the primary and every shadow.
A source whose file is removed or that gets a bad line shows `failed` in `show stats` and the
journal, and nothing else stalls; an idle one shows `waiting`; SIGTERM with a FIFO that has no
writer exits 0 promptly."""
import json
import os
import random
import signal
import stat
import subprocess
import time

from .daemonlib import (COUNTERS, GAUGES, check_identities, config_text, journal_entries, sim_vm, toml,
                       unique, wait_events, wait_for)

PRIMARY = "per-vm-table:8"
SHADOWS = ["per-vm-table:1", "per-vcpu-lru:3", "per-vcpu-lru:1", "single", "map-per-entry"]


def ftrace_capture(lines=3000, seed=11):
    """An ftrace capture (raw `trace` layout with the tgid column) of two QEMUs (tgids 48200 and
    51000) and a thread whose tgid was not recorded (the `vm` of the source): kvm_exit lines give
    each thread's vCPU, kvm_nested_vmenter lines the VMCS entered; 12 VMCSes per VM, more than
    per-vm-table:1 and per-vcpu-lru:1 hold."""
    rng = random.Random(seed)
    threads = [(f"CPU {v}/KVM", 48213 + v, "  48200", v, 0x2000000) for v in range(3)]
    threads += [(f"CPU {v}/KVM", 51010 + v, "  51000", v, 0x4000000) for v in range(2)]
    threads += [("CPU 0/KVM", 60001, "-------", 0, 0x5000000)]
    out = ["# tracer: nop", "#", "#           TASK-PID     TGID     CPU#  |||||  TIMESTAMP  FUNCTION"]
    t = 812_000_000
    for _ in range(lines):
        comm, pid, tgid, vcpu, base = rng.choice(threads)
        t += rng.randrange(1, 40)
        head = f"{comm:>16}-{pid:<7} ({tgid}) [{rng.randrange(16):03d}] d.... {t // 1_000_000:5d}.{t % 1_000_000:06d}: "
        r = rng.random()
        if r < 0.3:
            out.append(head + f"kvm_exit: vcpu {vcpu} reason VMRESUME rip 0xffffffffc0a1b2c3 info1 0x0000000000000000 "
                       "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000")
        elif r < 0.35:
            out.append(head + "sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> "
                       "next_comm=CPU 5/KVM next_pid=60001 next_prio=120")
        else:
            gpa = base + rng.randrange(12) * 0x1000
            out.append(head + f"kvm_nested_vmenter: rip: 0xffffffffc0a1b4d0 vmcs: 0x{gpa:016x} nested_rip: "
                       "0x00007f3a1c2e1000 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=y "
                       "nested_eptp: 0x000000010b00005e")
    return ("\n".join(out) + "\n").encode()


def bursts(data, n, seed):
    """`data` cut at n - 1 random byte offsets (most of them inside a line), and the middle cut
    placed exactly one byte before a newline, so one burst surely ends mid-line."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), n - 2))
    nl = data.index(b"\n", len(data) // 2)
    cuts = sorted(set(cuts) | {nl})
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def replay(nestcache, path, policy, vm):
    proc = subprocess.run([str(nestcache), "replay", str(path), "--format", "ftrace", "--vm", vm,
                           "--policy", policy, "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"nestcache replay --policy {policy}: exit {proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout)


def live(trace, vm, **extra):
    return {"trace": str(trace), "vm": vm, "policy": PRIMARY, "shadow_policies": SHADOWS, **extra}


def config_with_lives(lives, **kw):
    text = config_text(**kw)
    for l in lives:
        text += "\n[[live]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in l.items())
    return text


def live_info(d, trace):
    return next(l for l in d.json("show info json")["live"] if l["trace"] == str(trace))


def assert_equals_replay(d, nestcache, text_path, vm):
    """Every VM of the capture, every policy: the daemon's counters are `nestcache replay`'s."""
    expected = {p: replay(nestcache, text_path, p, vm) for p in [PRIMARY, *SHADOWS]}
    vms = sorted(expected[PRIMARY]["vms"])
    assert vms == sorted(["48200", "51000", vm])
    total = expected[PRIMARY]["totals"]["events"]
    wait_for(lambda: sum(d.stats()["vms"].get(v, {}).get("events", 0) for v in vms) == total, 15,
             interval=0.05, what=f"the daemon to apply {total} events")
    got = d.stats()
    mismatches = []
    for v in vms:
        mine_vm = got["vms"][v]
        assert mine_vm["policy"] == PRIMARY and list(mine_vm["shadows"]) == SHADOWS
        for p in [PRIMARY, *SHADOWS]:
            mine = mine_vm if p == PRIMARY else mine_vm["shadows"][p]
            check_identities(mine, f"{v} {p}")
            theirs = expected[p]["vms"][v]
            mismatches += [f"{v} {p} {k}: daemon {mine[k]} != replay {theirs[k]}"
                           for k in COUNTERS + GAUGES if mine[k] != theirs[k]]
    assert not mismatches, "\n".join(mismatches)
    # The small shadows miss (VMX captures trace no VMCLEAR target, so the table's misses are
    # uncached, the LRU's recycle): the comparison covers more than hits.
    assert expected["per-vm-table:1"]["totals"]["uncached"] > 0
    assert expected["per-vcpu-lru:1"]["totals"]["recycles"] > 0
    return vms


def open_writer(path, timeout=5):
    """Opens the FIFO for writing without ever blocking on a missing reader (ENXIO: retry)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            return fd
        except OSError as e:
            if e.errno != 6 or time.monotonic() > deadline:  # ENXIO: no reader (yet)
                raise
            time.sleep(0.02)


def test_fifo_written_in_bursts_by_several_writers_equals_replay(daemon_factory, nestcache, tmp_path):
    data = ftrace_capture(3000, seed=11)
    text = tmp_path / "capture.txt"
    text.write_bytes(data)
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    vm = unique("lf")
    d = daemon_factory(config_with_lives([live(fifo, vm)]))
    pieces = bursts(data, 7, seed=3)
    for i, piece in enumerate(pieces):
        fd = open_writer(fifo)
        try:
            os.write(fd, piece)
        finally:
            os.close(fd)
        # Let the daemon see this writer go before the next one comes (one writer session each).
        time.sleep(0.3)
    vms = assert_equals_replay(d, nestcache, text, vm)
    info = live_info(d, fifo)
    assert info["lines"] == data.count(b"\n") and info["bytes"] == len(data), info
    # Opened at start, then once again after each writer closed.
    assert info["opens"] == len(pieces) + 1, info
    assert info["state"] == "running" and info["error"] is None
    assert all(d.stats()["vms"][v]["state"] == "running" for v in vms)


def test_growing_file_equals_replay_and_waits_for_the_newline(daemon_factory, nestcache, tmp_path):
    data = ftrace_capture(2500, seed=12)
    text = tmp_path / "capture.txt"
    text.write_bytes(data)
    grow = tmp_path / "growing.txt"
    grow.write_bytes(b"")
    vm = unique("lg")
    d = daemon_factory(config_with_lives([live(grow, vm, waiting_after_s=1)]))
    pieces = bursts(data, 6, seed=4)
    for i, piece in enumerate(pieces):
        with open(grow, "ab") as f:
            f.write(piece)
        if piece.endswith(b"\n"):
            continue
        # A burst ending mid-line: the partial line is not parsed before its newline comes.
        complete = data[:sum(len(p) for p in pieces[:i + 1])].count(b"\n")
        wait_for(lambda: live_info(d, grow)["lines"] == complete, 10, what=f"{complete} lines read")
        time.sleep(0.2)
        assert live_info(d, grow)["lines"] == complete
    vms = assert_equals_replay(d, nestcache, text, vm)
    # Idle for waiting_after_s: the source and its VMs show "waiting"; a new line brings them back.
    wait_for(lambda: live_info(d, grow)["state"] == "waiting", 5, what="the live source to wait")
    assert all(d.stats()["vms"][v]["state"] == "waiting" for v in vms)
    with open(grow, "ab") as f:
        f.write(data.splitlines(keepends=True)[-1])
    wait_for(lambda: live_info(d, grow)["state"] == "running", 5, what="the live source to run again")
    assert d.stats()["vms"][vms[0]]["state"] in ("running", "waiting")


def test_removed_file_and_bad_line_fail_alone(daemon_factory, nestcache, tmp_path, journald):
    data = ftrace_capture(400, seed=13)
    removed = tmp_path / "removed.txt"
    removed.write_bytes(data)
    bad = tmp_path / "bad.fifo"
    os.mkfifo(bad)
    vm_removed, vm_bad, sim = unique("lr"), unique("lb"), unique("ls")
    d = daemon_factory(config_with_lives([live(removed, vm_removed), live(bad, vm_bad)], vms=[sim_vm(sim, l1_vcpus=2)]))
    wait_for(lambda: live_info(d, removed)["lines"] == data.count(b"\n"), 10, what="the file read")
    # Valid lines, then one that fits no form: line 3 of the stream.
    good = b"".join(data.splitlines(keepends=True)[3:5])
    fd = open_writer(bad)
    os.write(fd, good + b"this is not a trace line\n")
    os.close(fd)
    removed.unlink()

    def failed(trace):
        info = live_info(d, trace)
        return info if info["state"] == "failed" else None
    bad_info = wait_for(lambda: failed(bad), 10, what="the bad line to fail its source")
    assert f"{bad}:3:" in bad_info["error"], bad_info
    removed_info = wait_for(lambda: failed(removed), 10, what="the removed file to fail its source")
    assert "removed" in removed_info["error"], removed_info
    stats = d.stats()["vms"]
    for v in removed_info["vms"] + bad_info["vms"]:
        assert stats[v]["state"] == "failed" and stats[v]["error"], stats[v]
    assert stats[vm_removed]["error"] == removed_info["error"]
    # The simulated VM goes on.
    before = stats[sim]["events"]
    wait_events(d, sim, before)
    assert d.stats()["vms"][sim]["state"] == "running"
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=trace-error", timeout=6,
                           until=lambda rs: sum(r.get("PRIORITY") == "3" for r in rs) >= 2)
    errors = [r["MESSAGE"] for r in recs if r.get("PRIORITY") == "3"]
    assert any(str(removed) in m and "removed" in m for m in errors), errors
    assert any(f"{bad}:3:" in m for m in errors), errors
    # Fixed and reloaded: a failed live source starts again, from the start of the new file.
    removed.write_bytes(data[:data.index(b"\n", len(data) // 2) + 1])
    assert d.request("reload").startswith("ok:")
    wait_for(lambda: live_info(d, removed)["state"] == "running"
             and live_info(d, removed)["lines"] == removed.read_bytes().count(b"\n"), 10, what="the source restarted")
    assert live_info(d, bad)["state"] == "running"  # the FIFO too (no bad line since)


def test_sigterm_with_a_fifo_without_writer_exits_promptly(daemon_factory, tmp_path):
    fifo = tmp_path / "idle.fifo"
    os.mkfifo(fifo)
    d = daemon_factory(config_with_lives([live(fifo, unique("lt"))]))
    time.sleep(0.3)
    assert live_info(d, fifo)["state"] == "running"
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.proc.wait(5)
    assert rc == 0 and time.monotonic() - started < 5


def test_unchanged_live_source_keeps_its_counters_on_reload(daemon_factory, tmp_path):
    data = ftrace_capture(300, seed=14)
    grow = tmp_path / "keep.txt"
    grow.write_bytes(data)
    vm = unique("lk")
    d = daemon_factory(config_with_lives([live(grow, vm)]))
    wait_for(lambda: live_info(d, grow)["lines"] == data.count(b"\n"), 10, what="the file read")
    before = d.stats()["vms"]
    assert d.request("reload").startswith("ok:")
    after = d.stats()["vms"]
    assert {v: after[v]["events"] for v in before} == {v: before[v]["events"] for v in before}


def test_live_config_errors_name_the_line(nestcached, tmp_path):
    fifo = tmp_path / "c.fifo"
    os.mkfifo(fifo)
    cases = [
        (f'[[live]]\ntrace = "{fifo}"\nspeed = "max"\n', 3, "unknown key 'speed'"),
        (f'[[live]]\ntrace = "{fifo}"\nformat = "auto"\n', 3, "'format' must be ftrace or native"),
        ('[[live]]\nformat = "ftrace"\n', 1, "needs a 'trace'"),
        (f'[[live]]\ntrace = "{tmp_path}/missing"\n', 2, "cannot read"),
        (f'[[live]]\ntrace = "{tmp_path}"\n', 2, "not a FIFO or a regular file"),
        (f'[[live]]\ntrace = "{fifo}"\nwaiting_after_s = 0\n', 3, "'waiting_after_s'"),
        (f'[[live]]\ntrace = "{fifo}"\n[[live]]\ntrace = "{fifo}"\n', 4, "already followed"),
        (f'[[vm]]\nid = "x"\n[[live]]\ntrace = "{fifo}"\nvm = "x"\n', 5, "duplicate VM id 'x'"),
    ]
    for i, (text, line, message) in enumerate(cases):
        cfg = tmp_path / f"c{i}.toml"
        cfg.write_text(text)
        p = subprocess.run([str(nestcached), "--check-config", str(cfg)], capture_output=True, text=True, timeout=10)
        assert p.returncode == 78, (text, p.stdout, p.stderr)
        assert f"{cfg}:{line}: " in p.stderr and message in p.stderr, (text, p.stderr)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
