"""DESIGN §7: a `[[replay]]` with `ordering = "strict"` gives exactly the counters of
`nestcache replay`, for the primary policy and every shadow, per VM."""
import json
import subprocess

import pytest

from .daemonlib import COUNTERS, GAUGES, check_identities, config_text, make_trace, wait_for

PRIMARY = "per-vm-table:8"
SHADOWS = ["per-vm-table:1", "per-vcpu-lru:3", "per-vcpu-lru:1", "single", "map-per-entry"]


def replay(nestcache, trace, policy):
    proc = subprocess.run([str(nestcache), "replay", str(trace), "--policy", policy, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"nestcache replay --policy {policy}: exit {proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("speed", ["max", "1000000"])
def test_strict_replay_equals_nestcache_replay(daemon_factory, nestcache, tmp_path, speed):
    trace = tmp_path / "strict.trace"
    vms = make_trace(trace, events=20000, seed=5)
    d = daemon_factory(replays=[{
        "trace": str(trace), "format": "native", "speed": speed, "ordering": "strict",
        "policy": PRIMARY, "shadow_policies": SHADOWS}])
    wait_for(lambda: (lambda s: sorted(s["vms"]) == vms and all(v["state"] == "done" for v in s["vms"].values()))(d.stats()),
             20, interval=0.1, what="every replayed VM to be done")
    got = d.stats()
    expected = {p: replay(nestcache, trace, p) for p in [PRIMARY, *SHADOWS]}
    assert expected[PRIMARY]["totals"]["events"] == 20000
    mismatches = []
    for vm in vms:
        daemon_vm = got["vms"][vm]
        assert daemon_vm["policy"] == PRIMARY
        assert list(daemon_vm["shadows"]) == SHADOWS
        for p in [PRIMARY, *SHADOWS]:
            mine = daemon_vm if p == PRIMARY else daemon_vm["shadows"][p]
            check_identities(mine, f"{vm} {p}")
            theirs = expected[p]["vms"][vm]
            for k in COUNTERS + GAUGES:
                if mine[k] != theirs[k]:
                    mismatches.append(f"{vm} {p} {k}: daemon {mine[k]} != replay {theirs[k]}")
            for k in ["hit_ratio", "exposure"]:
                if (mine[k] is None) != (theirs[k] is None) or (mine[k] is not None and abs(mine[k] - theirs[k]) > 1e-6):
                    mismatches.append(f"{vm} {p} {k}: daemon {mine[k]} != replay {theirs[k]}")
    assert not mismatches, "\n".join(mismatches)
    # The totals of the daemon sum the primaries: those of `nestcache replay --policy PRIMARY`.
    for k in COUNTERS + GAUGES:
        assert got["totals"][k] == expected[PRIMARY]["totals"][k], k
    # Done VMs stay, unchanged (DESIGN §7).
    again = d.stats()
    assert {v: again["vms"][v]["events"] for v in vms} == {v: got["vms"][v]["events"] for v in vms}
