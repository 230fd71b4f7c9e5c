"""journald (DESIGN §7): the daemon's records, read back with `journalctl -o json _PID=...`,
carry SYSLOG_IDENTIFIER=nestcached, PRIORITY and the NESTCACHE_* fields; without a journal
socket the records go to stderr."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from .daemonlib import config_text, journal_entries, sim_vm, unique, wait_for


def events_of(records):
    return [r.get("NESTCACHE_EVENT") for r in records]


def test_journal_records(daemon_factory, journald, tmp_path):
    vm = unique("j")
    thrash = unique("jt")
    # thrash: one L1 vCPU cycling 12 L2 vCPUs with VMCLEAR on every switch: per-vm-table:8 never
    # hits (DESIGN §4's selftest check, "migrate" rounds with N > 8).
    vms = [sim_vm(vm, l1_vcpus=2),
           {"id": thrash, "l1_vcpus": 1, "memory_mib": 1024,
            "simulate": {"l2_vcpus": 12, "scheduler": "round-robin", "vmclear_on_switch": True,
                         "switch_rate_hz": 5000, "entries_per_switch": 1, "seed": 4}}]
    d = daemon_factory(config_text(vms=vms, daemon={"summary_interval_s": "1"}))
    pid = str(d.pid)
    recs = journal_entries(f"_PID={pid}", timeout=6,
                           until=lambda rs: {"startup", "vm-start", "summary", "thrash"} <= set(events_of(rs)))
    assert recs, f"no journal records for _PID={pid}"
    for r in recs:
        assert r["SYSLOG_IDENTIFIER"] == "nestcached", r
        assert r["PRIORITY"] in {"2", "3", "4", "5", "6", "7"}, r
        assert r.get("MESSAGE"), r
        assert r.get("NESTCACHE_EVENT") in {"startup", "vm-start", "vm-stop", "summary", "thrash", "trace-error",
                                             "admin", "reload", "shutdown"}, r
    by = {}
    for r in recs:
        by.setdefault(r["NESTCACHE_EVENT"], []).append(r)
    assert {"startup", "vm-start", "summary", "thrash"} <= set(by), sorted(by)

    startup = by["startup"][0]
    assert startup["PRIORITY"] == "5"
    assert str(d.config) in startup["MESSAGE"]

    starts = {r["NESTCACHE_VM"]: r for r in by["vm-start"]}
    assert set(starts) == {vm, thrash}
    assert starts[vm]["NESTCACHE_POLICY"] == "per-vm-table:8" and starts[vm]["PRIORITY"] == "6"

    summaries = [r for r in by["summary"] if r.get("NESTCACHE_VM") == vm]
    assert summaries, by["summary"]
    s = summaries[-1]
    assert s["PRIORITY"] == "6" and s["NESTCACHE_POLICY"] == "per-vm-table:8"
    ratio = float(s["NESTCACHE_HIT_RATIO"])
    assert 0 <= ratio <= 1
    assert re.fullmatch(r"[01](\.\d+)?", s["NESTCACHE_HIT_RATIO"])

    t = by["thrash"][0]
    assert t["NESTCACHE_VM"] == thrash and t["PRIORITY"] == "4" and float(t["NESTCACHE_HIT_RATIO"]) < 0.05

    # Reload: one record with NESTCACHE_EVENT=reload.
    d.signal(signal.SIGHUP)
    recs = journal_entries(f"_PID={pid}", "NESTCACHE_EVENT=reload", timeout=5)
    assert recs and recs[0]["PRIORITY"] == "5" and "reloaded" in recs[0]["MESSAGE"], recs

    # Admin commands are logged.
    assert d.request(f"reset counters {vm}").startswith("ok")
    recs = journal_entries(f"_PID={pid}", "NESTCACHE_EVENT=admin", timeout=5)
    assert recs and vm in recs[0]["MESSAGE"], recs

    # Shutdown: the signal, a last summary per VM, the final line.
    d.signal(signal.SIGTERM)
    assert d.proc.wait(2) == 0
    recs = journal_entries(f"_PID={pid}", "NESTCACHE_EVENT=shutdown", timeout=5,
                           until=lambda rs: len(rs) >= 4)
    assert {r.get("NESTCACHE_VM") for r in recs} >= {vm, thrash}, recs
    assert any("SIGTERM" in r["MESSAGE"] for r in recs)
    assert any(r["MESSAGE"].startswith("nestcached stopping") for r in recs)

    # Rate: summaries each second, never a record per cache event.
    every = journal_entries(f"_PID={pid}", timeout=0)
    assert len(every) < 100, f"{len(every)} records in a few seconds"
    assert not any(r["PRIORITY"] == "7" for r in every), "debug records at log_level info"


def test_trace_error_is_logged_and_vm_failed(daemon_factory, journald, tmp_path):
    vm = unique("te")
    trace = tmp_path / "bad.trace"
    lines = ["# nestcache-trace v1", f"# vm {vm} l1_vcpus=2"]
    for i in range(6000):  # more than one batch of 4096, so the VM exists when the error comes
        lines.append(f"{1000 + i} {vm} {i % 2} enter {0x10000000 + (i % 5) * 0x1000:#x}")
    bad_line = len(lines) + 1
    lines.append(f"99999 {vm} 0 frobnicate 0x1000")
    trace.write_text("\n".join(lines) + "\n")
    d = daemon_factory(config_text(replays=[{"trace": str(trace), "ordering": "strict"}]))
    wait_for(lambda: vm in d.stats()["vms"] and d.stats()["vms"][vm]["state"] == "failed", 10,
             what="the replayed VM to fail")
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=trace-error", timeout=5)
    assert recs, "no trace-error record"
    assert recs[0]["PRIORITY"] == "3"
    assert f"{trace}:{bad_line}" in recs[0]["MESSAGE"], recs[0]["MESSAGE"]
    assert d.request("ping") == "pong\n"
    # A failed VM cannot be paused.
    assert d.request(f"pause {vm}").startswith("error: bad-argument")


def test_stderr_without_journal(nestcached, tmp_path):
    """With no journal socket (a private mount namespace hides /run/systemd/journal), records are
    lines on stderr: `LEVEL [event key=value ...] message`."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and util-linux unshare for a private mount namespace")
    vm = unique("e")
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(vms=[sim_vm(vm)], daemon={"summary_interval_s": "1"}))
    sockdir = tmp_path / "s"
    sockdir.mkdir()
    sock = sockdir / "sock"
    err = tmp_path / "stderr"
    script = 'mkdir -p /run/systemd/journal && mount -t tmpfs tmpfs /run/systemd/journal && exec "$@"'
    with open(err, "wb") as e:
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                 str(nestcached), "--config", str(cfg), "--socket", str(sock)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e)
    try:
        text = wait_for(lambda: (lambda t: t if "[summary" in t else None)(err.read_text(errors="replace")), 8,
                        what="a summary line on stderr")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(3)
    assert code == 0
    text = err.read_text(errors="replace")
    assert re.search(r"^NOTICE \[startup\] nestcached ", text, re.M), text
    assert re.search(rf"^INFO \[vm-start policy=per-vm-table:8 vm={vm}\] VM started", text, re.M), text
    assert re.search(rf"^INFO \[summary hit_ratio=[0-9.]+ policy=per-vm-table:8 vm={vm}\] ", text, re.M), text
    assert re.search(r"^NOTICE \[shutdown\] nestcached stopping", text, re.M), text
    # Nothing of this run reached the journal. (By its unique VM id: a pid alone can match an
    # earlier process's records, pids being reused.)
    assert not journal_entries(f"NESTCACHE_VM={vm}", timeout=0) if shutil.which("journalctl") else True
