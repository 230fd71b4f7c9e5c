#!/usr/bin/env bash
# `make sanitize`: the Swift tests and the daemon's end-to-end tests under AddressSanitizer and
# ThreadSanitizer (issue 8). Each sanitizer builds into its own .build-<name>; every report a
# sanitized process writes goes to a log file (log_path), and any such file fails the run, so a
# report in a daemon that a test only stopped is not lost.
#   scripts/sanitize.sh [address] [thread]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
sanitizers=("$@")
((${#sanitizers[@]})) || sanitizers=(address thread)
status=0
for san in "${sanitizers[@]}"; do
    build=.build-$san reports=$PWD/.build-$san/reports
    rm -rf "$reports"; mkdir -p "$reports"
    echo "sanitize: $san: building"
    swift build --build-path "$build" --sanitize="$san" --build-tests 2>&1 | grep -E 'error|warning: ' | grep -v system-packager || true
    opts="log_path=$reports/report:halt_on_error=0"
    export ASAN_OPTIONS="$opts:detect_leaks=1" TSAN_OPTIONS="$opts" LSAN_OPTIONS="log_path=$reports/leak"
    # The runtime's own crash handler is not sanitizer-clean; the sanitizers print the stacks.
    export SWIFT_BACKTRACE=enable=no
    echo "sanitize: $san: swift test"
    # LeakSanitizer is for nestcached and nestcache (the end-to-end tests below): the XCTest
    # runner keeps its suite objects, and Foundation.Process (the journald fixture) its own,
    # until exit, and LSan reports them as leaks of the test process.
    ASAN_OPTIONS="$opts:detect_leaks=0" swift test --build-path "$build" --sanitize="$san" --skip-build 2>&1 | grep -E '^✘ Test [^r]|^(✔|✘) Test run|error:' || status=1
    echo "sanitize: $san: end-to-end tests of the daemon"
    NESTCACHE_BIN=$PWD/$build/debug/nestcache NESTCACHED_BIN=$PWD/$build/debug/nestcached \
        .venv/bin/python -m pytest -q -p no:cacheprovider Tests/daemon 2>&1 | grep -E '^(FAILED|ERROR)|^[0-9]+ (passed|failed)' || status=1
    if compgen -G "$reports/*" >/dev/null; then
        status=1
        echo "sanitize: $san: REPORTS in $reports:"
        grep -h -E '^(WARNING|ERROR|SUMMARY|Direct leak)' "$reports"/* | sort | uniq -c | sort -rn | head -n 20
    else
        echo "sanitize: $san: no report"
    fi
    unset ASAN_OPTIONS TSAN_OPTIONS LSAN_OPTIONS
done
exit $status
