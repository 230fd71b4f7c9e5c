"""Admin commands (DESIGN §8): reset counters [VM], pause VM, resume VM, reload; only for peer uid
0 or the daemon's uid (SO_PEERCRED); refusals are logged."""
import json
import os
import shutil
import subprocess
import time

import pytest

from .daemonlib import (COUNTERS, check_identities, config_text, journal_entries, make_trace,
                       sim_vm, unique, wait_done, wait_events, wait_for)

NOBODY_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
out = []
for line in sys.argv[2:]:
    s.sendall(line.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    out.append(buf.decode())
print(json.dumps(out))
"""


def as_nobody(sock, *lines):
    """Runs a client as uid nobody (setpriv) and returns its answers."""
    py = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(py, os.X_OK):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run a client as nobody")
    proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", py, "-c", NOBODY_CLIENT,
                           str(sock), *lines], capture_output=True, text=True, timeout=20, cwd="/")
    assert proc.returncode == 0, f"client as nobody failed: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def setup(module_daemon_factory, tmp_path_factory, journald):
    # journald first: the daemon picks journal or stderr once, at start (test_admin_refused_... reads the journal).
    trace = tmp_path_factory.mktemp("trace") / "a.trace"
    replay_vms = make_trace(trace, events=2000, seed=2)
    a, b = unique("aa"), unique("ab")
    d = module_daemon_factory(config_text(vms=[sim_vm(a, seed=1), sim_vm(b, seed=2)],
                                          replays=[{"trace": str(trace), "ordering": "strict"}]))
    wait_done(d, replay_vms)
    wait_events(d, a)
    wait_events(d, b)
    return {"d": d, "a": a, "b": b, "replay": replay_vms}


def events(d, vm):
    return d.stats(vm)["vms"][vm]["events"]


def test_pause_and_resume(setup):
    d, a, b = setup["d"], setup["a"], setup["b"]
    assert d.request(f"pause {a}") == f"ok: paused vm {a}\n"
    wait_for(lambda: d.stats(a)["vms"][a]["state"] == "paused", 3, what="state paused")
    time.sleep(0.2)  # a batch already handed to a vCPU queue may finish
    e1 = events(d, a)
    b1 = events(d, b)
    time.sleep(0.6)
    s = d.stats()
    assert s["vms"][a]["events"] == e1, "a paused VM's events still grow"
    assert s["vms"][a]["state"] == "paused"
    assert s["vms"][b]["events"] > b1, "the other VM stopped too"
    check_identities(s["vms"][a], "paused")
    # Pausing again is harmless; the JSON form.
    assert d.json(f"pause {a} json") == {"ok": True, "message": f"paused vm {a}"}
    assert d.request(f"resume {a}") == f"ok: resumed vm {a}\n"
    wait_for(lambda: d.stats(a)["vms"][a]["state"] == "running", 3, what="state running")
    wait_for(lambda: events(d, a) > e1, 3, what="events to grow again")
    assert d.json(f"resume {a} json")["ok"] is True


def test_pause_done_vm_is_refused(setup):
    d = setup["d"]
    vm = setup["replay"][0]
    assert d.request(f"pause {vm}").startswith("error: bad-argument: ")
    assert d.json(f"resume {vm} json")["error"]["code"] == "bad-argument"
    assert d.stats(vm)["vms"][vm]["state"] == "done"


def test_reset_counters_one_vm_then_all(setup):
    d, a, b = setup["d"], setup["a"], setup["b"]
    time.sleep(0.3)
    before = d.stats()
    assert before["vms"][a]["events"] > 1000
    assert d.request(f"reset counters {a}") == "ok: counters reset for 1 VM\n"
    after = d.stats()
    assert after["vms"][a]["events"] < before["vms"][a]["events"], "VM not reset"
    assert after["vms"][b]["events"] >= before["vms"][b]["events"], "another VM was reset"
    check_identities(after["vms"][a], "after reset")
    for p, sh in after["vms"][a]["shadows"].items():
        check_identities(sh, f"after reset, {p}")
    # Mappings are kept: mapped_pages is not zeroed, and the identity still holds.
    assert after["vms"][a]["mapped_pages"] > 0
    vm = setup["replay"][0]
    done_before = before["vms"][vm]
    assert done_before["events"] > 0
    j = d.json("reset counters json")
    assert j["ok"] is True and str(len(after["vms"])) in j["message"]
    s = d.stats(vm)["vms"][vm]
    for k in COUNTERS:
        if k != "map_pages":
            assert s[k] == 0, f"{vm}: {k} = {s[k]} after reset"
    assert s["map_pages"] == s["mapped_pages"] == done_before["mapped_pages"]
    assert s["peak_mapped_pages"] == s["mapped_pages"]
    assert s["hit_ratio"] is None
    check_identities(s, "done VM after reset")
    v = d.json(f"show vcpus {vm} json")["vcpus"]
    assert sum(c["events"] for c in v.values()) == 0


def test_admin_refused_for_another_uid(setup, journald):
    d, a = setup["d"], setup["a"]
    answers = as_nobody(d.socket, "ping", f"show stats {a} json", f"pause {a}", f"resume {a}",
                        f"reset counters {a}", "reset counters", "reload", f"pause {a} json")
    assert answers[0] == "pong\n\n"
    assert list(json.loads(answers[1])["vms"]) == [a]
    for text in answers[2:7]:
        assert text.startswith("error: permission-denied: "), answers
    assert json.loads(answers[7])["error"]["code"] == "permission-denied"
    assert d.stats(a)["vms"][a]["state"] == "running"
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=admin", timeout=5,
                           until=lambda rs: sum("refused" in r["MESSAGE"] for r in rs) >= 6)
    refused = [r for r in recs if "refused" in r["MESSAGE"]]
    assert len(refused) >= 6, recs
    assert all(r["PRIORITY"] == "4" and "65534" in r["MESSAGE"] for r in refused)
