"""`show metrics` (DESIGN §8): Prometheus text format 0.0.4, checked with prometheus_client's
parser and, where installed, `promtool check metrics`."""
import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .daemonlib import (COUNTERS, GAUGES, config_text, make_trace, sim_vm, unique, wait_done,
                       wait_events)


@pytest.fixture(scope="module")
def setup(module_daemon_factory, tmp_path_factory):
    trace = tmp_path_factory.mktemp("trace") / "m.trace"
    replay_vms = make_trace(trace, events=4000, seed=3)
    a = unique("ma")
    # A VM id with every character DESIGN §1 allows outside [A-Za-z0-9].
    b = "m_b.2:x-" + unique("")[:6]
    d = module_daemon_factory(config_text(
        vms=[sim_vm(a, l1_vcpus=3), sim_vm(b, l1_vcpus=2, shadow_policies=["single"])],
        replays=[{"trace": str(trace), "ordering": "strict", "speed": "max"}]))
    wait_done(d, replay_vms)
    wait_events(d, a, 100)
    wait_events(d, b, 100)
    return {"d": d, "a": a, "b": b, "replay": replay_vms}


def scrape(d):
    text = d.request("show metrics", timeout=10)
    return text


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_and_describe_every_family(setup):
    text = scrape(setup["d"])
    fams = families(text)
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    sample_names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    # HELP and TYPE for every series name, once, before its samples.
    for name in sample_names:
        assert name in helps and helps[name].strip(), f"{name}: no HELP"
        assert name in types, f"{name}: no TYPE"
    assert len(re.findall(r"^# TYPE ", text, re.M)) == len(types), "a family is declared twice"
    for name, t in types.items():
        assert t in {"counter", "gauge"}, f"{name}: TYPE {t}"
        if t == "counter":
            assert name.endswith("_total"), f"counter {name} without _total"
        else:
            assert not name.endswith("_total"), f"gauge {name} ends in _total"
    # DESIGN §4: every counter as nestcache_NAME_total, every gauge as nestcache_NAME.
    for c in COUNTERS:
        assert types.get(f"nestcache_{c}_total") == "counter", f"nestcache_{c}_total"
        assert f"nestcache_{c}" in fams  # the client strips _total from counter families
    for g in GAUGES:
        assert types.get(f"nestcache_{g}") == "gauge", f"nestcache_{g}"
    # Every line is well-formed 0.0.4 (the parser would raise otherwise); no empty line inside.
    assert "\n\n" not in text.rstrip("\n")


def test_metrics_labels(setup):
    d, a, b = setup["d"], setup["a"], setup["b"]
    fams = families(scrape(d))
    vms = {a, b, *setup["replay"]}
    for fam in fams.values():
        for s in fam.samples:
            if fam.name in ("nestcache_build_info", "nestcache_uptime_seconds"):
                continue
            assert {"vm", "policy"} <= set(s.labels), f"{s.name} lacks vm/policy: {s.labels}"
            assert s.labels["vm"] in vms, s
            if "_vcpu_" in s.name:
                assert "vcpu" in s.labels and s.labels["vcpu"].isdigit(), s
                assert s.labels["policy"] == "per-vm-table:8"
            else:
                assert "vcpu" not in s.labels, s
            assert s.value >= 0 and s.value == s.value, s
    events = {(s.labels["vm"], s.labels["policy"]) for s in fams["nestcache_events"].samples}
    assert (b, "single") in events and (b, "per-vm-table:8") in events
    assert (a, "per-vcpu-lru:3") in events and (a, "map-per-entry") in events
    assert {s.labels["vm"] for s in fams["nestcache_vcpu_hits"].samples} == vms


def test_metrics_match_stats_of_finished_vms(setup):
    """For VMs that are done, every series equals `show stats json`."""
    d = setup["d"]
    stats = d.stats()["vms"]
    fams = families(scrape(d))
    for vm in setup["replay"]:
        s = stats[vm]
        per_policy = {s["policy"]: s, **s["shadows"]}
        for c in COUNTERS:
            got = {x.labels["policy"]: x.value for x in fams[f"nestcache_{c}"].samples if x.labels["vm"] == vm}
            assert got == {p: v[c] for p, v in per_policy.items()}, f"{vm} {c}"
        for g in GAUGES:
            got = {x.labels["policy"]: x.value for x in fams[f"nestcache_{g}"].samples if x.labels["vm"] == vm}
            assert got == {p: v[g] for p, v in per_policy.items()}, f"{vm} {g}"
        ratio = {x.labels["policy"]: x.value for x in fams["nestcache_hit_ratio"].samples if x.labels["vm"] == vm}
        for p, v in per_policy.items():
            assert ratio.get(p) == pytest.approx(v["hit_ratio"], abs=1e-6), f"{vm} {p} hit_ratio"
        vcpu = d.json(f"show vcpus {vm} json")["vcpus"]
        hits = {x.labels["vcpu"]: x.value for x in fams["nestcache_vcpu_hits"].samples if x.labels["vm"] == vm}
        assert hits == {k: v["hits"] for k, v in vcpu.items() if v["events"] > 0}


def test_metrics_order_is_stable(setup):
    d = setup["d"]

    def keys(text):
        return [re.sub(r" [^ ]+$", "", line) for line in text.splitlines() if line]

    first, second = keys(scrape(d)), keys(scrape(d))
    # Values change between scrapes (the engine runs); names, labels and order do not. (A
    # per-vCPU series appears with the vCPU's first event: compare the common series only.)
    common = set(first) & set(second)
    assert [k for k in first if k in common] == [k for k in second if k in common]
    assert {k for k in first if "_vcpu_" not in k} == {k for k in second if "_vcpu_" not in k}
    assert len(first) == len(set(first)), "a series appears twice"


def test_promtool_check_metrics(setup):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed (the Debian prometheus package provides it)")
    text = scrape(setup["d"])
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"promtool check metrics: {proc.returncode}\n{proc.stdout}{proc.stderr}"


def test_textfile_for_node_exporter(daemon_factory, tmp_path):
    """DESIGN §7 `textfile`: the metrics are written to a .prom file by atomic rename, readable by
    another user (node_exporter) whatever the daemon's umask, and parse as the same format."""
    from .daemonlib import wait_for
    prom = tmp_path / "collector" / "nestcache.prom"
    prom.parent.mkdir()
    a = unique("tf")
    d = daemon_factory(config_text(vms=[sim_vm(a)], daemon={"summary_interval_s": "1", "textfile": f'"{prom}"'}))
    wait_for(lambda: prom.exists(), 5, what="the textfile")
    assert prom.stat().st_mode & 0o777 == 0o644
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    events = [s for s in families["nestcache_events"].samples if s.labels.get("vm") == a]
    assert events and all(s.value > 0 for s in events)
    assert [p.name for p in prom.parent.iterdir()] == ["nestcache.prom"], "a temporary file was left behind"
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=prom.read_text(), capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    d.stop()
