"""`nestcache record` (DESIGN §11) end to end.

Two kinds of tracefs:
- a FAKE tree built here: the files `record` reads and writes (`events/kvm/EVENT/enable`,
  `options/record-tgid`, `tracing_on`, `instances/`) hold "0\\n"/"1\\n" as tracefs's do, and
  `trace_pipe` is a FIFO this test writes real ftrace lines into. `--no-instance` records in the
  tree itself (in a fake tree `mkdir instances/X` makes an empty directory, not an instance), and
  `--instance NAME` uses an instance the test laid out beforehand. The oracle for the output is
  `nestcache replay --format ftrace` of the same lines.
- the REAL tracefs, mounted by the test in a temporary directory (root only), where `record`
  creates its own instance: every setting and the list of instances must be as before, and the
  output a valid native trace (this machine's KVM never fires the nested events: no VMX).
"""
import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, run

FIXTURE = REPO / "Tests" / "Fixtures" / "ftrace" / "raw_tgid.txt"
EVENTS = ["kvm_nested_vmenter", "kvm_exit", "kvm_entry", "kvm_nested_vmexit"]
POLICIES = ["per-vm-table:8", "per-vcpu-lru:3", "map-per-entry"]


# ---------------------------------------------------------------------------------------------
# The fake tracefs

def make_buffer(d, tracing_on="0\n"):
    """The files of one tracefs buffer (the top level or an instance)."""
    for e in EVENTS + ["kvm_mmio"]:
        (d / "events" / "kvm" / e).mkdir(parents=True)
        (d / "events" / "kvm" / e / "enable").write_text("0\n")
    (d / "events" / "kvm" / "enable").write_text("0\n")
    (d / "options").mkdir()
    (d / "options" / "record-tgid").write_text("0\n")
    (d / "tracing_on").write_text(tracing_on)
    os.mkfifo(d / "trace_pipe")


@pytest.fixture
def fake(tmp_path):
    root = tmp_path / "tracefs"
    make_buffer(root)
    (root / "instances").mkdir()
    return root


def snapshot(root):
    """Every file's content and mtime and every directory under `root`: 'nothing changed' is
    equality of snapshots; 'restored' is equality of contents."""
    files, dirs = {}, []
    for dirpath, dirnames, filenames in os.walk(root):
        dirs.append(os.path.relpath(dirpath, root))
        for f in filenames:
            p = pathlib.Path(dirpath) / f
            st = p.lstat()
            if p.is_fifo():
                files[str(p.relative_to(root))] = ("fifo", st.st_mtime_ns)
            else:
                files[str(p.relative_to(root))] = (p.read_text(), st.st_mtime_ns)
    return files, sorted(dirs)


def contents(snap):
    files, dirs = snap
    return {k: v[0] for k, v in files.items()}, dirs


def settings(buffer_dir):
    """The values `record` turns on, read now."""
    out = {e: (buffer_dir / "events" / "kvm" / e / "enable").read_text() for e in EVENTS}
    out["record-tgid"] = (buffer_dir / "options" / "record-tgid").read_text()
    out["tracing_on"] = (buffer_dir / "tracing_on").read_text()
    return out


def start_record(binary, *args, stdout=subprocess.PIPE):
    return subprocess.Popen([str(binary), "record", *map(str, args)], stdout=stdout,
                            stderr=subprocess.PIPE, text=True)


def wait_until_on(proc, buffer_dir, timeout=30):
    """Waits until `record` turned every setting on (it has not exited)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, f"record exited {proc.returncode}: {proc.stderr.read()}"
        if all(v == "1\n" for v in settings(buffer_dir).values()):
            return
        time.sleep(0.02)
    pytest.fail(f"record did not turn the settings on: {settings(buffer_dir)}")


def open_writer(fifo, timeout=30):
    """Opens the FIFO for writing once `record` has it open for reading (never blocks)."""
    end = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            return fd
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > end:
                raise
            time.sleep(0.02)


def feed(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def counters_of(binary, files, *extra):
    """`replay --json` per policy: totals and VMs only (the reader's own figures differ between
    an ftrace reading and a native one)."""
    out = {}
    for p in POLICIES:
        proc = run(binary, "replay", *files, "--policy", p, *extra, "--json")
        assert proc.returncode == 0, proc.stderr
        j = json.loads(proc.stdout)
        out[p] = {"totals": j["totals"], "vms": j["vms"]}
    return out


def expected(binary):
    """The oracle: replay of the fixture's lines as ftrace. The one line without a recorded tgid
    goes to the VM named by --vm, which the recordings below give the same name."""
    return counters_of(binary, [FIXTURE], "--format", "ftrace")


VM_ARGS = ["--vm", FIXTURE.stem]


def assert_output_is_the_fixture(binary, out_path):
    assert out_path.read_text().startswith("# nestcache-trace v1\n")
    assert counters_of(binary, [out_path], "--format", "native") == expected(binary)


# ---------------------------------------------------------------------------------------------
# Fake tracefs: the output, and every way of stopping

def test_end_of_input_gives_the_counters_of_replaying_the_lines_and_restores_everything(nestcache, fake, tmp_path):
    before = snapshot(fake)
    out = tmp_path / "out.trace"
    proc = start_record(nestcache, "--tracefs", fake, "--no-instance", "--proc", tmp_path / "noproc", *VM_ARGS, out)
    wait_until_on(proc, fake)
    assert settings(fake)["tracing_on"] == "1\n"
    fd = open_writer(fake / "trace_pipe")
    feed(fd, FIXTURE.read_bytes())
    os.close(fd)  # the FIFO's end is the end of the recording
    rc, _, err = finish(proc)
    assert rc == 0, err
    assert contents(snapshot(fake)) == contents(before)
    # 5 entries (one a line without tgid), 1 sched_switch skipped; the fixture's times step back twice.
    assert "recorded 5 events of 3 VMs" in err and "stopped by the end of trace_pipe" in err, err
    assert "lines skipped: 1 (invalid 0, eVMCS entries 0, other events 1)" in err, err
    assert err.count("\n") == 1, err
    assert_output_is_the_fixture(nestcache, out)
    # kvm_mmio was never touched, nor the system-wide enable.
    assert (fake / "events" / "kvm" / "kvm_mmio" / "enable").stat().st_mtime_ns == before[0]["events/kvm/kvm_mmio/enable"][1]


def test_duration_ends_the_recording_with_the_writer_still_open(nestcache, fake, tmp_path):
    before = snapshot(fake)
    out = tmp_path / "out.trace"
    proc = start_record(nestcache, "--tracefs", fake, "--no-instance", "--proc", tmp_path / "noproc",
                        "--duration", "1.5", *VM_ARGS, out)
    wait_until_on(proc, fake)
    fd = open_writer(fake / "trace_pipe")
    feed(fd, FIXTURE.read_bytes())
    rc, _, err = finish(proc)
    os.close(fd)
    assert rc == 0, err
    assert "stopped by --duration" in err, err
    assert contents(snapshot(fake)) == contents(before)
    assert_output_is_the_fixture(nestcache, out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("to_stdout", [False, True])
def test_a_signal_stops_the_recording_keeps_what_was_traced_and_restores_everything(nestcache, fake, tmp_path, sig, to_stdout):
    before = snapshot(fake)
    out = tmp_path / "out.trace"
    proc = start_record(nestcache, "--tracefs", fake, "--no-instance", "--proc", tmp_path / "noproc",
                        *VM_ARGS, "-" if to_stdout else out)
    wait_until_on(proc, fake)
    fd = open_writer(fake / "trace_pipe")
    feed(fd, FIXTURE.read_bytes())
    # The lines are in the pipe before the signal: record reads what was traced before it stops.
    proc.send_signal(sig)
    rc, stdout, err = finish(proc)
    os.close(fd)
    assert rc == 0, err
    assert f"stopped by {signal.Signals(sig).name}" in err, err
    assert contents(snapshot(fake)) == contents(before)
    if to_stdout:
        out.write_text(stdout)
    assert_output_is_the_fixture(nestcache, out)


def assert_turned_on_then_restored(fake, before):
    """Contents as before, but the settings were written (mtimes moved): on, then back."""
    assert contents(snapshot(fake)) == contents(before)
    after = snapshot(fake)[0]
    for f in ["options/record-tgid", "tracing_on"] + [f"events/kvm/{e}/enable" for e in EVENTS]:
        assert after[f][1] != before[0][f][1], f"{f} was never written"


def test_disk_full_is_an_error_after_which_everything_is_restored(nestcache, fake, tmp_path):
    before = snapshot(fake)
    time.sleep(0.01)
    # The first flush (the magic line, as soon as trace_pipe has nothing more) fails.
    rc, _, err = finish(start_record(nestcache, "--tracefs", fake, "--no-instance", "/dev/full"))
    assert rc == 1, err
    assert "/dev/full: write: No space left on device" in err, err
    assert_turned_on_then_restored(fake, before)
    assert pathlib.Path("/dev/full").is_char_device()  # written in place, not renamed over


def test_a_closed_standard_output_is_an_error_after_which_everything_is_restored(nestcache, fake, tmp_path):
    before = snapshot(fake)
    time.sleep(0.01)
    r, w = os.pipe()
    proc = start_record(nestcache, "--tracefs", fake, "--no-instance", "-", stdout=w)
    os.close(w)
    os.close(r)  # EPIPE at the first write (SIGPIPE must not kill it with the settings on)
    rc, _, err = finish(proc)
    assert rc == 1, err
    assert "Broken pipe" in err, err
    assert_turned_on_then_restored(fake, before)


def test_an_output_that_cannot_be_created_changes_nothing(nestcache, fake, tmp_path):
    before = snapshot(fake)
    proc = run(nestcache, "record", "--tracefs", fake, "--no-instance", "/proc/no-such-dir/out.trace")
    assert proc.returncode == 1, proc.stderr
    assert "cannot create" in proc.stderr
    assert snapshot(fake) == before  # not even written with the same value: mtimes equal


# ---------------------------------------------------------------------------------------------
# VM ids from QEMU's command line

def test_vm_ids_are_qemus_guest_names_where_the_process_has_one(nestcache, fake, tmp_path):
    proc_dir = tmp_path / "proc"
    (proc_dir / "48200").mkdir(parents=True)
    (proc_dir / "48200" / "cmdline").write_bytes(
        b"/usr/bin/qemu-system-x86_64\0-name\0guest=web0,debug-threads=on\0-m\04096\0")
    (proc_dir / "51000").mkdir()
    # `-name NAME` (implied key guest); ',,' is a comma in QEMU's syntax, not an id character.
    (proc_dir / "51000" / "cmdline").write_bytes(b"qemu-kvm\0-machine\0q35\0-name\0db,,1,process=qemu:db\0")
    out = tmp_path / "out.trace"
    proc = start_record(nestcache, "--tracefs", fake, "--no-instance", "--proc", proc_dir, *VM_ARGS, out)
    wait_until_on(proc, fake)
    fd = open_writer(fake / "trace_pipe")
    feed(fd, FIXTURE.read_bytes())
    os.close(fd)
    rc, _, err = finish(proc)
    assert rc == 0, err
    text = out.read_text()
    assert "# vm web0\n" in text and "# vm db_1\n" in text and "# vm raw_tgid\n" in text, text
    got = counters_of(nestcache, [out], "--format", "native")
    rename = {"48200": "web0", "51000": "db_1", "raw_tgid": "raw_tgid"}
    for p, want in expected(nestcache).items():
        assert got[p]["totals"] == want["totals"]
        assert got[p]["vms"] == {rename[k]: v for k, v in want["vms"].items()}


# ---------------------------------------------------------------------------------------------
# Instances in the fake tree

def test_an_existing_instance_is_used_restored_and_kept(nestcache, fake, tmp_path):
    inst = fake / "instances" / "mine"
    make_buffer(inst, tracing_on="1\n")
    (inst / "events" / "kvm" / "kvm_exit" / "enable").write_text("1\n")  # someone's, left on
    before = snapshot(fake)
    out = tmp_path / "out.trace"
    proc = start_record(nestcache, "--tracefs", fake, "--instance", "mine", "--proc", tmp_path / "noproc",
                        *VM_ARGS, out)
    wait_until_on(proc, inst)
    top_now = {k: v for k, v in contents(snapshot(fake))[0].items() if not k.startswith("instances/")}
    assert top_now == {k: v for k, v in contents(before)[0].items() if not k.startswith("instances/")}
    fd = open_writer(inst / "trace_pipe")
    feed(fd, FIXTURE.read_bytes())
    os.close(fd)
    rc, _, err = finish(proc)
    assert rc == 0, err
    assert contents(snapshot(fake)) == contents(before)
    # Values that were already on are not rewritten.
    files_after = snapshot(fake)[0]
    assert files_after["instances/mine/events/kvm/kvm_exit/enable"] == before[0]["instances/mine/events/kvm/kvm_exit/enable"]
    assert files_after["instances/mine/tracing_on"] == before[0]["instances/mine/tracing_on"]
    assert_output_is_the_fixture(nestcache, out)


def test_an_instance_that_is_not_one_is_removed_and_nothing_changes(nestcache, fake, tmp_path):
    # In a fake tree mkdir makes an empty directory: no events in it. record must say so (69),
    # remove what it created, and change nothing.
    before = snapshot(fake)
    out = tmp_path / "out.trace"
    proc = run(nestcache, "record", "--tracefs", fake, out)
    assert proc.returncode == 69, proc.stderr
    assert "no events/kvm or trace_pipe in this instance" in proc.stderr
    assert snapshot(fake) == before
    assert not out.exists() and list(tmp_path.glob("out.trace*")) == []


# ---------------------------------------------------------------------------------------------
# Unavailable: exit 69, nothing changed

def test_no_tracefs_is_exit_69_with_the_mount_command(nestcache, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.trace"
    proc = run(nestcache, "record", "--tracefs", empty, out)
    assert proc.returncode == 69, proc.stderr
    assert f"mount -t tracefs nodev {empty}" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert list(empty.iterdir()) == [] and list(tmp_path.glob("out.trace*")) == []


def test_no_kvm_events_is_exit_69_with_the_module_to_load(nestcache, fake, tmp_path):
    shutil.rmtree(fake / "events" / "kvm")
    before = snapshot(fake)
    out = tmp_path / "out.trace"
    for mode in (["--no-instance"], [], ["--instance", "x"]):
        proc = run(nestcache, "record", "--tracefs", fake, *mode, out)
        assert proc.returncode == 69, proc.stderr
        assert "modprobe kvm_intel" in proc.stderr and "modprobe kvm_amd" in proc.stderr
        assert snapshot(fake) == before
        assert list(tmp_path.glob("out.trace*")) == []


def test_no_nested_entry_event_is_exit_69(nestcache, fake, tmp_path):
    shutil.rmtree(fake / "events" / "kvm" / "kvm_nested_vmenter")
    before = snapshot(fake)
    proc = run(nestcache, "record", "--tracefs", fake, "--no-instance", tmp_path / "out.trace")
    assert proc.returncode == 69, proc.stderr
    assert "no kvm_nested_vmenter or kvm_nested_vmrun event" in proc.stderr
    assert snapshot(fake) == before


def test_not_root_is_exit_69_saying_so(nestcache, fake, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the binary as another user")
    fake.chmod(0o700)  # as tracefs is: root only
    tmp_path.chmod(0o755)
    before = snapshot(fake)
    proc = subprocess.run([str(nestcache), "record", "--tracefs", str(fake), "/tmp/nestcache-notroot.trace"],
                          capture_output=True, text=True, timeout=60, user=65534, group=65534)
    if "Permission denied" in proc.stderr and "needs root" not in proc.stderr:
        pytest.skip(f"the binary is not reachable by uid 65534: {proc.stderr.strip()}")
    assert proc.returncode == 69, proc.stderr
    assert "needs root" in proc.stderr
    assert snapshot(fake) == before


def test_usage_errors_exit_64(nestcache, fake, tmp_path):
    for args in (["--instance", "a", "--no-instance"], ["--duration", "0"], ["--duration", "x"],
                 ["--vm", "bad name"], []):
        proc = run(nestcache, "record", "--tracefs", fake, *args, *([] if args == [] else [tmp_path / "o"]))
        assert proc.returncode == 64, (args, proc.stderr)
    proc = run(nestcache, "record", "--tracefs", fake, "--instance", "../x", tmp_path / "o")
    assert proc.returncode == 64, proc.stderr


# ---------------------------------------------------------------------------------------------
# The real tracefs

@pytest.fixture
def real_tracefs():
    """The kernel's tracefs, mounted in a temporary directory (another mount of the same
    tracefs: the settings are the system's). Skips where that is not possible."""
    if os.geteuid() != 0:
        pytest.skip("mounting tracefs needs root")
    mnt = tempfile.mkdtemp(prefix="nestcache-tracefs-")
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", mnt], capture_output=True, text=True)
    if proc.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount tracefs: {proc.stderr.strip()}")
    root = pathlib.Path(mnt)
    try:
        if not (root / "events" / "kvm").is_dir():
            pytest.skip("this kernel has no KVM trace events (events/kvm): load kvm_intel or kvm_amd")
        instances_before = set(os.listdir(root / "instances"))
        yield root
    finally:
        # Anything record left behind would be a failure already; do not leave it on the host.
        if (root / "instances").is_dir():
            for name in set(os.listdir(root / "instances")) - instances_before:
                if name.startswith("nestcache"):
                    os.rmdir(root / "instances" / name)
        subprocess.run(["umount", mnt], check=False)
        os.rmdir(mnt)


def real_snapshot(root):
    """What record could change on the host: every enable under events/kvm, record-tgid,
    tracing_on, the events enabled anywhere, and the instances."""
    kvm = root / "events" / "kvm"
    snap = {str(p.relative_to(root)): p.read_text() for p in sorted(kvm.glob("*/enable"))}
    snap["events/kvm/enable"] = (kvm / "enable").read_text()
    for f in ("options/record-tgid", "tracing_on", "set_event", "buffer_size_kb", "current_tracer"):
        snap[f] = (root / f).read_text()
    snap["instances"] = sorted(os.listdir(root / "instances"))
    return snap


def test_real_tracefs_duration_restores_every_setting_and_writes_a_valid_trace(nestcache, real_tracefs, tmp_path):
    before = real_snapshot(real_tracefs)
    out = tmp_path / "real.trace"
    proc = run(nestcache, "record", "--tracefs", real_tracefs, "--duration", "1", out)
    assert proc.returncode == 0, proc.stderr
    assert "stopped by --duration" in proc.stderr and "lines skipped" in proc.stderr
    assert real_snapshot(real_tracefs) == before
    assert out.read_text().startswith("# nestcache-trace v1\n")
    replay = run(nestcache, "replay", out, "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["totals"]["events"] >= 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_real_tracefs_own_instance_leaves_the_global_buffer_alone_and_is_removed(nestcache, real_tracefs, tmp_path, sig):
    before = real_snapshot(real_tracefs)
    out = tmp_path / "real.trace"
    proc = start_record(nestcache, "--tracefs", real_tracefs, out)
    inst = real_tracefs / "instances" / f"nestcache-{proc.pid}"
    end = time.monotonic() + 30
    while not (inst.is_dir() and (inst / "tracing_on").exists() and all(v == "1\n" for v in settings(inst).values())):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < end, "the instance never got its settings"
        time.sleep(0.02)
    # While it records, its instance has the events and the tgid column; the top level is untouched.
    assert real_snapshot(real_tracefs) == {**before, "instances": sorted(before["instances"] + [inst.name])}
    proc.send_signal(sig)
    rc, _, err = finish(proc)
    assert rc == 0, err
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert real_snapshot(real_tracefs) == before
    assert not inst.exists()
    assert run(nestcache, "replay", out, "--json").returncode == 0


def test_real_tracefs_named_instance_is_restored_and_kept(nestcache, real_tracefs, tmp_path):
    name = f"nestcache-test-{os.getpid()}"
    inst = real_tracefs / "instances" / name
    inst.mkdir()
    try:
        (inst / "events" / "kvm" / "kvm_entry" / "enable").write_text("1\n")
        (inst / "options" / "record-tgid").write_text("0\n")
        want = settings(inst)
        assert want["kvm_entry"] == "1\n" and want["kvm_exit"] == "0\n"
        before = real_snapshot(real_tracefs)
        proc = run(nestcache, "record", "--tracefs", real_tracefs, "--instance", name, "--duration", "0.5",
                   tmp_path / "real.trace")
        assert proc.returncode == 0, proc.stderr
        assert settings(inst) == want
        assert real_snapshot(real_tracefs) == before
    finally:
        (inst / "events" / "kvm" / "kvm_entry" / "enable").write_text("0\n")
        inst.rmdir()


def test_real_tracefs_closed_standard_output_restores_everything(nestcache, real_tracefs):
    before = real_snapshot(real_tracefs)
    r, w = os.pipe()
    proc = start_record(nestcache, "--tracefs", real_tracefs, "--duration", "30", "-", stdout=w)
    os.close(w)
    os.close(r)
    rc, _, err = finish(proc)
    assert rc == 1, err
    assert "Broken pipe" in err
    assert real_snapshot(real_tracefs) == before
