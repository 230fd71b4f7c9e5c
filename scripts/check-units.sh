#!/usr/bin/env bash
# Checks the systemd units as `make install` installs them (DESIGN §10, systemd/README.md):
#   - `systemd-analyze verify` of nestcached.service and nestcached.socket, for PREFIX=/usr and
#     PREFIX=/usr/local, inside a staged install (--root), with the man pages the units name;
#   - `systemd-analyze security --offline=yes` exposure of nestcached.service <= MAX_EXPOSURE.
# `verify` exits 0 on parse errors (it prints them as warnings), so ANY output on stderr fails the
# check as well as a non-zero exit.
#
# Environment: CONFIG (debug|release, the build `make install` takes; default debug),
# MAX_EXPOSURE (default 2.0), MAKE (default make).
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-debug}
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
MAKE=${MAKE:-make}
failures=0

log() { printf 'check-units: %s\n' "$*"; }
fail() { log "FAIL: $*"; failures=$((failures + 1)); }

if ! command -v systemd-analyze >/dev/null 2>&1; then
    log "skipped: systemd-analyze is not installed"
    exit 0
fi

tmp=$(mktemp -d /tmp/nestcache-check-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Runs "$@", failing on a non-zero exit or on any stderr output; prints both on failure.
run_clean() {
    local what=$1
    shift
    local out=$tmp/out err=$tmp/err rc=0
    "$@" >"$out" 2>"$err" || rc=$?
    if ((rc != 0)) || [[ -s $err ]]; then
        fail "$what: exit $rc"
        sed 's/^/    stderr: /' "$err"
        sed 's/^/    stdout: /' "$out"
        return 1
    fi
    log "ok: $what"
}

for prefix in /usr /usr/local; do
    root=$tmp/root${prefix//\//-}
    mkdir -p "$root"
    "$MAKE" --no-print-directory -s install DESTDIR="$root" PREFIX="$prefix" CONFIG="$CONFIG" NOBUILD="${NOBUILD:-}" >/dev/null
    if [[ $prefix == /usr ]]; then unitdir=/lib/systemd/system; else unitdir=$prefix/lib/systemd/system; fi
    sbin=$prefix/sbin/nestcached
    grep -qx "ExecStart=$sbin --config /etc/nestcache/nestcached.toml" "$root$unitdir/nestcached.service" ||
        fail "PREFIX=$prefix: the installed unit does not run $sbin"
    [[ -x $root$sbin && -x $root$prefix/bin/nestcache ]] || fail "PREFIX=$prefix: binaries not installed"
    # verify resolves ExecStart= and the dependencies inside the tree, and the Documentation= man
    # pages with `man` (MANPATH: the installed ones). The tree gets systemd's own units and
    # ExecReload='s /bin/kill from the host (copies: absolute symlinks resolve inside --root).
    # systemd's units go to /usr/lib/systemd/system there, a directory `make install` never uses.
    mkdir -p "$root/bin" "$root/usr/lib/systemd/system"
    cp /bin/kill "$root/bin/kill"
    cp -r /lib/systemd/system/. "$root/usr/lib/systemd/system/"
    run_clean "verify PREFIX=$prefix" env MANPATH="$root$prefix/share/man" SYSTEMD_LOG_COLOR=0 \
        systemd-analyze verify --root="$root" \
        "$root$unitdir/nestcached.socket" "$root$unitdir/nestcached.service" || true
    # `make uninstall` removes everything it installed, and keeps a modified configuration.
    echo '# local change' >>"$root/etc/nestcache/nestcached.toml"
    rm -rf "$root/bin" "$root/usr/lib/systemd/system"
    "$MAKE" --no-print-directory -s uninstall DESTDIR="$root" PREFIX="$prefix" >/dev/null
    left=$(cd "$root" && find . -type f | sort)
    [[ $left == "./etc/nestcache/nestcached.toml" ]] ||
        fail "PREFIX=$prefix: after uninstall, expected only the modified config, found: $left"
done

# The exposure score, on the unit as installed for PREFIX=/usr.
sec=$tmp/security
if systemd-analyze security --offline=yes --no-pager systemd/nestcached.service >"$sec" 2>"$tmp/sec-err"; then
    exposure=$(sed -n 's/^→ Overall exposure level for nestcached.service: \([0-9.]*\) .*/\1/p' "$sec")
    if [[ -z $exposure ]]; then
        fail "security: no exposure level in the output"
        cat "$sec"
    elif awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
        log "ok: security exposure $exposure <= $MAX_EXPOSURE ($(grep -o '[A-Z]* [^ ]*$' <<<"$(tail -n1 "$sec")" || true))"
    else
        fail "security: exposure $exposure > $MAX_EXPOSURE"
        grep '✗' "$sec" || true
    fi
    if [[ -s $tmp/sec-err ]]; then
        fail "security printed on stderr"
        cat "$tmp/sec-err"
    fi
else
    fail "systemd-analyze security exited non-zero"
    cat "$sec" "$tmp/sec-err"
fi

if ((failures > 0)); then
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
