"""DESIGN §8/§11: `show bounds VM [json]` gives, for the VM's stream so far, the per-VM object of
`nestcache bounds --json` (exactly), from a window of its most recent switches."""
import json
import pathlib
import subprocess

from .daemonlib import make_trace, wait_done

MEMBERS = ["switches", "l1_vcpus", "lru_hits", "opt_vcpu_hits", "opt_vm_hits"]


def cli_bounds(nestcache, trace):
    proc = subprocess.run([str(nestcache), "bounds", str(trace), "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"nestcache bounds: exit {proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout)["vms"]


def strict_replay(daemon_factory, trace, window=1 << 20):
    d = daemon_factory(daemon={"bounds_window": str(window)},
                       replays=[{"trace": str(trace), "format": "native", "speed": "max",
                                 "ordering": "strict", "policy": "per-vm-table:2"}])
    return d


def test_show_bounds_equals_nestcache_bounds(daemon_factory, nestcache, tmp_path):
    trace = tmp_path / "b.trace"
    vms = make_trace(trace, events=20000, seed=11)
    d = strict_replay(daemon_factory, trace)
    wait_done(d, vms)
    expected = cli_bounds(nestcache, trace)
    for vm in vms:
        got = d.json(f"show bounds {vm} json")
        assert got["vm"] == vm
        assert {k: got[k] for k in MEMBERS} == expected[vm], vm
        assert len(got["lru_hits"]) == 17 and list(got["opt_vm_hits"]) == ["1", "2", "4", "8", "16"]
        assert got["truncated"] is False and got["window_start"] == 0
        assert got["stream_switches"] == got["switches"] and got["window"] == 1 << 20
        # The text form: the window, then `nestcache bounds`'s tables for the VM.
        text = d.request(f"show bounds {vm}")
        assert text.startswith(f"window: all {got['switches']} switches"), text
        assert f"vm {vm}: {got['switches']} switches, M = {got['l1_vcpus']} L1 vCPU" in text
        assert "LRU hits" in text and "OPT-VM hit ratio" in text
        assert not text.startswith("error")
    # The command line asks the same.
    proc = subprocess.run([str(nestcache), "show", "bounds", vms[0], "--json", "--socket", str(d.socket)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert {k: json.loads(proc.stdout)[k] for k in MEMBERS} == expected[vms[0]]


def test_show_bounds_errors(daemon_factory, tmp_path):
    trace = tmp_path / "e.trace"
    vms = make_trace(trace, events=2000, seed=3)
    d = strict_replay(daemon_factory, trace)
    wait_done(d, vms)
    assert d.request("show bounds nosuch").startswith("error: no-such-vm: ")
    assert d.json("show bounds nosuch json")["error"]["code"] == "no-such-vm"
    answer = d.request("show bounds")
    assert answer.startswith("error: bad-argument: ") and "show bounds VM" in answer
    assert d.json("show bounds json")["error"]["code"] == "bad-argument"
    assert d.request("show bounds a b").startswith("error: bad-argument: ")
    assert "show bounds VM" in d.request("help")
    # Answers keep their order around a computed one, on one connection.
    with d.client() as c:
        c.send(b"ping\nshow bounds sa json\nping\n")
        assert c.read_response().strip() == "pong"
        assert json.loads(c.read_response())["vm"] == "sa"
        assert c.read_response().strip() == "pong"


def switch_sequences(trace):
    """Per VM: its switches (vcpu, gpa) in order, as DESIGN §11 defines them."""
    current, seqs = {}, {}
    for line in pathlib.Path(trace).read_text().splitlines():
        if line.startswith("#"):
            continue
        _, vm, v, op, g = line.split()
        key = (vm, int(v))
        if op == "clear":
            if current.get(key) == g:
                del current[key]
        elif current.get(key) != g:
            current[key] = g
            seqs.setdefault(vm, []).append((int(v), g))
    return seqs


def test_window_bounds_the_switches_considered(daemon_factory, nestcache, tmp_path):
    """With `bounds_window = 500` only the last
    500 switches count: the answer is `nestcache bounds` of a trace made of exactly those."""
    window = 500
    trace = tmp_path / "w.trace"
    vms = make_trace(trace, events=20000, seed=5)
    d = strict_replay(daemon_factory, trace, window=window)
    wait_done(d, vms)
    full = cli_bounds(nestcache, trace)
    seqs = switch_sequences(trace)
    for vm in vms:
        got = d.json(f"show bounds {vm} json")
        total = full[vm]["switches"]
        assert total == len(seqs[vm]) > window
        assert (got["window"], got["switches"], got["stream_switches"], got["truncated"], got["window_start"]) == \
            (window, window, total, True, total - window)
        # The window as a trace of its own: each switch a load (after a clear when the vCPU's
        # current control block is that GPA already), M declared as the whole stream's.
        lines = ["# nestcache-trace v1", f"# vm {vm} l1_vcpus={full[vm]['l1_vcpus']}"]
        cur = {}
        for v, g in seqs[vm][-window:]:
            if cur.get(v) == g:
                lines.append(f"1 {vm} {v} clear {g}")
            cur[v] = g
            lines.append(f"1 {vm} {v} load {g}")
        part = tmp_path / f"w-{vm}.trace"
        part.write_text("\n".join(lines) + "\n")
        assert {k: got[k] for k in MEMBERS} == cli_bounds(nestcache, part)[vm], vm
        assert d.request(f"show bounds {vm}").startswith(f"window: the last {window} of {total} switches")


def test_bounds_window_zero_records_nothing(daemon_factory, tmp_path):
    trace = tmp_path / "z.trace"
    vms = make_trace(trace, events=2000, seed=3)
    d = strict_replay(daemon_factory, trace, window=0)
    wait_done(d, vms)
    answer = d.request(f"show bounds {vms[0]}")
    assert answer.startswith("error: bad-argument: show bounds: switches are not recorded (bounds_window = 0"), answer
