#!/usr/bin/env bash
# Set-up for `make run` / `make test`: the Debian packages the project needs and a Python venv
# (.venv/) holding the oracle test's packages (scripts/requirements-test.txt).
#
# Idempotent: a second run installs nothing and takes well under a second.
# As root it installs missing Debian packages itself (apt-get update first, only then);
# otherwise it prints what to install and goes on as far as it can.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
REQS=$ROOT/scripts/requirements-test.txt

# Debian packages. python3-venv: ensurepip for Debian's python3 (a pyenv python has its own);
# libsystemd-dev + pkg-config: the daemon's journald/sd_notify glue (DESIGN §7); systemd: journald
# and journalctl for the tests; prometheus: promtool, which checks `show metrics` in the tests, and the
# server that scrapes a real daemon's metrics_listen in Tests/daemon/test_http_metrics.py;
# socat: the README's one-liners; chromium: renders `nestcache report --html` headless in Tests/oracle.
DEB_PACKAGES=(python3 python3-venv libsystemd-dev pkg-config make git systemd prometheus socat chromium)

log() { printf 'setup: %s\n' "$*"; }

missing_debs() {
    local pkg
    for pkg in "${DEB_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$pkg"
        fi
    done
}

install_debs() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not a Debian system: install by hand the equivalents of: ${DEB_PACKAGES[*]}"
        return 0
    fi
    local missing
    mapfile -t missing < <(missing_debs)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages: ${missing[*]}"
        log "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# A python3 whose `-m venv` works: $PYTHON if set, then the one on PATH (here a pyenv 3.11),
# then Debian's. Prints its path.
pick_python() {
    local candidates=() py
    [[ -n ${PYTHON:-} ]] && candidates+=("$PYTHON")
    candidates+=(python3 /usr/bin/python3)
    for py in "${candidates[@]}"; do
        command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

venv_is_usable() {
    [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

# True when every pinned requirement is installed at its version (no network, no pip run).
requirements_satisfied() {
    "$VENV/bin/python" - "$REQS" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name.strip())
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want.strip():
        sys.exit(1)
PY
}

make_venv() {
    if venv_is_usable; then
        return 0
    fi
    local py
    if ! py=$(pick_python); then
        log "no python3 (>= 3.10) with a working venv module; install python3 and python3-venv"
        exit 1
    fi
    log "creating $VENV with $py ($("$py" --version 2>&1))"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
}

install_debs
make_venv
if ! requirements_satisfied; then
    log "installing Python packages from ${REQS#"$ROOT"/}"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    requirements_satisfied || { log "pip did not install what $REQS asks for"; exit 1; }
fi

if ! command -v swift >/dev/null 2>&1 && [[ ! -x /opt/swift/usr/bin/swift ]]; then
    log "warning: no Swift toolchain on PATH or at /opt/swift/usr/bin"
fi
log "ok ($("$VENV/bin/python" --version 2>&1), $("$VENV/bin/python" -c 'from importlib.metadata import version; print("libcachesim", version("libcachesim"), "pytest", version("pytest"))'))"
