"""nestcached under a real systemd 252, booted in throw-away namespaces by systemd-harness.sh.

The harness installs the debug build with `make install PREFIX=/usr` (so the units under test are
the ones `make install` writes), boots systemd on an overlay of / whose writes stay in RAM, and
tears everything down at the end. The tests run in file order against one boot: socket first,
then activation, identity and hardening, reload, journal, watchdog restart, clean stop.
Skipped, with the reason, where the machine cannot do it (not root, no cgroup2/overlayfs, ...).
"""
import json
import os
import pathlib
import re
import subprocess
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
HARNESS = HERE / "systemd-harness.sh"
SOCK = "/run/nestcache/nestcached.sock"
CONF = "/etc/nestcache/nestcached.toml"
DROPIN = "/run/systemd/system/nestcached.service.d/50-test-watchdog.conf"
# Appended to the configuration by the reload test.
EXTRA_VM = """
[[vm]]
id = "extra"
l1_vcpus = 2
memory_mib = 4096
[vm.simulate]
preset = "thrash"
switch_rate_hz = 100
seed = 9
"""


class Box:
    """One booted systemd; `run` executes a command inside all its namespaces as root."""

    def __init__(self, state):
        self.state = state
        self.ready_status = None
        self.first_stats = None

    def run(self, *cmd, check=True, timeout=60, user=None):
        if user is not None:
            cmd = ("setpriv", *user, *cmd)
        proc = subprocess.run([str(HARNESS), "run", str(self.state), *map(str, cmd)],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def sh(self, script, **kw):
        return self.run("sh", "-ec", script, **kw)

    def show(self, unit, *props):
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def stats(self, *vm):
        out = self.run("nestcache", "show", "stats", *vm, "--json", "--socket", SOCK).stdout
        return json.loads(out)

    def journal(self):
        out = self.run("journalctl", "--no-pager", "-o", "json", "-u", "nestcached").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_for(self, what, predicate, timeout=20.0, interval=0.3):
        """Polls predicate() until it returns a true value; fails naming `what` and the last value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; last: {last!r}")

    def debug(self):
        """What to print when a test fails: the units' state and the journal's tail."""
        return self.run("sh", "-c", "systemctl status --no-pager nestcached.socket nestcached.service;"
                        " journalctl --no-pager -n 60", check=False).stdout


@pytest.fixture(scope="module")
def box(tmp_path_factory, request):
    check = subprocess.run([str(HARNESS), "check"], capture_output=True, text=True, timeout=60)
    if check.returncode == 77:
        pytest.skip(f"systemd system test: {check.stdout.strip()}")
    assert check.returncode == 0, check.stdout + check.stderr
    state = tmp_path_factory.mktemp("systemd-box")
    env = dict(os.environ)
    # `make test` has just built the debug products: install them without calling swift build.
    if all((REPO / ".build/debug" / b).is_file() for b in ("nestcache", "nestcached")):
        env["NOBUILD"] = "1"
    started = time.monotonic()
    boot = subprocess.run([str(HARNESS), "boot", str(state)], capture_output=True, text=True,
                          timeout=300, env=env)
    if boot.returncode == 77:
        pytest.skip(f"systemd system test: {boot.stdout.strip()}")
    assert boot.returncode == 0, f"boot failed:\n{boot.stdout}\n{boot.stderr}"
    b = Box(state)
    failed_before = request.session.testsfailed
    try:
        # What a package's postinst does: sysusers and tmpfiles for our files only (the global
        # setup units are masked in the box), then the socket.
        b.run("systemd-sysusers", "/usr/lib/sysusers.d/nestcache.conf")
        b.run("systemd-tmpfiles", "--create", "/usr/lib/tmpfiles.d/nestcache.conf")
        b.run("systemctl", "start", "nestcached.socket")
        print(f"systemd booted and socket started in {time.monotonic() - started:.1f} s")
        yield b
    finally:
        if request.session.testsfailed > failed_before:
            print("a system test failed; the box before teardown:\n" + b.debug())
        down = subprocess.run([str(HARNESS), "teardown", str(state)], capture_output=True,
                              text=True, timeout=60)
        print(f"teardown: exit {down.returncode} {down.stderr.strip()}")
        print(f"system test total {time.monotonic() - started:.1f} s")
        assert down.returncode == 0, down.stderr


def main_pid(box):
    return int(box.show("nestcached", "MainPID")["MainPID"])


def proc_status(box, pid):
    out = box.run("cat", f"/proc/{pid}/status").stdout
    return dict((k, v.strip()) for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l))


def test_socket_listens_before_any_client(box):
    sock = box.show("nestcached.socket", "ActiveState", "SubState", "Listen")
    assert (sock["ActiveState"], sock["SubState"]) == ("active", "listening"), sock
    assert sock["Listen"] == f"{SOCK} (Stream)"
    assert box.show("nestcached", "ActiveState")["ActiveState"] == "inactive"
    mode, owner, group = box.run("stat", "-c", "%a %U %G", SOCK).stdout.split()
    assert (mode, owner, group) == ("660", "root", "nestcache")


def test_first_client_starts_the_service(box):
    # The first request is answered by the service it starts (exit 0, a JSON answer).
    box.first_stats = box.stats()
    box.ready_status = box.show("nestcached", "StatusText")["StatusText"]
    assert "vms" in box.first_stats and "totals" in box.first_stats, box.first_stats
    svc = box.show("nestcached", "ActiveState", "SubState", "TriggeredBy", "Type", "MainPID")
    assert (svc["ActiveState"], svc["SubState"]) == ("active", "running"), svc
    assert svc["TriggeredBy"] == "nestcached.socket"
    assert svc["Type"] == "notify"
    vms = box.wait_for("the 3 configured VMs", lambda: set(box.stats()["vms"]) == {"microvm", "cloud", "thrash"}, timeout=10)
    assert vms
    # STATUS= is refreshed every 5 s: it must come to name the VMs the daemon serves and what
    # they did (READY's own STATUS= may come before their first events: "3 VMs (3 running), 0 events").
    status = box.wait_for("StatusText naming 3 VMs and a hit ratio",
                          lambda: (s := box.show("nestcached", "StatusText")["StatusText"])
                          .startswith("3 VMs") and "hit ratio" in s and s, timeout=15)
    assert re.fullmatch(r"3 VMs \(3 running\), \d+ events, hit ratio [\d.]+%", status), status


# DESIGN §7: the workloads register their VMs before the control socket is served and READY=1
# is sent, so READY's STATUS= and the request that socket-activated the daemon see them.
def test_ready_status_names_the_vms(box):
    assert box.ready_status is not None, "runs after test_first_client_starts_the_service"
    assert re.match(r"[1-9]\d* VMs", box.ready_status), box.ready_status
    assert not box.ready_status.endswith(","), box.ready_status


def test_activating_request_sees_the_vms(box):
    assert box.first_stats is not None, "runs after test_first_client_starts_the_service"
    assert set(box.first_stats["vms"]) == {"microvm", "cloud", "thrash"}, box.first_stats


def test_runs_as_its_own_user_with_hardening(box):
    pid = main_pid(box)
    uid = box.run("id", "-u", "nestcache").stdout.strip()
    st = proc_status(box, pid)
    assert st["Uid"].split() == [uid] * 4, st["Uid"]
    assert box.run("ps", "-o", "user=", "-p", pid).stdout.strip() in ("nestcache", "nestcac+")
    assert st["NoNewPrivs"] == "1"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, f"{cap} {st[cap]}"
    assert st["Seccomp"] == "2", "SystemCallFilter= installs a seccomp filter"
    # PrivateNetwork=: only a loopback device in the service's network namespace.
    assert box.run("readlink", f"/proc/{pid}/ns/net").stdout != box.run("readlink", "/proc/1/ns/net").stdout
    # PrivateUsers=: the service's user namespace is not PID 1's.
    assert box.run("readlink", f"/proc/{pid}/ns/user").stdout != box.run("readlink", "/proc/1/ns/user").stdout
    for path, want in (("/run/nestcache", "755 nestcache nestcache"),
                       ("/var/lib/nestcache", "750 nestcache nestcache")):
        assert box.run("stat", "-c", "%a %U %G", path).stdout.strip() == want, path


def test_client_outside_the_socket_group_is_refused(box):
    outsider = box.run("nestcache", "show", "stats", "--socket", SOCK, check=False,
                       user=("--reuid=nobody", "--regid=nogroup", "--clear-groups"))
    assert outsider.returncode != 0
    assert "Permission denied" in outsider.stderr, outsider.stderr
    member = box.run("nestcache", "ping", "--socket", SOCK,
                     user=("--reuid=nobody", "--regid=nogroup", "--groups=nestcache"))
    assert member.stdout.strip() == "pong"
    # Admin commands: refused to a mere group member, accepted from root (under PrivateUsers=,
    # SO_PEERCRED still reads root as uid 0 in the daemon's user namespace).
    refused = box.run("nestcache", "reload", "--socket", SOCK, check=False,
                      user=("--reuid=nobody", "--regid=nogroup", "--groups=nestcache"))
    assert refused.returncode == 1 and "permission-denied" in refused.stdout, refused
    assert "reloaded: 3 workloads kept" in box.run("nestcache", "reload", "--socket", SOCK).stdout


def test_reload_adds_a_vm_and_keeps_the_others_counters(box):
    pid = main_pid(box)
    before = box.stats()["vms"]
    box.sh(f"cat >>{CONF} <<'EOF'\n{EXTRA_VM}EOF")
    box.run("systemctl", "reload", "nestcached")
    after = box.wait_for("VM extra after reload", lambda: (v := box.stats()["vms"]) and "extra" in v and v)
    assert main_pid(box) == pid, "a reload must not restart the daemon"
    assert set(after) == {"microvm", "cloud", "thrash", "extra"}
    for vm, old in before.items():
        # Kept workloads keep counting from where they were; a restarted one would be near zero.
        assert after[vm]["events"] >= old["events"] > 0, (vm, old["events"], after[vm]["events"])
    svc = box.wait_for("active/running after reload",
                       lambda: (s := box.show("nestcached", "ActiveState", "SubState"))["SubState"] == "running" and s)
    assert svc["ActiveState"] == "active"
    reloads = [e for e in box.journal() if e.get("NESTCACHE_EVENT") == "reload"]
    assert any("1 started" in e.get("MESSAGE", "") for e in reloads), reloads


def test_journal_holds_the_daemons_structured_entries(box):
    entries = [e for e in box.journal() if e.get("SYSLOG_IDENTIFIER") == "nestcached"]
    events = {e.get("NESTCACHE_EVENT") for e in entries}
    assert {"startup", "vm-start", "reload"} <= events, events
    started = {e.get("NESTCACHE_VM") for e in entries if e.get("NESTCACHE_EVENT") == "vm-start"}
    assert started == {"microvm", "cloud", "thrash", "extra"}, started
    for e in entries:
        assert e.get("_SYSTEMD_UNIT") == "nestcached.service", e
    startup = next(e for e in entries if e.get("NESTCACHE_EVENT") == "startup")
    assert "socket-activated" in startup["MESSAGE"], startup["MESSAGE"]
    # SystemCallFilter= allows setpriority: libdispatch may renice its workers. (It still logs
    # errno=13, EACCES, when it asks for nice -2/-4 without the privilege; errno=1 would be seccomp.)
    denied = [e["MESSAGE"] for e in entries
              if "thread priority" in e.get("MESSAGE", "") and e["MESSAGE"].endswith("errno=1")]
    assert not denied, denied[:3]


def test_watchdog_failure_restarts_the_service(box):
    box.sh(f"mkdir -p {os.path.dirname(DROPIN)}\nprintf '[Service]\\nWatchdogSec=2s\\n' >{DROPIN}\n"
           "systemctl daemon-reload\nsystemctl restart nestcached")
    assert box.show("nestcached", "WatchdogUSec")["WatchdogUSec"] == "2s"
    box.stats()
    old_pid = main_pid(box)
    restarts = int(box.show("nestcached", "NRestarts")["NRestarts"])
    time.sleep(2.5)  # a healthy daemon outlives a 2 s watchdog
    assert main_pid(box) == old_pid, "restarted although WATCHDOG=1 should have come every second"
    box.run("kill", "-STOP", old_pid)
    stopped = time.monotonic()

    def restarted():
        s = box.show("nestcached", "MainPID", "NRestarts", "ActiveState", "SubState")
        ok = (int(s["MainPID"]) not in (0, old_pid) and int(s["NRestarts"]) >= restarts + 1
              and (s["ActiveState"], s["SubState"]) == ("active", "running"))
        return ok and s

    s = box.wait_for("a watchdog restart", restarted, timeout=30)
    took = time.monotonic() - stopped
    # 2 s watchdog + SIGABRT (TimeoutAbortSec=5s at worst) + RestartSec=1s: well under 30 s, the
    # time a hanging Swift backtracer would hold it in stop-watchdog.
    assert took < 15, f"restart took {took:.1f} s"
    assert box.run("nestcache", "ping", "--socket", SOCK).stdout.strip() == "pong"
    log = box.run("journalctl", "--no-pager", "-u", "nestcached", "-o", "cat").stdout
    assert "Watchdog timeout" in log
    assert f"Killing process {old_pid} (nestcached) with signal SIGABRT" in log
    print(f"watchdog restart: new MainPID {s['MainPID']}, NRestarts {s['NRestarts']}, {took:.1f} s")


def test_stop_is_clean_and_the_socket_stays(box):
    pid = main_pid(box)
    assert pid > 0
    box.run("systemctl", "stop", "nestcached")
    svc = box.show("nestcached", "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    assert svc == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0",
                   "ExecMainCode": "1"}, svc
    shutdown = [e for e in box.journal() if e.get("NESTCACHE_EVENT") == "shutdown" and e.get("_PID") == str(pid)]
    assert any(e["MESSAGE"].startswith("nestcached stopping") for e in shutdown), shutdown
    # RuntimeDirectoryPreserve=yes: the socket's file outlives the service, so the next client
    # activates it again.
    assert box.show("nestcached.socket", "SubState")["SubState"] == "listening"
    assert box.run("nestcache", "ping", "--socket", SOCK).stdout.strip() == "pong"
    assert main_pid(box) not in (0, pid)
    box.run("systemctl", "stop", "nestcached.socket", "nestcached")
    assert box.run("test", "-e", SOCK, check=False).returncode == 1, "RemoveOnStop=yes"
