#!/usr/bin/env bash
# Checks hand-written roff man pages: any groff warning (-ww, all of them) or man(1) warning fails.
# Usage: scripts/check-man.sh PAGE...
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v groff >/dev/null 2>&1; then
    echo "check-man: skipped: groff is not installed"
    exit 0
fi
failures=0
for page in "$@"; do
    out=$( { groff -man -ww -z "$page"; } 2>&1) || { failures=$((failures + 1)); echo "check-man: FAIL: groff exited non-zero on $page"; }
    if command -v man >/dev/null 2>&1; then
        manout=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null || true)
        [[ -z $manout ]] || out+=${out:+$'\n'}$manout
    fi
    if [[ -n $out ]]; then
        echo "check-man: FAIL: $page"
        sed 's/^/    /' <<<"$out"
        failures=$((failures + 1))
    else
        echo "check-man: ok: $page"
    fi
done
((failures == 0)) || exit 1
