"""End-to-end checks of `nestcache report` (DESIGN §11): exit codes, 72 columns, every number of
the text present in the JSON, the selftest lines against the selftest's own assertions, and the
HTML page: self-contained, and rendered by a real headless Chromium with its four SVG charts."""
import json
import math
import re
import shutil
import subprocess

import pytest

from conftest import REPO, run

SAMPLE = REPO / "samples" / "web0.trace"
SMALL = ["--preset", "microvm-dense", "--set", "events=60000", "--jobs", "2"]


def report(binary, *args, code=0):
    proc = run(binary, "report", *args)
    assert proc.returncode == code, f"report {args} exited {proc.returncode}\nstderr:\n{proc.stderr}"
    return proc


# --- exit codes ---------------------------------------------------------------------------------

def test_exit_codes(nestcache, tmp_path):
    report(nestcache, code=64)                                          # no input
    report(nestcache, "--preset", "nope", code=64)                      # unknown preset
    report(nestcache, SAMPLE, "--preset", "thrash", code=64)            # both
    report(nestcache, "--simulate", "l1_vcpus=2", "--selftest", code=64)
    report(nestcache, SAMPLE, "--selftest", code=64)
    report(nestcache, "--preset", "selftest-sched", "--selftest", "--json", code=64)
    report(nestcache, tmp_path / "missing.trace", code=66)
    bad = tmp_path / "bad.trace"
    bad.write_text("# nestcache-trace v1\n1 vm0 0 load 0x1001\n")      # unaligned GPA
    proc = report(nestcache, bad, code=65)
    assert f"{bad}:2:" in proc.stderr
    report(nestcache, "--preset", "selftest-sched", code=0)


# --- text ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [SMALL, ["--preset", "selftest-migrate"], [str(SAMPLE)]],
                         ids=["microvm", "selftest", "trace"])
def test_text_is_72_columns_with_four_sections(nestcache, args):
    out = report(nestcache, *args).stdout
    wide = [line for line in out.splitlines() if len(line) > 72]
    assert not wide, "lines over 72 columns:\n" + "\n".join(wide)
    for title in ("1. Gain isolated from the switch to persistent mappings",
                  "2. Per-VM table vs per-vCPU LRU, with both optima",
                  "3. Direct-map exposure as the L2:L1 ratio grows",
                  "4. Break-even map+unmap cost"):
        assert title in out
    assert out.count("reading: ") == 4
    assert out.count("100% |") == 2 and out.count(" 50% |") == 2  # the two ASCII charts


# --- every number of the text is in the JSON ---------------------------------------------------

# A number standing alone: not part of a name (per-vcpu-lru:3, L2:L1, 1k, key=value, web0).
NUMBER = re.compile(r"(?<![\w:.=/-])(\d+(?:\.\d+)?)(?![\w:.]*[A-Za-z_:=])")


def json_numbers(value, out):
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.append(float(value))
    elif isinstance(value, list):
        for v in value:
            json_numbers(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            json_numbers(v, out)
    return out


def shown(token, values):
    """True if `token` (as printed, to its decimals) is some JSON number, or one as a percentage."""
    decimals = len(token.split(".")[1]) if "." in token else 0
    t = float(token)
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(v - t) <= tolerance or abs(v * 100 - t) <= tolerance for v in values)


@pytest.mark.parametrize("args", [SMALL, ["--preset", "selftest-sched"], [str(SAMPLE)]],
                         ids=["microvm", "selftest", "trace"])
def test_json_has_every_number_of_the_text(nestcache, args):
    text = report(nestcache, *args).stdout
    proc = report(nestcache, *args, "--json")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, "expected one line of JSON"
    data = json.loads(lines[0])
    values = json_numbers(data, [])
    missing = []
    in_input = False
    for line in text.splitlines():
        # The input's own spelling (and its continuation lines) is the JSON's "input" string.
        in_input = line.startswith("input: ") or (in_input and line.startswith("  "))
        if in_input:
            continue
        for m in NUMBER.finditer(line):
            if not shown(m.group(1), values):
                missing.append(f"{m.group(1)!r} in: {line}")
    assert not missing, "numbers of the text not in the JSON:\n" + "\n".join(missing)
    # Named fields, one per section; readings carry their text.
    for section in ("isolation", "sharing", "exposure", "break_even"):
        assert data[section]["reading"]["text"] in " ".join(text.split()), section
    assert len(data["sharing"]["lru_hits"]) == len(data["sharing"]["opt_vcpu_hits"]) == 17
    assert [p["policy"] for p in data["isolation"]["policies"]] == [
        "map-per-entry", "single", "per-vcpu-lru:3", "per-vcpu-lru:7", "per-vm-table:8"]


def test_json_agrees_with_bounds_and_compare(nestcache):
    """The report's curves are `nestcache bounds`' and its table rows `compare`'s."""
    args = ["--preset", "cloud-mixed", "--set", "events=40000"]
    data = json.loads(report(nestcache, *args, "--json").stdout)
    bounds = json.loads(run(nestcache, "bounds", *args, "--json").stdout)["vms"]["cloud"]
    assert data["sharing"]["lru_hits"] == bounds["lru_hits"]
    assert data["sharing"]["opt_vcpu_hits"] == bounds["opt_vcpu_hits"]
    assert {str(r): h for r, h in zip(data["sharing"]["ratios"], data["sharing"]["opt_vm_hits"])} == bounds["opt_vm_hits"]
    compare = json.loads(run(nestcache, "compare", *args, "--output", "json").stdout)["policies"]
    for mine, theirs in zip(data["isolation"]["policies"], compare):
        assert mine["policy"] == theirs["policy"]
        assert mine["switches"] == theirs["switches"]
        assert mine["hit_ratio"] == theirs["hit_ratio"]
        assert mine["peak_mapped_pages"] == theirs["peak_mapped_pages"]
    # Break-even recomputed from the counters (DESIGN §11 as defined in BreakEven.swift).
    rows = {p["policy"]: p for p in data["isolation"]["policies"]}
    a = 300 / 500

    def line(p):
        lookups = 0 if p["policy"] == "map-per-entry" else p["switches"]
        return ((a * p["map_pages"] + (1 - a) * p["unmap_pages"]) / p["entries"], lookups * 20 / p["entries"])

    wb, lb = line(rows["single"])
    wp, lp = line(rows["per-vm-table:8"])
    expected = (lp - lb + 0.01 * lb) / (wb - wp - 0.01 * wb)
    got = next(r for r in data["break_even"]["rows"] if r["policy"] == "per-vm-table:8")
    assert math.isclose(got["break_even_over_single_ns"], max(0.0, expected), rel_tol=1e-5, abs_tol=1e-6)


# --- --selftest ----------------------------------------------------------------------------------

def selftest_expected(mode, n, s):
    """vmx_l2_switch_test's check_stats(), KVM_NESTED_OVERSUB_RATIO = 8."""
    if n <= 8:
        return n * (s - 1), 0
    return (8 * (s - 1), 0) if mode == "sched" else (0, n * s - 8)


LINE = re.compile(r"^vmx_l2_switch_test (\d+) switches with (\d+) L2 vCPUS \(vmx (migrate|sched)\) "
                  r"reuse (\d+) recycle (\d+)$")


def test_selftest_default_matrix(nestcache):
    lines = report(nestcache, "--selftest").stdout.splitlines()
    want = [(mode, n) for mode in ("migrate", "sched") for n in range(2, 17)]
    assert len(lines) == len(want)
    for line, (mode, n) in zip(lines, want):
        m = LINE.match(line)
        assert m, line
        assert (int(m[1]), int(m[2]), m[3]) == (4, n, mode)
        assert (int(m[4]), int(m[5])) == selftest_expected(mode, n, 4), line


@pytest.mark.parametrize("mode,n,s", [("sched", 12, 4), ("migrate", 12, 4), ("migrate", 5, 7), ("sched", 9, 2)])
def test_selftest_preset_with_settings(nestcache, mode, n, s):
    out = report(nestcache, "--preset", f"selftest-{mode}", "--set", f"n={n}", "--set", f"s={s}",
                 "--selftest").stdout.splitlines()
    assert len(out) == 1
    m = LINE.match(out[0])
    assert m and (int(m[1]), int(m[2]), m[3]) == (s, n, mode)
    assert (int(m[4]), int(m[5])) == selftest_expected(mode, n, s)


# --- HTML ---------------------------------------------------------------------------------------

def test_html_is_self_contained(nestcache, tmp_path):
    page = tmp_path / "r.html"
    svgs = tmp_path / "svg"
    report(nestcache, *SMALL, "--html", page, "--svg-dir", svgs)
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 4
    assert not re.search(r"https?://", html), "the page names a URL"
    for tag in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert tag not in html.lower(), tag
    assert "prefers-color-scheme: dark" in html
    for label in ("hit ratio", "K (per-vcpu-lru:K", "R (contexts per L1 vCPU", "c: ns to map one page",
                  "L2 vCPUs per L1 vCPU"):
        assert label in html, label
    files = sorted(p.name for p in svgs.iterdir())
    assert files == sorted(["hit-ratio-vs-k.svg", "hit-ratio-vs-r.svg", "overhead-vs-map-cost.svg",
                            "exposure-vs-ratio.svg"])
    for p in svgs.iterdir():
        assert p.read_text().startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    report(nestcache, *SMALL, "--html", tmp_path / "no-such-dir" / "r.html", code=1)


def chromium_or_skip():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH: install the Debian package `chromium` (scripts/setup.sh does, as root)")


def test_html_renders_in_headless_chromium(nestcache, tmp_path):
    browser = chromium_or_skip()
    page = tmp_path / "r.html"
    report(nestcache, *SMALL, "--html", page)
    # No network: a private network namespace where possible, and a proxy that goes nowhere.
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
           "--user-data-dir=" + str(tmp_path / "profile"), "--dump-dom", page.as_uri()]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        cmd = [unshare, "-n"] + cmd
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"chromium could not run here: {e}")
    if proc.returncode != 0 and not proc.stdout:
        pytest.skip(f"chromium could not run here (exit {proc.returncode}): {proc.stderr[-500:]}")
    dom = proc.stdout
    assert dom.count("<svg") == 4, dom[:2000]
    assert dom.count("<polyline") >= 4
    assert "Reading:" in dom
    # A screenshot, to look at by hand when changing the page (light; --force-dark-mode: dark).
    shot = tmp_path / "r.png"
    subprocess.run(cmd[:-2] + ["--window-size=1000,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


# --- docs/REPORT.md is generated ----------------------------------------------------------------

@pytest.mark.parametrize("preset", ["selftest-migrate", "selftest-sched"])
def test_report_md_readings_are_the_programs(nestcache, preset):
    """docs/REPORT.md (make report) quotes the readings `nestcache report` derives, not prose:
    checked on the presets that run in a blink (the others take minutes in a debug build)."""
    md = (REPO / "docs" / "REPORT.md").read_text()
    data = json.loads(report(nestcache, "--preset", preset, "--json").stdout)
    for key in ("isolation", "sharing", "exposure", "break_even"):
        line = f"- **{preset}**: {data[key]['reading']['text']}."
        assert line in md, f"docs/REPORT.md is stale (run `make report`): missing\n{line}"
    text = report(nestcache, "--preset", preset).stdout
    assert text.rstrip("\n") in md, "docs/REPORT.md's text block is stale (run `make report`)"
    selftest = report(nestcache, "--selftest").stdout
    assert selftest.rstrip("\n") in md
    for name in ("hit-ratio-vs-k.svg", "hit-ratio-vs-r.svg", "overhead-vs-map-cost.svg", "exposure-vs-ratio.svg"):
        assert (REPO / "docs" / "report" / preset / name).is_file()
        assert f"(report/{preset}/{name})" in md
