"""Helpers of the end-to-end tests of the real `nestcached` process (DESIGN §7, §8, §9).

Fixtures:
- `nestcached` / `nestcache`: the built binaries (NESTCACHED_BIN, NESTCACHE_BIN; default
  .build/debug/...). A missing binary fails: `make test` builds them first.
- `daemon_factory`: makes `Daemon`s (config in a tmp dir, `--config`, `--socket DIR/sock`), and
  terminates every one at teardown.
- `journald`: a reachable journald; starts `/lib/systemd/systemd-journald` when
  /run/systemd/journal/socket is not connectable, and stops only the one it started.

Every socket operation and every wait has a timeout, so no test can hang.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
NESTCACHED = pathlib.Path(os.environ.get("NESTCACHED_BIN", REPO / ".build" / "debug" / "nestcached"))
NESTCACHE = pathlib.Path(os.environ.get("NESTCACHE_BIN", REPO / ".build" / "debug" / "nestcache"))
JOURNAL_SOCKET = "/run/systemd/journal/socket"
JOURNALD = "/lib/systemd/systemd-journald"

# DESIGN §4.
COUNTERS = ["events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs",
            "recycles", "uncached", "steals", "migrations", "migration_hits", "map_pages",
            "unmap_pages"]
GAUGES = ["contexts", "free", "mapped_pages", "peak_mapped_pages"]
DERIVED = ["hit_ratio", "exposure", "overhead_ns"]
STATES = {"running", "paused", "done", "failed", "waiting"}  # waiting: [[live]] only (DESIGN-NOTES)

# DESIGN §8's error codes.
ERROR_CODES = {"unknown-command", "bad-argument", "no-such-vm", "permission-denied",
               "line-too-long", "busy"}


def unique(prefix="t"):
    """A VM id no other test (or earlier run) uses, so journal queries find only ours."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def connectable(path, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    s.settimeout(1)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Client:
    """One control-socket connection; every operation times out."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_response(self, timeout=5.0):
        """Bytes up to and including the first empty line ("\\n\\n"), as text without it."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete response within {timeout} s; got {self.buf[:500]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"connection closed; pending {self.buf[:500]!r}")
            self.buf += chunk
        end = self.buf.index(b"\n\n")
        text, self.buf = self.buf[:end + 1], self.buf[end + 2:]
        return text.decode()

    def request(self, line, timeout=5.0):
        self.send(line + "\n")
        return self.read_response(timeout)

    def json(self, line, timeout=5.0):
        text = self.request(line, timeout)
        assert text.count("\n") == 1, f"{line!r}: JSON answer is not one line: {text[:500]!r}"
        return json.loads(text)

    def read_until_eof(self, timeout=5.0):
        """Everything until the daemon closes the connection."""
        deadline = time.monotonic() + timeout
        data, self.buf = self.buf, b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection not closed within {timeout} s; got {data[-300:]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return data
            data += chunk

    def is_closed_by_peer(self, timeout):
        """True when the daemon closes the connection within `timeout` s (nothing else sent)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def config_text(vms=(), replays=(), daemon=None, defaults=None):
    """A TOML config: `daemon`/`defaults` are dicts of key -> TOML text of the value; `vms` and
    `replays` are dicts (a VM's "simulate" is itself a dict)."""
    d = {"socket_mode": '"0666"', "max_clients": "64", "idle_timeout_s": "30",
         "log_level": '"info"', "summary_interval_s": "0"}
    d.update(daemon or {})
    out = ["[daemon]"] + [f"{k} = {v}" for k, v in d.items()]
    if defaults:
        out += ["", "[defaults]"] + [f"{k} = {v}" for k, v in defaults.items()]
    for vm in vms:
        vm = dict(vm)
        sim = vm.pop("simulate", {})
        out += ["", "[[vm]]"] + [f"{k} = {toml(v)}" for k, v in vm.items()]
        out += ["[vm.simulate]"] + [f"{k} = {toml(v)}" for k, v in sim.items()]
    for r in replays:
        out += ["", "[[replay]]"] + [f"{k} = {toml(v)}" for k, v in r.items()]
    return "\n".join(out) + "\n"


def toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    return json.dumps(str(v))


def sim_vm(vm_id, l1_vcpus=4, memory_mib=4096, rate=2000, seed=1, **extra):
    """A simulated VM that runs until stopped, at a few tens of thousands of events per second."""
    sim = {"l2_vcpus": 3 * l1_vcpus, "scheduler": "pinned", "migration_rate": 0.05,
           "switch_rate_hz": rate, "entries_per_switch": 2, "seed": seed}
    sim.update(extra.pop("simulate", {}))
    return {"id": vm_id, "l1_vcpus": l1_vcpus, "memory_mib": memory_mib, **extra, "simulate": sim}


class Daemon:
    """A real `nestcached` on a private socket. `start()` waits until the socket answers `ping`.

    The socket is in its own directory under /tmp (short enough for sun_path; mode 0777 so that
    `nobody` can reach it when the config says socket_mode = "0666")."""

    def __init__(self, binary, workdir, text=None, env=None, args=None):
        self.binary = binary
        self.workdir = pathlib.Path(workdir)
        self.sockdir = pathlib.Path(tempfile.mkdtemp(prefix="ncd-", dir="/tmp"))
        os.chmod(self.sockdir, 0o777)
        self.socket = self.sockdir / "sock"
        self.config = self.workdir / "nestcached.toml"
        if text is not None:
            self.config.write_text(text)
        self.env = env
        self.args = args
        self.proc = None
        self.stderr_path = self.workdir / "nestcached.stderr"
        self.stdout_path = self.workdir / "nestcached.stdout"

    @property
    def pid(self):
        return self.proc.pid

    def command(self):
        if self.args is not None:
            return [str(self.binary), *self.args]
        return [str(self.binary), "--config", str(self.config), "--socket", str(self.socket)]

    def start(self, wait=True, timeout=10):
        env = dict(os.environ)
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                  "LISTEN_FDNAMES", "JOURNAL_STREAM"]:
            env.pop(k, None)
        env.update(self.env or {})
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"nestcached exited {self.proc.returncode} before serving:\n{self.stderr()}")
            if not connectable(self.socket):
                return False
            try:
                with self.client(timeout=2) as c:
                    return c.request("ping") == "pong\n"
            except OSError:
                return False
        wait_for(up, timeout, what=f"nestcached to serve {self.socket}")

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, timeout=5.0):
        return Client(self.socket, timeout)

    def request(self, line, timeout=5.0):
        with self.client(timeout) as c:
            return c.request(line, timeout)

    def json(self, line, timeout=5.0):
        with self.client(timeout) as c:
            return c.json(line, timeout)

    def stats(self, vm=None):
        return self.json(f"show stats {vm} json" if vm else "show stats json")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.alive(), f"nestcached is not running (exit {self.proc.returncode}):\n{self.stderr()}"
        self.proc.send_signal(sig)

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL after `timeout` s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def cleanup(self):
        try:
            self.stop()
        finally:
            for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
                if f:
                    f.close()
            shutil.rmtree(self.sockdir, ignore_errors=True)


class DaemonFactory:
    def __init__(self, binary, base):
        self.binary = binary
        self.base = pathlib.Path(base)
        self.daemons = []

    def __call__(self, text=None, start=True, env=None, args=None, **kw):
        workdir = self.base / f"d{len(self.daemons)}"
        workdir.mkdir(parents=True, exist_ok=True)
        if text is None and args is None:
            text = config_text(**kw)
        d = Daemon(self.binary, workdir, text=text, env=env, args=args)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def cleanup(self):
        for d in self.daemons:
            d.cleanup()


# MARK: journald

SESSION_START = time.time()


def journal_entries(*matches, timeout=5.0, until=None):
    """`journalctl -o json MATCH...` records, polled until `until(records)` holds (or any record
    when `until` is None) or `timeout` s pass; returns the last records read."""
    deadline = time.monotonic() + timeout
    while True:
        # Only this test session's records: pids are reused across runs.
        proc = subprocess.run(["journalctl", "--no-pager", "-o", "json", f"--since=@{int(SESSION_START) - 1}", *matches],
                              capture_output=True, text=True, timeout=10)
        records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        done = until(records) if until else bool(records)
        if done or time.monotonic() >= deadline:
            return records
        time.sleep(0.2)


# MARK: shared checks

def check_identities(c, where):
    """DESIGN §4's identities on one counters-and-gauges object (a snapshot)."""
    for key in COUNTERS + GAUGES:
        assert key in c, f"{where}: {key} missing from {sorted(c)}"
        assert isinstance(c[key], int) and not isinstance(c[key], bool) and c[key] >= 0, f"{where}: {key} = {c[key]!r}"
    assert c["hits"] + c["misses"] == c["switches"], f"{where}: hits + misses != switches: {c}"
    assert c["allocs"] + c["recycles"] + c["uncached"] == c["misses"], f"{where}: allocs + recycles + uncached != misses: {c}"
    assert c["events"] == c["loads"] + c["entries"] + c["clears"], f"{where}: events != loads + entries + clears: {c}"
    assert c["migration_hits"] <= c["hits"], f"{where}: migration_hits > hits: {c}"
    assert c["map_pages"] - c["unmap_pages"] == c["mapped_pages"], f"{where}: map_pages - unmap_pages != mapped_pages: {c}"
    assert c["mapped_pages"] <= c["peak_mapped_pages"], f"{where}: mapped_pages > peak_mapped_pages: {c}"
    if "hit_ratio" in c:
        if c["switches"] == 0:
            assert c["hit_ratio"] is None, f"{where}: hit_ratio without switches: {c}"
        else:
            assert abs(c["hit_ratio"] - c["hits"] / c["switches"]) <= 1e-6, f"{where}: hit_ratio != hits / switches: {c}"


def dedent(s):
    return textwrap.dedent(s).lstrip("\n")


# MARK: traces

def make_trace(path, events=20000, seed=7):
    """A native trace (DESIGN §5) of a few VMs: switches, entries, clears and migrations between
    L1 vCPUs, more L2 control blocks than per-vm-table:1 and per-vcpu-lru:1 hold. One VM is not
    declared (M = the vCPUs seen so far); one declares pages_per_context = 5. Returns the VM ids."""
    import random
    rng = random.Random(seed)
    vms = [  # id, L1 vCPUs, L2 control blocks, declared header or None
        ("sa", 4, 12, "l1_vcpus=4 memory_mib=4096"),
        ("sb", 2, 40, "l1_vcpus=2 memory_mib=2048 pages_per_context=5"),
        ("sc", 3, 9, None),
    ]
    lines = ["# nestcache-trace v1"]
    for vm, _, _, header in vms:
        if header:
            lines.append(f"# vm {vm} {header}")
    current = {}
    t = 1000
    for _ in range(events):
        i = rng.randrange(len(vms))
        vm, m, n, _ = vms[i]
        v = rng.randrange(m)
        base = 0x100000000 + i * 0x10000000
        r = rng.random()
        cur = current.get((vm, v))
        if cur is None or r < 0.25:
            g = base + rng.randrange(n) * 0x1000
            op = "load" if rng.random() < 0.5 else "enter"
            current[(vm, v)] = g
        elif r < 0.32:
            g = cur if rng.random() < 0.7 else base + rng.randrange(n) * 0x1000
            op = "clear"
            if g == cur:
                current.pop((vm, v))
        else:
            g, op = cur, "enter"
        lines.append(f"{t} {vm} {v} {op} {g:#x}")
        t += rng.randrange(0, 50)
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    return [v[0] for v in vms]


def wait_done(d, vms, timeout=15):
    """Waits until every VM in `vms` is served and in state "done"; returns the stats."""
    def done():
        s = d.stats()
        return s if all(s["vms"].get(v, {}).get("state") == "done" for v in vms) else None
    return wait_for(done, timeout, interval=0.05, what=f"{', '.join(vms)} to be done")


def wait_events(d, vm, more_than=0, timeout=10):
    """Waits until VM `vm` is served with more than `more_than` events."""
    def grown():
        v = d.stats()["vms"].get(vm)
        return v if v and v["events"] > more_than else None
    return wait_for(grown, timeout, interval=0.05, what=f"{vm} to pass {more_than} events")


def config_as_served(text):
    """`show config`'s body for a file: an answer ends at its first empty line, so the daemon
    sends blank lines as "#" (and drops trailing ones)."""
    lines = ["#" if not l.strip() else l for l in text.split("\n")]
    while len(lines) > 1 and lines[-1] == "#":
        lines.pop()
    return "\n".join(lines) + "\n"
