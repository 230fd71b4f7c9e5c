"""Every control-socket command of DESIGN §8, in text and in JSON, on a running daemon; the
`show stats json` shape; DESIGN §4's identities inside snapshots taken while the engine runs."""
import json
import re
import time

import pytest

from .daemonlib import (COUNTERS, config_as_served, DERIVED, ERROR_CODES, GAUGES, STATES, check_identities, config_text,
                       make_trace, sim_vm, unique, wait_done, wait_events, wait_for)

VM_KEYS = {"policy", "l1_vcpus", "state", *COUNTERS, *GAUGES, "hit_ratio", "exposure", "shadows"}
# Beyond DESIGN §8: overhead_ns (a derived figure of §4) and lock_wait (the daemon's own measure
# of the per-VM lock). Any other key is a change of the contract and fails here.
VM_EXTRA_KEYS = {"overhead_ns", "lock_wait"}
POLICY_KEYS = {*COUNTERS, *GAUGES, *DERIVED}


@pytest.fixture(scope="module")
def setup(module_daemon_factory, tmp_path_factory):
    trace = tmp_path_factory.mktemp("trace") / "small.trace"
    replay_vms = make_trace(trace, events=3000, seed=11)
    a, b = unique("pa"), unique("pb")
    text = config_text(
        vms=[sim_vm(a, l1_vcpus=4, seed=1),
             sim_vm(b, l1_vcpus=2, seed=2, policy="per-vcpu-lru:2", shadow_policies=["per-vm-table:2", "single"])],
        replays=[{"trace": str(trace), "speed": "max", "ordering": "strict"}],
        defaults={"policy": '"per-vm-table:8"', "shadow_policies": '["per-vcpu-lru:3", "map-per-entry"]'})
    d = module_daemon_factory(text)
    wait_done(d, replay_vms)
    wait_events(d, a, 100)
    wait_events(d, b, 100)
    return {"d": d, "a": a, "b": b, "replay": replay_vms, "all": sorted([a, b, *replay_vms])}


def test_ping_version_help(setup):
    d = setup["d"]
    assert d.request("ping") == "pong\n"
    assert d.json("ping json") == {"pong": True}
    assert re.fullmatch(r"nestcached \d+\.\d+\.\d+\n", d.request("version"))
    v = d.json("version json")
    assert set(v) == {"version"} and re.fullmatch(r"\d+\.\d+\.\d+", v["version"])
    help_text = d.request("help")
    for cmd in ["help", "version", "ping", "show info", "show stats", "show vcpus", "show metrics",
                "show config", "quit", "reset counters", "pause", "resume", "reload"]:
        assert cmd in help_text, f"help does not mention {cmd!r}:\n{help_text}"
    h = d.json("help json")
    assert set(h) == {"help"} and h["help"].strip() == help_text.strip()


def test_show_info(setup):
    d = setup["d"]
    info = d.json("show info json")
    for key in ["version", "pid", "uid", "uptime_s", "config", "socket", "vms", "default_policy",
                "shadow_policies", "pages_per_context", "reloads", "last_reload_error", "status"]:
        assert key in info, f"show info json lacks {key}: {sorted(info)}"
    assert info["pid"] == d.pid
    assert info["uid"] == 0 or isinstance(info["uid"], int)
    assert info["socket"] == str(d.socket)
    assert info["config"] == str(d.config)
    assert info["vms"] == len(setup["all"])
    assert info["default_policy"] == "per-vm-table:8"
    assert info["shadow_policies"] == ["per-vcpu-lru:3", "map-per-entry"]
    assert info["pages_per_context"] == 4
    assert isinstance(info["uptime_s"], (int, float)) and info["uptime_s"] > 0
    assert "\n" not in info["status"]
    text = d.request("show info")
    assert f"pid: {d.pid}\n" in text and f"socket: {d.socket}\n" in text, text


def test_lock_wait_per_policy(setup):
    """docs/DESIGN-NOTES.md, "Locks": `lock_wait` is the primary's; `lock_wait.policies` has each
    policy's (a per-vm-table's own lock, "vm"; the vCPU lanes', "vcpu"), and the metrics one series
    per policy."""
    d = setup["d"]
    s = d.stats()
    metrics = d.request("show metrics")
    for vm_id, vm in s["vms"].items():
        lw = vm["lock_wait"]
        names = [vm["policy"], *vm["shadows"]]
        assert list(lw["policies"]) == names, (vm_id, lw)
        for p, w in lw["policies"].items():
            assert set(w) == {"total_ns", "max_ns", "acquisitions", "lock"}, (vm_id, p, w)
            assert w["lock"] == ("vm" if p.startswith("per-vm-table") else "vcpu"), (vm_id, p, w)
            assert w["max_ns"] <= w["total_ns"]
            assert f'nestcache_lock_wait_seconds_total{{vm="{vm_id}",policy="{p}"}} ' in metrics, (vm_id, p)
        primary = lw["policies"][vm["policy"]]
        assert lw["lock"] == primary["lock"]


def test_show_stats_json_shape(setup):
    d = setup["d"]
    s = d.stats()
    assert set(s) == {"uptime_s", "vms", "totals"}
    assert isinstance(s["uptime_s"], (int, float)) and s["uptime_s"] >= 0
    assert sorted(s["vms"]) == setup["all"]
    assert set(s["totals"]) == POLICY_KEYS, sorted(set(s["totals"]) ^ POLICY_KEYS)
    for vm_id, vm in s["vms"].items():
        assert VM_KEYS <= set(vm), f"{vm_id}: missing {sorted(VM_KEYS - set(vm))}"
        assert set(vm) <= VM_KEYS | VM_EXTRA_KEYS, f"{vm_id}: unexpected {sorted(set(vm) - VM_KEYS - VM_EXTRA_KEYS)}"
        assert vm["state"] in STATES
        assert isinstance(vm["l1_vcpus"], int) and vm["l1_vcpus"] >= 1
        assert vm["hit_ratio"] is None or 0 <= vm["hit_ratio"] <= 1
        assert vm["exposure"] is None or vm["exposure"] >= 0
        check_identities(vm, f"{vm_id} primary")
        for p, sh in vm["shadows"].items():
            assert set(sh) == POLICY_KEYS, f"{vm_id} shadow {p}: {sorted(set(sh) ^ POLICY_KEYS)}"
            check_identities(sh, f"{vm_id} shadow {p}")
    a, b = setup["a"], setup["b"]
    assert s["vms"][a]["policy"] == "per-vm-table:8" and list(s["vms"][a]["shadows"]) == ["per-vcpu-lru:3", "map-per-entry"]
    assert s["vms"][b]["policy"] == "per-vcpu-lru:2" and list(s["vms"][b]["shadows"]) == ["per-vm-table:2", "single"]
    assert s["vms"][a]["l1_vcpus"] == 4 and s["vms"][b]["l1_vcpus"] == 2
    assert s["vms"][a]["state"] == "running"
    # Declared memory: exposure = peak_mapped_pages * 4096 / memory bytes (DESIGN §4).
    vm = s["vms"][a]
    assert vm["exposure"] == pytest.approx(vm["peak_mapped_pages"] * 4096 / (4096 * 2**20), abs=1e-6)
    # The undeclared replayed VM has no memory: exposure null.
    assert s["vms"]["sc"]["exposure"] is None and s["vms"]["sc"]["l1_vcpus"] == 3


def test_show_stats_one_vm(setup):
    d = setup["d"]
    for vm in ["sa", setup["a"]]:
        s = d.stats(vm)
        assert list(s["vms"]) == [vm]
        if vm == "sa":  # done: stable, so totals are exactly the VM's primary
            for k in COUNTERS + GAUGES:
                assert s["totals"][k] == s["vms"][vm][k], k
        check_identities(s["totals"], f"totals of {vm}")
    text = d.request(f"show stats {setup['b']}")
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["vm", "state", "policy"]
    assert lines[1].split()[:3] == [setup["b"], "running", "per-vcpu-lru:2"]
    assert [l.split()[0] for l in lines[2:]] == ["per-vm-table:2", "single"]


def test_show_stats_text_all(setup):
    text = setup["d"].request("show stats")
    for vm in setup["all"]:
        assert re.search(rf"^{re.escape(vm)}\s+(running|done|paused)\s", text, re.M), f"{vm} not in:\n{text}"


def test_show_vcpus(setup):
    d = setup["d"]
    # A finished replay: per-vCPU counters add up to the VM's primary counters.
    for vm in setup["replay"]:
        v = d.json(f"show vcpus {vm} json")
        assert set(v) >= {"vm", "policy", "vcpus"} and v["vm"] == vm
        s = d.stats(vm)["vms"][vm]
        assert v["policy"] == s["policy"], "show vcpus counts the primary policy"
        assert sorted(v["vcpus"], key=int) == [str(i) for i in range(len(v["vcpus"]))]
        assert len(v["vcpus"]) == s["l1_vcpus"]
        for i, c in v["vcpus"].items():
            assert set(COUNTERS) <= set(c), f"{vm} vcpu {i}: {sorted(c)}"
            assert c["hits"] + c["misses"] == c["switches"]
            assert c["events"] == c["loads"] + c["entries"] + c["clears"]
        for k in COUNTERS:
            assert sum(c[k] for c in v["vcpus"].values()) == s[k], f"{vm}: sum over vCPUs of {k} != VM's"
        text = d.request(f"show vcpus {vm}")
        assert text.splitlines()[0].startswith(vm)
        assert len([l for l in text.splitlines()[2:] if l.strip()]) == s["l1_vcpus"]
    v = d.json(f"show vcpus {setup['a']} json")
    assert sorted(v["vcpus"], key=int) == ["0", "1", "2", "3"]


def test_show_config_is_the_file(setup):
    d = setup["d"]
    with d.client() as c:
        c.send("show config\nquit\n")
        raw = c.read_until_eof().decode()
    assert raw.endswith("bye\n\n")
    body = raw[:-len("bye\n\n")]
    header, _, rest = body.partition("\n")
    assert header == f"# {d.config}"
    assert rest.endswith("\n\n")
    assert rest[:-1] == config_as_served(d.config.read_text())
    assert "\n\n" not in rest[:-2], "an empty line inside the answer would end it early"


def test_quit_closes(setup):
    d = setup["d"]
    with d.client() as c:
        assert c.request("quit") == "bye\n"
        assert c.is_closed_by_peer(2)
    with d.client() as c:
        assert c.json("quit json") == {"bye": True}
        assert c.is_closed_by_peer(2)
    with d.client() as c:  # 'exit' is the same
        assert c.request("exit") == "bye\n"
        assert c.is_closed_by_peer(2)


def test_pipelined_requests_answered_in_order(setup):
    d = setup["d"]
    with d.client() as c:
        c.send("ping\nversion json\r\nshow info json\n\tping  \nshow stats sa json\n")
        assert c.read_response() == "pong\n"
        assert "version" in json.loads(c.read_response())
        assert json.loads(c.read_response())["pid"] == d.pid
        assert c.read_response() == "pong\n"
        assert list(json.loads(c.read_response())["vms"]) == ["sa"]


ERRORS = [
    ("frobnicate", "unknown-command"),
    ("", "unknown-command"),
    ("SHOW stats", "unknown-command"),
    ("show", "bad-argument"),
    ("show bogus", "bad-argument"),
    ("show stats a b", "bad-argument"),
    ("show info x", "bad-argument"),
    ("show vcpus", "bad-argument"),
    ("show vcpus nosuchvm", "no-such-vm"),
    ("show stats nosuchvm", "no-such-vm"),
    ("show metrics x", "bad-argument"),
    ("show config x", "bad-argument"),
    ("ping pong", "bad-argument"),
    ("version 2", "bad-argument"),
    ("help me", "bad-argument"),
    ("quit now", "bad-argument"),
    ("reset", "bad-argument"),
    ("reset everything", "bad-argument"),
    ("reset counters a b", "bad-argument"),
    ("reset counters nosuchvm", "no-such-vm"),
    ("pause", "bad-argument"),
    ("pause a b", "bad-argument"),
    ("pause nosuchvm", "no-such-vm"),
    ("resume", "bad-argument"),
    ("resume nosuchvm", "no-such-vm"),
    ("reload now", "bad-argument"),
]


@pytest.mark.parametrize("line,code", ERRORS, ids=[e[0] or "(empty)" for e in ERRORS])
def test_errors_text_and_json(setup, line, code):
    d = setup["d"]
    with d.client() as c:
        text = c.request(line)
        assert re.fullmatch(rf"error: {code}: [^\n]+\n", text), f"{line!r} -> {text!r}"
        j = c.json(f"{line} json".strip())
        assert set(j) == {"error"} and set(j["error"]) == {"code", "message"}, j
        assert j["error"]["code"] == code, f"{line!r} json -> {j}"
        assert j["error"]["code"] in ERROR_CODES and j["error"]["message"]
        # The connection goes on after an error.
        assert c.request("ping") == "pong\n"


def test_json_errors_for_special_requests(setup):
    d = setup["d"]
    with d.client() as c:
        assert c.json("show metrics json")["error"]["code"] == "bad-argument"
        assert c.json("show config json")["error"]["code"] == "bad-argument"
        assert c.json("json")["error"]["code"] == "unknown-command"


def test_identities_hold_in_50_snapshots_while_running(setup):
    """Each snapshot is taken under the VMs' locks: DESIGN §4's identities hold in every one, for
    every policy; the policy-independent counts agree between the primary and its shadows;
    counters never go down; totals are the sums of the VMs' primaries."""
    d = setup["d"]
    last = {}
    running_seen = 0
    with d.client() as c:
        for i in range(50):
            s = c.json("show stats json")
            for vm_id, vm in s["vms"].items():
                check_identities(vm, f"snapshot {i} {vm_id}")
                running_seen += vm["state"] == "running"
                for p, sh in vm["shadows"].items():
                    check_identities(sh, f"snapshot {i} {vm_id} shadow {p}")
                    for k in ["events", "loads", "entries", "clears", "switches", "migrations"]:
                        assert sh[k] == vm[k], f"snapshot {i} {vm_id}: {k} of {p} {sh[k]} != primary {vm[k]}"
                prev = last.get(vm_id)
                if prev:
                    for k in COUNTERS:
                        assert vm[k] >= prev[k], f"snapshot {i} {vm_id}: {k} went down {prev[k]} -> {vm[k]}"
                    assert vm["peak_mapped_pages"] >= prev["peak_mapped_pages"]
                last[vm_id] = vm
            check_identities(s["totals"], f"snapshot {i} totals")
            for k in COUNTERS + GAUGES:
                assert s["totals"][k] == sum(v[k] for v in s["vms"].values()), f"snapshot {i}: totals.{k} is not the sum"
            time.sleep(0.01)
    assert running_seen >= 100, "the simulated VMs were not running during the snapshots"
    assert last[setup["a"]]["events"] > 0
