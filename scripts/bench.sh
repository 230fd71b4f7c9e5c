#!/usr/bin/env bash
# Benchmarks: builds release and runs the `nestcache-bench` product when the package has one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

if ! grep -q '"nestcache-bench"' Package.swift; then
    echo "no benchmarks yet"
    exit 0
fi
swift build -c release --product nestcache-bench
exec .build/release/nestcache-bench "$@"
