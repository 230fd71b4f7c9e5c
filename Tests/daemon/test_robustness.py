"""Bad input and bad clients (DESIGN §8): 4096-byte lines, binary garbage, half lines, more than
max_clients connections, a client that never reads, idle connections. After all of it the daemon
still serves and its counts are consistent."""
import json
import random
import re
import select
import signal
import socket
import time

import pytest

from .daemonlib import Client, check_identities, config_text, sim_vm, unique, wait_events, wait_for

MAX_CLIENTS = 50
ERROR_LINE = re.compile(r"error: (unknown-command|bad-argument|line-too-long): [^\n]*\n")


@pytest.fixture(scope="module")
def setup(module_daemon_factory):
    a, b = unique("ba"), unique("bb")
    d = module_daemon_factory(config_text(vms=[sim_vm(a, l1_vcpus=4), sim_vm(b, l1_vcpus=2)],
                                          daemon={"max_clients": str(MAX_CLIENTS)}))
    first = wait_events(d, a, 100)["events"]
    return {"d": d, "a": a, "b": b, "first_events": first}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_line_length_limit(setup):
    d = setup["d"]
    with d.client() as c:
        # Exactly 4096 bytes before the newline: a request.
        assert c.request("ping" + " " * 4092) == "pong\n"
        # 4097: line-too-long, once; the rest of that line is discarded, the connection goes on.
        c.send("ping" + " " * 4093 + "\nping\n")
        assert re.fullmatch(r"error: line-too-long: [^\n]+\n", c.read_response())
        assert c.read_response() == "pong\n"
        # 1 MiB without a newline, in pieces: one error, then usable after the next newline.
        chunk = b"x" * 65536
        for _ in range(16):
            c.send(chunk)
        assert re.fullmatch(r"error: line-too-long: [^\n]+\n", c.read_response())
        c.send(b"still the same line\nping\n")
        assert c.read_response() == "pong\n"
        assert c.json("ping json") == {"pong": True}
        # The JSON form of the error is not chosen by the discarded line's last word.
        c.send("show stats " + "a" * 5000 + " json\nversion\n")
        assert c.read_response().startswith("error: line-too-long: ")
        assert c.read_response().startswith("nestcached ")


def test_binary_garbage(setup):
    d = setup["d"]
    rng = random.Random(42)
    garbage = rng.randbytes(200_000)
    with d.client() as c:
        c.send(garbage + b"\nping\n")
        answers = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = c.read_response(timeout=10)
            if r == "pong\n":
                break
            answers.append(r)
        else:
            pytest.fail("no pong after the garbage")
        # One answer per line of garbage (plus the line the last newline ends), each an error.
        lines = garbage.count(b"\n") + 1
        assert len(answers) <= lines
        assert len(answers) >= lines - garbage.count(b"\n") // 2  # lines over 4096 bytes give one error too
        bad = [a for a in answers if not ERROR_LINE.fullmatch(a)]
        assert not bad, f"{len(bad)} answers are not error lines: {bad[:3]!r}"
        assert any("not UTF-8" in a for a in answers)
        # NUL, control characters and invalid UTF-8 in a single line.
        for junk in [b"\x00\x00\x00", b"\xff\xfe\xfd", b"ping\x00", b"\x1b[31mshow\x1b[0m stats",
                     "ping\u2028".encode()]:
            c.send(junk + b"\n")
            r = c.read_response()
            assert ERROR_LINE.fullmatch(r), (junk, r)
        # Invalid UTF-8 with `json` as the last word: the error in JSON.
        c.send(b"\xc3\x28 json\n")
        assert json.loads(c.read_response())["error"]["code"] == "bad-argument"
        assert c.request("ping") == "pong\n"


def test_half_line_then_disconnect(setup):
    d = setup["d"]
    for i in range(100):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(str(d.socket))
        s.sendall(b"show sta" if i % 2 else b"x" * 5000)
        s.close()
    assert d.request("ping") == "pong\n"


def test_max_clients_busy(setup):
    """200 connections at once with max_clients = 50: 50 are served, the others get `error: busy`
    and are closed. Closed connections are no longer counted."""
    d = setup["d"]
    conns = []
    try:
        for _ in range(200):
            conns.append(Client(d.socket, timeout=5))
        served, busy = 0, 0
        for c in conns:
            try:
                c.send("ping\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                r = c.read_response(timeout=5)
            except ConnectionError:
                pytest.fail("a connection was closed without an answer")
            if r == "pong\n":
                served += 1
            else:
                assert re.fullmatch(r"error: busy: [^\n]+\n", r), r
                assert c.is_closed_by_peer(3), "a busy connection was left open"
                busy += 1
        assert (served, busy) == (MAX_CLIENTS, 200 - MAX_CLIENTS)
    finally:
        for c in conns:
            c.close()
    # All closed: max_clients fresh connections are served again, one more is busy.
    def all_served():
        cs = [Client(d.socket, timeout=5) for _ in range(MAX_CLIENTS)]
        try:
            return all(c.request("ping") == "pong\n" for c in cs)
        except (ConnectionError, AssertionError):
            return False
        finally:
            for c in cs:
                c.close()
    wait_for(all_served, 5, interval=0.2, what="the daemon to count closed connections out")
    cs = [Client(d.socket, timeout=5) for _ in range(MAX_CLIENTS)]
    try:
        for c in cs:
            assert c.request("ping") == "pong\n"
        with Client(d.socket) as extra:
            assert extra.read_response().startswith("error: busy: ")
    finally:
        for c in cs:
            c.close()


def flood_without_reading(path, seconds=2.0, limit=4 << 20):
    """A client that sends `show metrics` again and again and never reads; returns it and the
    number of bytes the daemon took."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.setblocking(False)
    req = b"show metrics\n" * 1000
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < limit:
        try:
            sent += s.send(req)
        except BlockingIOError:
            select.select([], [s], [], 0.05)
    return s, sent


def test_slow_reader_does_not_stall_others(daemon_factory):
    # Its own daemon, killed before the slow client goes (the next test closes it first).
    a = unique("sr")
    d = daemon_factory(config_text(vms=[sim_vm(a, l1_vcpus=4), sim_vm(unique("ss"), l1_vcpus=8)]))
    wait_events(d, a, 100)
    rss0 = rss_kib(d.pid)
    slow, sent = flood_without_reading(d.socket)
    try:
        assert sent > 100_000, f"the daemon took only {sent} bytes"
        e0 = d.stats(a)["vms"][a]["events"]
        worst = 0.0
        for _ in range(10):
            t = time.monotonic()
            assert d.request("ping", timeout=5) == "pong\n"
            worst = max(worst, time.monotonic() - t)
            time.sleep(0.1)
        assert worst < 2.0, f"a ping took {worst:.2f} s while a client did not read"
        wait_for(lambda: d.stats(a)["vms"][a]["events"] > e0, 3, what="events to keep growing")
        grown = (rss_kib(d.pid) - rss0) // 1024
        assert grown < 512, f"RSS grew by {grown} MiB for one client that does not read"
    finally:
        d.proc.kill()
        slow.close()


def test_slow_reader_disconnect_does_not_stall_others(daemon_factory):
    d = daemon_factory(config_text(vms=[sim_vm(unique("sd"), l1_vcpus=4), sim_vm(unique("se"), l1_vcpus=8)]))
    slow, sent = flood_without_reading(d.socket)
    try:
        assert sent > 100_000
        assert d.request("ping", timeout=5) == "pong\n"  # served while the slow client is there ...
        slow.close()
        time.sleep(0.2)
        t = time.monotonic()
        try:
            answer = d.request("ping", timeout=3)  # ... and after it left
        except (AssertionError, OSError) as e:
            pytest.fail(f"no answer to ping within 3 s after a flooding client left ({e.__class__.__name__}); "
                        f"RSS {rss_kib(d.pid) // 1024} MiB")
        assert answer == "pong\n"
        assert time.monotonic() - t < 2
        d.signal(signal.SIGTERM)
        assert d.proc.wait(2) == 0
    finally:
        slow.close()
        d.proc.kill()  # a stalled daemon does not finish SIGTERM in time either


def test_many_small_reads_and_writes(setup):
    """A request sent one byte at a time is answered like any other."""
    d = setup["d"]
    with d.client() as c:
        for b in b"show stats json\n":
            c.send(bytes([b]))
        s = json.loads(c.read_response())
        assert setup["a"] in s["vms"]


def test_idle_timeout(daemon_factory):
    d = daemon_factory(config_text(vms=[sim_vm(unique("it"))], daemon={"idle_timeout_s": "1"}))
    idle = d.client()
    half = d.client()
    half.send("show st")  # an unfinished line is not activity that keeps it open forever
    busy = d.client()
    t0 = time.monotonic()
    try:
        # The busy one sends a request every 0.3 s and stays open past the timeout.
        while time.monotonic() - t0 < 2.5:
            assert busy.request("ping") == "pong\n"
            time.sleep(0.3)
        assert idle.is_closed_by_peer(0.5), "an idle connection is still open after 2.5 s (idle_timeout_s = 1)"
        assert half.is_closed_by_peer(0.5), "a connection with half a line is still open after 2.5 s"
        assert busy.request("ping") == "pong\n"
    finally:
        for c in (idle, half, busy):
            c.close()
    # Closed after about 1 s, not at once.
    c = d.client()
    time.sleep(0.5)
    assert c.request("ping") == "pong\n"
    t = time.monotonic()
    assert c.is_closed_by_peer(3)
    assert 0.3 <= time.monotonic() - t <= 2.5
    c.close()


def test_still_alive_and_consistent(setup):
    """After everything above: alive, serving, identities hold, counters kept growing."""
    d, a, b = setup["d"], setup["a"], setup["b"]
    assert d.alive(), d.stderr()
    s = d.stats()
    for vm in (a, b):
        v = s["vms"][vm]
        assert v["state"] == "running"
        check_identities(v, vm)
        for p, sh in v["shadows"].items():
            check_identities(sh, f"{vm} {p}")
            assert sh["events"] == v["events"]
    assert s["vms"][a]["events"] > setup["first_events"]
    for k in ["events", "switches", "hits", "map_pages"]:
        assert s["totals"][k] == s["vms"][a][k] + s["vms"][b][k]
    info = d.json("show info json")
    assert info["pid"] == d.pid
