#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer and AddressSanitizer (issue 8).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (make fuzz FUZZ_SECONDS=300)
# Builds nestcache-fuzz with -sanitize=fuzzer,address into .build-fuzz, then runs each target for
# the given time from a copy of its committed seeds (Fuzz/corpus/TARGET) plus its regressions.
# Fails on any crash, leak, hang (-timeout) or out-of-memory; the crashing input is left in
# .build-fuzz/artifacts/TARGET/ (copy it to Fuzz/regressions/TARGET/ once fixed). Prints one
# summary line per target: executions, executions per second, new corpus entries, coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(native-trace ftrace config control render)

swift build --build-path .build-fuzz --product nestcache-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DNESTCACHE_FUZZ 2>&1 | grep -v -e '^\[' -e 'Cannot export local symbol' || true
bin=.build-fuzz/debug/nestcache-fuzz
[[ -x $bin ]] || { echo "fuzz: build failed"; exit 1; }

status=0
for t in "${targets[@]}"; do
    work=.build-fuzz/corpus/$t art=.build-fuzz/artifacts/$t/ log=.build-fuzz/$t.log
    rm -rf "$work" "$art"; mkdir -p "$work" "$art"
    cp Fuzz/corpus/"$t"/* "$work"/
    [[ -d Fuzz/regressions/$t ]] && cp Fuzz/regressions/"$t"/* "$work"/ 2>/dev/null || true
    # -max_len: the trace and config targets want multi-line inputs; -rss_limit_mb bounds a
    # runaway; leaks are reported by LeakSanitizer (libFuzzer's -detect_leaks, on by default).
    # SWIFT_BACKTRACE: the runtime's crash handler trips ASan itself; libFuzzer prints the stack.
    if SWIFT_BACKTRACE=enable=no NESTCACHE_FUZZ_TARGET=$t "$bin" "$work" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -artifact_prefix="$art" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        cov=$(grep -E '^#[0-9]+' "$log" | tail -n1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
        corpus=$(ls "$work" | wc -l)
        echo "fuzz: $t: ok, ${seconds}s, $runs runs, $((runs / seconds)) exec/s, coverage $cov edges, corpus $corpus"
    else
        status=1
        echo "fuzz: $t: FAILED (log $log, input in $art):"
        grep -E 'ERROR|fuzz invariant|Fatal error|SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
    fi
done
exit $status
