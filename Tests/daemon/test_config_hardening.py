"""Issue 8: no configuration bytes can kill nestcached. At start and at `--check-config` any input
ends in exit 0 or 78 with `FILE:LINE: message`, never a signal; at reload a bad file is refused and
the running configuration, with its counters, stays in force. `log_level` follows reloads."""
import random
import signal
import subprocess

import pytest

from .daemonlib import REPO, config_text, journal_entries, sim_vm, unique, wait_events, wait_for

SHIPPED = (REPO / "config" / "nestcached.toml").read_bytes()

# Each of these once aborted the process (toml++ assertion) or is a classic parser killer.
NASTY = {
    "leading-dot-header": b'[.vm]]\nid = "a"\n',
    "empty-header": b"[]\n",
    "unclosed-array-table": b'[[vm]\nid = "a"\n',
    "deep-array": b"a = " + b"[" * 50000,
    "deep-inline-table": b"a = " + b"{b=" * 50000,
    "long-dotted-key": b".".join([b"k"] * 20000) + b" = 1\n",
    "invalid-utf8": b'[daemon]\nsocket = "/tmp/\xff\xfe"\n',
    "nul-byte": b"[daemon]\x00\n",
    "lone-cr": b"[daemon]\rlog_level = 'info'\n",
    "unterminated-multiline": b'[daemon]\nsocket = """\n/tmp/x\n',
    "redefined-table": b"[daemon]\n[daemon]\n",
    "huge-integer": b"[daemon]\nmax_clients = 99999999999999999999999\n",
}


def check_config(binary, path):
    return subprocess.run([str(binary), "--check-config", str(path)], capture_output=True, timeout=20,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", sorted(NASTY))
def test_nasty_configs_exit_78_with_file_and_line(nestcached, tmp_path, name):
    cfg = tmp_path / f"{name}.toml"
    cfg.write_bytes(NASTY[name])
    p = check_config(nestcached, cfg)
    assert p.returncode == 78, f"exit {p.returncode} (negative: killed by a signal)\n{p.stderr!r}"
    err = p.stderr.decode()
    assert err.startswith(f"nestcached: {cfg}:") and err.count("\n") == 1, err
    line = int(err[len(f"nestcached: {cfg}:"):].split(":", 1)[0])
    assert 1 <= line <= NASTY[name].count(b"\n") + 1, err


def mutate(data, rng):
    data = bytearray(data)
    specials = b'[]{}"\'=.#,\\\n\r\t 0x_+-:' + bytes([0, 0x7F, 0xFF, 0xC3])
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        op = rng.randrange(4)
        if op == 0 and at < len(data):
            data[at] = rng.choice(specials)
        elif op == 1:
            data[at:at] = bytes([rng.choice(specials)])
        elif op == 2 and at < len(data):
            del data[at]
        else:
            src = rng.randrange(len(data))
            data[at:at] = data[src:src + rng.randrange(40)]
    return bytes(data)


def test_mutated_shipped_config_never_kills_check_config(nestcached, tmp_path):
    """300 seeded mutations of the shipped file through the real binary: 0 or 78, never a signal."""
    rng = random.Random(0x6E63)
    outcomes = {0: 0, 78: 0}
    for i in range(300):
        cfg = tmp_path / "m.toml"
        data = mutate(SHIPPED, rng)
        cfg.write_bytes(data)
        p = check_config(nestcached, cfg)
        assert p.returncode in outcomes, f"mutation {i} (seed 0x6E63): exit {p.returncode}\n{data!r}\n{p.stderr!r}"
        outcomes[p.returncode] += 1
        if p.returncode == 78:
            assert p.stderr.decode(errors="replace").startswith(f"nestcached: {cfg}:"), p.stderr
    assert outcomes[78] > 100, outcomes


def test_start_with_the_abort_typo_exits_78(daemon_factory):
    d = daemon_factory(start=False, text="")
    d.config.write_bytes(NASTY["leading-dot-header"])
    d.start(wait=False)
    assert d.proc.wait(10) == 78, d.stderr()
    assert f"{d.config}:1: TOML syntax: expected a key" in d.stderr()
    assert not d.socket.exists()


def test_reload_with_the_abort_typo_keeps_serving(daemon_factory):
    """SIGHUP and `reload` with a file that aborted the daemon before: refused, logged, named by
    `show info`; the VM goes on counting from where it was."""
    vm = unique("hard")
    good = config_text(vms=[sim_vm(vm)])
    d = daemon_factory(good)
    wait_events(d, vm, 500)
    for reloads, name in enumerate(["leading-dot-header", "deep-array", "invalid-utf8", "redefined-table"]):
        before = d.stats(vm)["vms"][vm]["events"]
        d.config.write_bytes(NASTY[name])
        d.signal(signal.SIGHUP)
        info = wait_for(lambda: (lambda i: i if i["last_reload_error"] else None)(d.json("show info json")), 5,
                        what=f"last_reload_error after SIGHUP with {name}")
        assert info["last_reload_error"].startswith(f"{d.config}:"), info
        assert info["reloads"] == reloads, info  # the good reloads in between, not the refused ones
        text = d.request("reload")
        assert text.startswith("error: bad-argument: reload failed") and str(d.config) in text, text
        assert d.alive(), d.stderr()
        wait_for(lambda: d.stats(vm)["vms"][vm]["events"] > before, 5, what=f"{vm} to go on after {name}")
        # Back to the good file: the next reload clears the error and keeps the VM's counters.
        d.config.write_text(good)
        assert d.request("reload").startswith("ok: reloaded: 1 workloads kept")
        assert d.json("show info json")["last_reload_error"] is None
    assert d.stats(vm)["vms"][vm]["events"] >= before


def test_log_level_follows_reload(daemon_factory, journald):
    """At `error`, a VM's start (info) is not logged; after a reload to `info` it is; back at
    `warning`, it is not again."""
    a, b, c = unique("lla"), unique("llb"), unique("llc")

    def text(level, *vms):
        return config_text(vms=[sim_vm(v) for v in vms], daemon={"log_level": f'"{level}"'})

    d = daemon_factory(text("error", a))
    d.config.write_text(text("info", a, b))
    assert d.request("reload").startswith("ok: reloaded: 1 workloads kept, 1 started")
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=vm-start", timeout=5,
                           until=lambda r: any(x.get("NESTCACHE_VM") == b for x in r))
    assert {r.get("NESTCACHE_VM") for r in recs} == {b}, recs
    d.config.write_text(text("warning", a, b, c))
    assert d.request("reload").startswith("ok: reloaded: 2 workloads kept, 1 started")
    wait_events(d, c, 100)
    recs = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=vm-start", timeout=1)
    assert {r.get("NESTCACHE_VM") for r in recs} == {b}, recs
    notices = journal_entries(f"_PID={d.pid}", "NESTCACHE_EVENT=reload", timeout=5,
                              until=lambda r: any("log_level error -> info" in x["MESSAGE"] for x in r))
    assert any("log_level error -> info" in x["MESSAGE"] for x in notices), notices
