"""Configuration (DESIGN §7, §9): `--check-config`, exit 78 with `FILE:LINE: message` before
binding anything, the embedded default equal to config/nestcached.toml."""
import os
import subprocess
import time

import pytest

from .daemonlib import REPO, Daemon, check_identities, config_as_served, config_text, sim_vm, wait_for

SHIPPED = REPO / "config" / "nestcached.toml"


def run(binary, *args, timeout=10):
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_check_config_of_the_shipped_file(nestcached):
    p = run(nestcached, "--check-config", SHIPPED)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{SHIPPED}: ok\n"
    assert p.stderr == ""


GOOD_HEAD = '[daemon]\nsocket_mode = "0666"\n\n'
BAD = {
    # name: (text, line, fragment of the message)
    "unknown-top-level-key": ('verbose = true\n', 1, "unknown key 'verbose'"),
    "unknown-daemon-key": (GOOD_HEAD.replace('socket_mode = "0666"\n', 'socket_mode = "0666"\nbogus_key = 3\n'), 3,
                           "unknown key 'bogus_key' in [daemon]"),
    "unknown-vm-key": (GOOD_HEAD + '[[vm]]\nid = "a"\n\n[[vm]]\nid = "b"\nl1_vcpu = 4\n', 9, "unknown key 'l1_vcpu' in [[vm]]"),
    "unknown-simulate-key": (GOOD_HEAD + '[[vm]]\nid = "a"\n[vm.simulate]\nseed = 1\nfrobs = 2\n', 8, "frobs"),
    "unknown-replay-key": (GOOD_HEAD + '[[replay]]\ntrace = "/etc/hostname"\norder = "strict"\n', 6, "unknown key 'order'"),
    "max-clients-zero": ('[daemon]\n\n\nmax_clients = 0\n', 4, "'max_clients' must be an integer"),
    "bad-socket-mode": ('[daemon]\nsocket_mode = "999"\n', 2, "socket_mode"),
    "bad-log-level": ('[daemon]\nlog_level = "loud"\n', 2, "log_level"),
    "bad-policy": ('[defaults]\npolicy = "per-vm-table:0"\n', 2, "policy"),
    "bad-shadow": ('[defaults]\nshadow_policies = ["lru"]\n', 2, "shadow_policies"),
    "duplicate-vm": ('[[vm]]\nid = "a"\n[[vm]]\nid = "a"\n', 4, "duplicate VM id 'a'"),
    "bad-vm-id": ('[[vm]]\nid = "a b"\n', 2, "'id' must match"),
    "missing-trace": ('[[replay]]\ntrace = "/nonexistent/x.trace"\n', 2, "cannot read '/nonexistent/x.trace'"),
    "bad-speed": ('[[replay]]\ntrace = "/etc/hostname"\nspeed = "fast"\n', 3, "'speed'"),
    "bad-ordering": ('[[replay]]\ntrace = "/etc/hostname"\nordering = "random"\n', 3, "'ordering'"),
    "toml-syntax": ('[daemon]\nmax_clients = \n', 2, "TOML"),
    "relative-socket": ('[daemon]\nsocket = "x.sock"\n', 2, "absolute path"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_config_exit_78_with_line(nestcached, tmp_path, name):
    text, line, fragment = BAD[name]
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(text)
    p = run(nestcached, "--check-config", cfg)
    assert p.returncode == 78, f"exit {p.returncode}\n{p.stdout}{p.stderr}"
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1, p.stderr
    assert f"{cfg}:{line}: " in p.stderr, p.stderr
    assert fragment in p.stderr, p.stderr


@pytest.mark.parametrize("name", ["unknown-daemon-key", "unknown-vm-key", "missing-trace"])
def test_starting_with_a_bad_config_exits_78_before_binding(nestcached, tmp_path, name):
    text, line, fragment = BAD[name]
    d = Daemon(nestcached, tmp_path, text=text)
    try:
        d.start(wait=False)
        try:
            code = d.proc.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail("nestcached kept running with a bad configuration")
        assert code == 78, d.stderr()
        assert f"{d.config}:{line}: " in d.stderr() and fragment in d.stderr()
        assert not d.socket.exists(), "the socket was created"
        assert os.listdir(d.sockdir) == []
    finally:
        d.cleanup()


def test_a_bad_config_file_is_found_before_anything(nestcached, tmp_path):
    p = run(nestcached, "--check-config", tmp_path / "missing.toml")
    assert p.returncode == 78 and "cannot read" in p.stderr
    p = run(nestcached, "--config", tmp_path / "missing.toml", "--socket", tmp_path / "s")
    assert p.returncode == 78 and "cannot read" in p.stderr
    assert not (tmp_path / "s").exists()


def test_usage_errors_exit_64(nestcached):
    p = run(nestcached, "--no-such-option")
    assert p.returncode == 64, (p.returncode, p.stderr)
    p = run(nestcached, "--help")
    assert p.returncode == 0 and "--check-config" in p.stdout and "--socket" in p.stdout


def test_embedded_default_is_the_shipped_file(daemon_factory):
    """Without --config: the shipped example's three VMs; `show config` gives its text exactly."""
    d = daemon_factory(start=False, args=None, text="")
    d.args = ["--socket", str(d.socket)]
    d.start()
    info = d.json("show info json")
    assert info["config"] == "(embedded default)"
    assert info["socket"] == str(d.socket)
    assert oct(os.stat(d.socket).st_mode & 0o777) == oct(0o660)
    with d.client() as c:
        c.send("show config\nquit\n")
        raw = c.read_until_eof().decode()
    assert raw.endswith("bye\n\n")
    header, _, body = raw[:-len("bye\n\n")].partition("\n")
    assert header == "# (embedded default)"
    assert body[:-1] == config_as_served(SHIPPED.read_text()), "the embedded default differs from config/nestcached.toml"
    assert "\n\n" not in body[:-2], "an empty line inside the answer would end it early"
    s = wait_for(lambda: (lambda s: s if len(s["vms"]) == 3 else None)(d.stats()), 5, what="the 3 VMs")
    assert sorted(s["vms"]) == ["cloud", "microvm", "thrash"]
    assert {v["policy"] for v in s["vms"].values()} == {"per-vm-table:8"}
    assert list(s["vms"]["cloud"]["shadows"]) == ["per-vcpu-lru:3", "single", "map-per-entry"]
    assert list(s["vms"]["thrash"]["shadows"]) == ["per-vcpu-lru:8", "single", "map-per-entry"]
    assert [s["vms"][v]["l1_vcpus"] for v in ["microvm", "cloud", "thrash"]] == [8, 16, 4]
    for vm, v in s["vms"].items():
        assert v["state"] == "running"
        check_identities(v, vm)
        # exposure from memory_mib
        mib = {"microvm": 32768, "cloud": 65536, "thrash": 8192}[vm]
        assert v["exposure"] == pytest.approx(v["peak_mapped_pages"] * 4096 / (mib << 20), abs=1e-6)


def test_socket_mode_and_directory(daemon_factory, tmp_path):
    """socket_mode applies to the socket; a missing directory of the socket is created."""
    d = daemon_factory(config_text(vms=[sim_vm("sm")], daemon={"socket_mode": '"0600"'}), start=False)
    d.socket = d.sockdir / "sub" / "dir" / "sock"
    d.args = ["--config", str(d.config), "--socket", str(d.socket)]
    d.start()
    assert oct(os.stat(d.socket).st_mode & 0o777) == oct(0o600)
    # A second daemon on the same socket refuses to take it over.
    p = subprocess.run([str(d.binary), "--config", str(d.config), "--socket", str(d.socket)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert d.request("ping") == "pong\n"
