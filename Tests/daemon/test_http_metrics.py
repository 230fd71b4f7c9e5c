"""DESIGN §7 `[daemon] metrics_listen`: `GET /metrics` over HTTP/1.1, the text of `show metrics`;
404, 405, 431 and 503 at the limits; scraped by a real Prometheus server (Debian's `prometheus`)
whose query API then gives the daemon's own value for a replayed VM that is done."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from .daemonlib import config_text, make_trace, wait_done, wait_for

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PRIMARY = "per-vm-table:8"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(module_daemon_factory, tmp_path_factory):
    """A daemon whose only workload is a strict replay that is done: every series is fixed."""
    trace = tmp_path_factory.mktemp("trace") / "h.trace"
    vms = make_trace(trace, events=6000, seed=9)
    d = module_daemon_factory(config_text(
        daemon={"metrics_listen": '"127.0.0.1:0"'},
        replays=[{"trace": str(trace), "ordering": "strict", "speed": "max", "policy": PRIMARY,
                  "shadow_policies": ["per-vcpu-lru:3", "single"]}]))
    wait_done(d, vms)
    host, port = d.json("show info json")["metrics_listen"].rsplit(":", 1)
    return {"d": d, "vms": vms, "host": host, "port": int(port)}


def connect(served, timeout=5):
    return http.client.HTTPConnection(served["host"], served["port"], timeout=timeout)


def without_uptime(text):
    return "\n".join(l for l in text.split("\n") if not l.startswith("nestcache_uptime_seconds "))


def test_get_metrics_is_show_metrics(served):
    c = connect(served)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200
    assert r.getheader("Content-Type") == CONTENT_TYPE
    assert int(r.getheader("Content-Length")) == len(body.encode())
    shown = served["d"].request("show metrics", timeout=10)
    assert without_uptime(body) == without_uptime(shown)
    assert f'nestcache_hits_total{{vm="{served["vms"][0]}",policy="{PRIMARY}"}}' in body
    # Keep-alive: a second request on the same connection, with a query string (ignored).
    c.request("GET", "/metrics?x=1")
    r = c.getresponse()
    assert r.status == 200 and without_uptime(r.read().decode()) == without_uptime(body)
    c.request("HEAD", "/metrics")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"" and int(r.getheader("Content-Length")) > 0
    c.close()


def test_other_paths_and_methods(served):
    c = connect(served)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    assert r.status == 404
    c.request("GET", "/metricsx")
    r = c.getresponse()
    r.read()
    assert r.status == 404
    c.close()
    for method in ["POST", "PUT", "DELETE", "OPTIONS"]:
        c = connect(served)
        c.request(method, "/metrics", body=b"x" * 100 if method in ("POST", "PUT") else None)
        r = c.getresponse()
        r.read()
        assert r.status == 405, method
        assert r.getheader("Allow") == "GET, HEAD"
        assert r.getheader("Connection") == "close"
        c.close()


def raw(served, data, timeout=5):
    """Sends `data`, returns everything until the daemon closes the connection."""
    with socket.create_connection((served["host"], served["port"]), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def test_oversized_head_gets_431_and_a_bad_request_400(served):
    out = raw(served, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    # Many small header lines add up the same way.
    lines = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 50) for i in range(200))
    out = raw(served, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    # A request just under the limit is served; so are pipelined requests whose sum is over it.
    small = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"c" * 7000 + b"\r\n\r\n"
    out = raw(served, small + small + b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
    assert out.count(b"HTTP/1.1 200 OK") == 3, out[:300]
    out = raw(served, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]


def test_too_many_connections_get_503(served):
    held = []
    try:
        # The other tests' connections are closed; 16 idle ones fill the server.
        for _ in range(16):
            s = socket.create_connection((served["host"], served["port"]), timeout=5)
            held.append(s)
        time.sleep(0.2)
        out = raw(served, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 503 "), out[:200]
        # The held ones are still served.
        held[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := held[0].recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in held:
            s.close()
    # Once they are gone, new connections are served again.
    wait_for(lambda: raw(served, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200"),
             5, interval=0.1, what="a free connection slot")


def test_metrics_listen_validated_and_bind_failure_exits_1(nestcached, daemon_factory, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[daemon]\nlog_level = "info"\nmetrics_listen = "example.com:80"\n')
    p = subprocess.run([str(nestcached), "--check-config", str(cfg)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 78 and f"{cfg}:3: 'metrics_listen'" in p.stderr, p.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = daemon_factory(config_text(daemon={"metrics_listen": f'"127.0.0.1:{port}"'}), start=False)
        d.start(wait=False)
        assert d.proc.wait(10) == 1


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed (scripts/setup.sh)")
def test_scraped_by_a_real_prometheus(served, tmp_path):
    vm = served["vms"][0]
    mine = served["d"].stats(vm)["vms"][vm]
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: nestcached\n"
        f"    static_configs:\n      - targets: ['{served['host']}:{served['port']}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def query(expr):
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.load(r)["data"]["result"]
        except OSError:
            assert proc.poll() is None, f"prometheus exited {proc.returncode}:\n{(tmp_path / 'prometheus.log').read_text()[-3000:]}"
            return None

    try:
        for name, key in [("nestcache_hits_total", "hits"), ("nestcache_switches_total", "switches"),
                          ("nestcache_peak_mapped_pages", "peak_mapped_pages")]:
            got = wait_for(lambda: query(f'{name}{{vm="{vm}",policy="{PRIMARY}"}}'), 60, interval=0.5,
                           what=f"Prometheus to scrape {name} of {vm}")
            assert len(got) == 1, got
            assert got[0]["metric"]["job"] == "nestcached"
            assert int(float(got[0]["value"][1])) == mine[key], (name, got, mine[key])
        shadow = wait_for(lambda: query(f'nestcache_hits_total{{vm="{vm}",policy="single"}}'), 30, interval=0.5,
                          what="a shadow's series")
        assert int(float(shadow[0]["value"][1])) == mine["shadows"]["single"]["hits"]
        up = query('up{job="nestcached"}')
        assert up and up[0]["value"][1] == "1", up
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
