"""Reload (DESIGN §7): SIGHUP or the `reload` command re-reads --config; VMs that did not change
keep their counters, new ones start, removed ones stop; a bad config is logged and the old one
keeps running."""
import signal
import time

import pytest

from .daemonlib import (COUNTERS, GAUGES, config_text, journal_entries, make_trace, sim_vm, unique,
                       wait_done, wait_events, wait_for)


def test_reload(daemon_factory, tmp_path, journald):
    trace = tmp_path / "r.trace"
    replay_vms = make_trace(trace, events=3000, seed=9)
    a, b, c = unique("ra"), unique("rb"), unique("rc")
    replay = {"trace": str(trace), "ordering": "strict"}
    v1 = config_text(vms=[sim_vm(a, seed=1), sim_vm(b, seed=2)], replays=[replay])
    d = daemon_factory(v1)
    wait_done(d, replay_vms)
    wait_events(d, a, 2000)

    # 1. SIGHUP with a VM added at the end (so that no other table moves: see
    # test_reload_keeps_vms_that_only_moved): a, b and the replayed VMs keep their counters; c starts.
    before = d.stats()
    d.config.write_text(v1 + "\n" + config_text(vms=[sim_vm(c, seed=3)]).split("\n\n", 1)[1])
    d.signal(signal.SIGHUP)
    wait_for(lambda: c in d.stats()["vms"], 5, what=f"{c} to appear after SIGHUP")
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=reload", timeout=5)
    assert recs and recs[0]["MESSAGE"] == "reloaded: 3 workloads kept, 1 started, 0 stopped", recs
    after = d.stats()
    for vm in [a, b]:
        assert after["vms"][vm]["events"] >= before["vms"][vm]["events"], f"{vm} was reset by the reload"
        assert after["vms"][vm]["state"] == "running"
    for vm in replay_vms:  # done: exactly the same counters
        for k in COUNTERS + GAUGES:
            assert after["vms"][vm][k] == before["vms"][vm][k], f"{vm} {k} changed by the reload"
        assert after["vms"][vm]["state"] == "done"
    wait_for(lambda: d.stats(a)["vms"][a]["events"] > after["vms"][a]["events"], 3, what=f"{a} to go on")
    info = d.json("show info json")
    assert info["reloads"] == 1 and info["last_reload_error"] is None

    # 2. SIGHUP with a bad config (an unknown key): logged, the old configuration keeps running.
    good = d.config.read_text()
    d.config.write_text(good + "\n[[vm]]\nid = \"zz\"\nbogus_key = 1\n")
    vms_before = sorted(d.stats()["vms"])
    e_before = d.stats(a)["vms"][a]["events"]
    d.signal(signal.SIGHUP)
    info = wait_for(lambda: (lambda i: i if i["last_reload_error"] else None)(d.json("show info json")), 5,
                    what="last_reload_error after a bad SIGHUP")
    assert "bogus_key" in info["last_reload_error"] and f"{d.config}:" in info["last_reload_error"], info
    assert info["reloads"] == 1
    assert sorted(d.stats()["vms"]) == vms_before
    wait_for(lambda: d.stats(a)["vms"][a]["events"] > e_before, 3, what=f"{a} to go on after a bad reload")
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=reload", "PRIORITY=3", timeout=5)
    assert recs and "bogus_key" in recs[0]["MESSAGE"], recs
    assert d.proc.poll() is None

    # 3. The reload command: error with the bad file, in text and JSON ...
    text = d.request("reload")
    assert text.startswith("error: bad-argument: reload failed") and "bogus_key" in text, text
    j = d.json("reload json")
    assert j["error"]["code"] == "bad-argument"
    assert sorted(d.stats()["vms"]) == vms_before

    # ... and ok with a good one that removes c (the last table) and changes a (same lines, another
    # seed): a restarts, its counters begin again; b and the replay are kept.
    e_a = d.stats(a)["vms"][a]["events"]
    d.config.write_text(config_text(vms=[sim_vm(a, seed=99), sim_vm(b, seed=2)], replays=[replay]))
    text = d.request("reload")
    assert text == "ok: reloaded: 2 workloads kept, 1 started, 2 stopped\n", text
    s = d.stats()
    assert sorted(s["vms"]) == sorted([a, b, *replay_vms])
    assert d.request(f"show stats {c}").startswith("error: no-such-vm")
    assert s["vms"][a]["events"] < e_a, "a changed VM kept its counters"
    info = d.json("show info json")
    assert info["reloads"] == 2 and info["last_reload_error"] is None
    j = d.json("reload json")
    assert j == {"ok": True, "message": "reloaded: 3 workloads kept, 0 started, 0 stopped"}
    assert s["vms"][b]["events"] >= after["vms"][b]["events"], f"{b} was reset"
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=vm-stop", f"NESTCACHE_VM={c}", timeout=5)
    assert recs, f"no vm-stop record for {c}"


def test_reload_keeps_a_paused_vm_paused(daemon_factory):
    a, b = unique("pa"), unique("pb")
    d = daemon_factory(config_text(vms=[sim_vm(a)]))
    assert d.request(f"pause {a}").startswith("ok")
    wait_for(lambda: d.stats(a)["vms"][a]["state"] == "paused", 3, what="paused")
    time.sleep(0.2)
    e = d.stats(a)["vms"][a]["events"]
    d.config.write_text(config_text(vms=[sim_vm(a), sim_vm(b)]))
    assert d.request("reload").startswith("ok: reloaded: 1 workloads kept, 1 started")
    time.sleep(0.4)
    s = d.stats()
    assert s["vms"][a]["state"] == "paused" and s["vms"][a]["events"] == e
    assert s["vms"][b]["state"] == "running"


def test_reload_keeps_vms_that_only_moved(daemon_factory):
    """DESIGN §7: "VMs that did not change keep their counters". A comment added at the top of
    the file changes no VM."""
    a = unique("mv")
    d = daemon_factory(config_text(vms=[sim_vm(a)]))
    before = wait_events(d, a, 2000)["events"]
    d.config.write_text("# a comment added by the operator\n" + d.config.read_text())
    text = d.request("reload")
    after = d.stats(a)["vms"][a]["events"]
    assert after >= before, f"{a} restarted: events {before} -> {after} ({text.strip()})"
    assert text == "ok: reloaded: 1 workloads kept, 0 started, 0 stopped\n"
