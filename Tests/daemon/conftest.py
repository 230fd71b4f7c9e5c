"""Fixtures of the end-to-end tests of the real `nestcached` (helpers: daemonlib.py).

- `nestcached` / `nestcache`: the built binaries (NESTCACHED_BIN, NESTCACHE_BIN; default
  .build/debug/...). A missing binary fails: `make test` builds them first.
- `daemon_factory` (per test) and `module_daemon_factory` (per module): make `Daemon`s and
  terminate every one at teardown.
- `journald`: a reachable journald; starts /lib/systemd/systemd-journald when
  /run/systemd/journal/socket is not connectable, and stops only the one it started.
"""
import os
import pathlib
import shutil
import socket
import subprocess

import pytest

from .daemonlib import (JOURNAL_SOCKET, JOURNALD, NESTCACHE, NESTCACHED, DaemonFactory, connectable,
                       wait_for)


@pytest.fixture(scope="session")
def nestcached():
    assert NESTCACHED.is_file() and os.access(NESTCACHED, os.X_OK), (
        f"{NESTCACHED} is missing: run `swift build` (make test does), or set NESTCACHED_BIN")
    return NESTCACHED


@pytest.fixture(scope="session")
def nestcache():
    assert NESTCACHE.is_file() and os.access(NESTCACHE, os.X_OK), (
        f"{NESTCACHE} is missing: run `swift build` (make test does), or set NESTCACHE_BIN")
    return NESTCACHE


@pytest.fixture
def daemon_factory(nestcached, tmp_path):
    f = DaemonFactory(nestcached, tmp_path)
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def module_daemon_factory(nestcached, tmp_path_factory):
    f = DaemonFactory(nestcached, tmp_path_factory.mktemp("daemon"))
    yield f
    f.cleanup()


@pytest.fixture(scope="session")
def journald():
    """A journald that takes records at /run/systemd/journal/socket. Uses the running one; else
    starts /lib/systemd/systemd-journald (it binds its own sockets when not socket-activated)
    and stops it, and only it, at the end of the session."""
    if connectable(JOURNAL_SOCKET, socket.SOCK_DGRAM):
        yield None
        return
    if os.geteuid() != 0 or not os.access(JOURNALD, os.X_OK) or not shutil.which("journalctl"):
        pytest.skip(f"no journald at {JOURNAL_SOCKET} and cannot start {JOURNALD} (needs root)")
    os.makedirs("/run/systemd/journal", exist_ok=True)
    proc = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or connectable(JOURNAL_SOCKET, socket.SOCK_DGRAM),
                 10, what="systemd-journald to listen")
        if proc.poll() is not None:
            pytest.skip(f"{JOURNALD} exited {proc.returncode} at start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
