"""sd_notify (DESIGN §7): READY=1 once serving, STATUS=, WATCHDOG=1 at half WATCHDOG_USEC,
RELOADING=1 + MONOTONIC_USEC on SIGHUP then READY=1, STOPPING=1 on SIGTERM, exit 0 within 2 s.
A datagram socket of the test stands in for systemd's NOTIFY_SOCKET."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from .daemonlib import Client, config_text, sim_vm, unique, wait_for


class NotifyListener:
    """Receives sd_notify datagrams: a list of (monotonic time, {KEY: value})."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ncn-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = {}
            for line in data.decode(errors="replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait(self, key, value=None, after=0.0, timeout=5.0):
        """The first message at or after `after` with `key` (= `value` if given)."""
        def find():
            for t, m in self.snapshot():
                if t >= after and key in m and (value is None or m[key] == value):
                    return (t, m)
            return None
        return wait_for(find, timeout, interval=0.02, what=f"sd_notify {key}{'=' + value if value else ''}")

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def listener():
    n = NotifyListener()
    yield n
    n.close()


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_notify_sequence(daemon_factory, listener):
    vm = unique("n")
    d = daemon_factory(config_text(vms=[sim_vm(vm)]), start=False,
                       env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"})
    d.start(wait=False)

    # READY=1 once serving: the socket answers as soon as READY=1 arrives.
    t_ready, ready = listener.wait("READY", "1", timeout=10)
    with Client(d.socket, timeout=3) as c:
        assert c.request("ping") == "pong\n"
    assert "STATUS" in ready, f"READY=1 without STATUS=: {ready}"
    assert re.match(r"\d+ VMs \(\d+ running\), \d+ events", ready["STATUS"]), ready["STATUS"]
    assert d.json("show info json")["status"].startswith("1 VMs")

    # WATCHDOG=1 every WATCHDOG_USEC / 2 = 200 ms while the vCPU queues make progress.
    time.sleep(1.3)
    dogs = [t for t, m in listener.snapshot() if m.get("WATCHDOG") == "1" and t > t_ready]
    assert len(dogs) >= 4, f"only {len(dogs)} WATCHDOG=1 in 1.3 s with WATCHDOG_USEC=400000"
    gaps = [b - a for a, b in zip(dogs, dogs[1:])]
    assert max(gaps) < 0.4, f"WATCHDOG=1 gaps {gaps}: one exceeds the 400 ms WATCHDOG_USEC"

    # A paused VM has no pending work: the watchdog goes on.
    assert d.request(f"pause {vm}").startswith("ok")
    t_pause = time.monotonic()
    time.sleep(0.7)
    assert len([t for t, m in listener.snapshot() if m.get("WATCHDOG") == "1" and t > t_pause]) >= 2
    assert d.request(f"resume {vm}").startswith("ok")

    # SIGHUP: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, µs), then READY=1 again.
    before_hup = time.monotonic()
    usec_before = monotonic_usec()
    d.signal(signal.SIGHUP)
    t_rel, rel = listener.wait("RELOADING", "1", after=before_hup)
    assert "MONOTONIC_USEC" in rel, f"RELOADING=1 without MONOTONIC_USEC: {rel}"
    usec = int(rel["MONOTONIC_USEC"])
    assert usec_before <= usec <= monotonic_usec(), (usec_before, usec)
    t_ready2, _ = listener.wait("READY", "1", after=t_rel)
    assert t_ready2 >= t_rel

    # The reload command does the same.
    before_cmd = time.monotonic()
    assert d.request("reload").startswith("ok: reloaded")
    t_rel2, _ = listener.wait("RELOADING", "1", after=before_cmd)
    listener.wait("READY", "1", after=t_rel2)

    # SIGTERM: STOPPING=1, exit 0 within 2 s.
    t_term = time.monotonic()
    d.signal(signal.SIGTERM)
    try:
        code = d.proc.wait(2)
    except subprocess.TimeoutExpired:
        pytest.fail("nestcached did not exit within 2 s of SIGTERM")
    assert code == 0, f"exit {code}\n{d.stderr()}"
    listener.wait("STOPPING", "1", after=t_term, timeout=1)
    assert not os.path.exists(d.socket), "the socket file was left behind"


def test_status_updates(daemon_factory, listener):
    """STATUS= is refreshed while running (every 5 s), one line, counting events."""
    d = daemon_factory(config_text(vms=[sim_vm(unique("s"))]), start=False,
                       env={"NOTIFY_SOCKET": listener.path})
    d.start(wait=False)
    t_ready, _ = listener.wait("READY", "1", timeout=10)
    _, m = listener.wait("STATUS", after=t_ready + 0.001, timeout=7)
    assert "READY" not in m
    events = int(re.match(r"1 VMs \(1 running\), (\d+) events", m["STATUS"]).group(1))
    assert events > 0
    # No WATCHDOG_USEC: no WATCHDOG=1.
    assert not [x for _, x in listener.snapshot() if "WATCHDOG" in x]


def test_no_watchdog_for_another_pid(daemon_factory, listener):
    """WATCHDOG_PID naming another process disables the watchdog (sd_watchdog_enabled(3))."""
    d = daemon_factory(config_text(vms=[sim_vm(unique("w"))]), start=False,
                       env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    d.start(wait=False)
    listener.wait("READY", "1", timeout=10)
    time.sleep(0.6)
    assert not [x for _, x in listener.snapshot() if "WATCHDOG" in x]


def test_without_notify_socket_nothing_breaks(daemon_factory):
    d = daemon_factory(config_text(vms=[sim_vm(unique("q"))]))
    d.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert d.request("ping") == "pong\n"
    d.signal(signal.SIGTERM)
    assert d.proc.wait(2) == 0
