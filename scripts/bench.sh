#!/usr/bin/env bash
# The numbers of BENCHMARKS.md: `make bench`. Release build; nothing here is asserted.
#   scripts/bench.sh          everything below
#   scripts/bench.sh shapes   only `nestcache replay` vs the C baseline (bench/baseline.c) and
#                             libCacheSim by trace shape (scripts/bench-shapes.py); BEFORE=BIN
#                             measures another nestcache alongside, RUNS=N rounds (default 7),
#                             PYTHON=a Python with libcachesim (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
bin=.build/release
python=${PYTHON:-.venv/bin/python}
[[ -x $python ]] || python=python3

# The C baseline is built here, outside `swift build` and never installed.
shapes() {
  mkdir -p .build-bench
  ${CC:-cc} -O2 -Wall -Wextra -o .build-bench/baseline bench/baseline.c
  local dir=${SHAPES_DIR:-/tmp/nestcache-bench-shapes}
  python3 scripts/make-bench-traces.py --dir "$dir" --nestcache "$bin/nestcache"
  "$python" scripts/bench-shapes.py --bin "$bin/nestcache" --baseline .build-bench/baseline \
    --dir "$dir" --runs "${RUNS:-7}" --python "$python" ${BEFORE:+--before "$BEFORE"}
}

swift build -c release --product nestcache >/dev/null
if [[ ${1:-} == shapes ]]; then
  shapes
  exit
fi
swift build -c release --product nestcache-bench >/dev/null
echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%F)"
"$bin/nestcache-bench" engine
echo
"$bin/nestcache-bench" reader
echo
"$bin/nestcache-bench" simulate
echo
"$bin/nestcache-bench" ftrace
echo
"$bin/nestcache-bench" sweep
echo
"$bin/nestcache-bench" bounds
echo
if command -v valgrind >/dev/null; then
  echo "heap allocations (valgrind memcheck, whole process) for one per-vm-table:8 pass:"
  # A stripped copy: valgrind's debuginfo reader gives up on the full one (it links SwiftNIO).
  stripped=$(mktemp)
  strip -o "$stripped" "$bin/nestcache-bench"
  for n in 1000000 2000000; do
    valgrind --tool=memcheck --leak-check=no "$stripped" alloc-probe --events "$n" 2>&1 \
      | sed -n "s/.*total heap usage: \([0-9,]*\) allocs.*/  $n events: \1 allocs/p"
  done
  rm -f "$stripped"
else
  echo "valgrind not installed: skipping the allocation count"
fi
echo
shapes
echo
swift build -c release --product nestcached >/dev/null
"$bin/nestcache-bench" daemon
echo
python3 scripts/bench-daemon.py --bin "$bin/nestcached"
