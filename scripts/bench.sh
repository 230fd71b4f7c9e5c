#!/usr/bin/env bash
# The numbers of BENCHMARKS.md: `make bench`. Release build; nothing here is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product nestcache-bench >/dev/null
swift build -c release --product nestcache >/dev/null
bin=.build/release
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
swift build -c release --product nestcached >/dev/null
"$bin/nestcache-bench" daemon
echo
python3 scripts/bench-daemon.py --bin "$bin/nestcached"
