#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer and AddressSanitizer (issue 8).
#   scripts/fuzz.sh SECONDS [TARGET...]   explore: each target for SECONDS, random seed (make fuzz)
#   scripts/fuzz.sh --ci [TARGET...]      reproduce: seed 1, a fixed number of inputs per target,
#                                         deterministic hashing (make test, CI): a pass here is a
#                                         pass in CI, and a find is a find on every machine
# Builds nestcache-fuzz with -sanitize=fuzzer,address into .build-fuzz, then runs each target
# from a copy of its committed seeds (Fuzz/corpus/TARGET) plus its regressions. Fails on any
# crash, leak, hang (-timeout) or out-of-memory; the crashing input is left in
# .build-fuzz/artifacts/TARGET/ (fix it, then copy it to Fuzz/regressions/TARGET/). Prints one
# summary line per target: executions, executions per second, coverage, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
mode=explore
if [[ ${1:-} == --ci ]]; then
    mode=ci
    shift
else
    seconds=${1:-60}
    shift || true
fi
targets=("$@")
((${#targets[@]})) || targets=(native-trace ftrace config control render)
# Inputs per target in --ci mode: about 30 s each on our 2-core machines (the trace and render
# targets are the slow ones per input).
declare -A ci_runs=([native-trace]=8000 [ftrace]=8000 [config]=60000 [control]=60000 [render]=6000)

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
    if [[ $mode == ci ]]; then
        budget=(-runs="${ci_runs[$t]}" -seed=1 -max_total_time=300)
        export SWIFT_DETERMINISTIC_HASHING=1  # Swift's per-process hash seeds would change the paths
    else
        budget=(-max_total_time="$seconds")
    fi
    # SWIFT_BACKTRACE: the runtime's crash handler trips ASan itself; libFuzzer prints the stack.
    start=$(date +%s)
    if SWIFT_BACKTRACE=enable=no NESTCACHE_FUZZ_TARGET=$t "$bin" "$work" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -artifact_prefix="$art" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        cov=$(grep -E '^#[0-9]+' "$log" | tail -n1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
        corpus=$(ls "$work" | wc -l)
        took=$(( $(date +%s) - start ))
        echo "fuzz: $t: ok ($mode), ${took}s, $runs runs, $((runs / (took > 0 ? took : 1))) exec/s, coverage $cov edges, corpus $corpus"
    else
        status=1
        echo "fuzz: $t: FAILED (log $log, input in $art):"
        grep -E 'ERROR|fuzz invariant|Fatal error|SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
    fi
done
exit $status
