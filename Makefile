# nestcache: set-up, build, test, run. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# The Swift toolchain lives at /opt/swift on our machines; one already on PATH wins.
export PATH := $(PATH):/opt/swift/usr/bin

SWIFT       ?= swift
VENV        ?= .venv
PYTHON      := $(VENV)/bin/python
SAMPLE      := samples/web0.trace
# The oracle and CLI tests drive this binary (built by `swift build` below).
NESTCACHE_BIN ?= $(CURDIR)/.build/debug/nestcache
# Tests/daemon drives the real daemon (and compares it with nestcache replay).
NESTCACHED_BIN ?= $(CURDIR)/.build/debug/nestcached

.PHONY: setup build debug run test swift-test oracle-test bench sample clean distclean

setup:
	bash scripts/setup.sh

## release build of every product
build:
	$(SWIFT) build -c release

debug:
	$(SWIFT) build

## set-up, release build, then the daemon on its embedded default configuration (Ctrl-C stops it)
run: setup build
	@echo "nestcached: serving the embedded default (config/nestcached.toml); try, in another shell:"
	@echo "  .build/release/nestcache show stats        (or: echo 'show stats json' | socat - UNIX-CONNECT:SOCKET)"
	.build/release/nestcached

## set-up, debug build, swift test, then the Python oracle and end-to-end tests (CLI and daemon)
test: setup
	$(SWIFT) build
	$(SWIFT) test
	NESTCACHE_BIN=$(NESTCACHE_BIN) NESTCACHED_BIN=$(NESTCACHED_BIN) $(PYTHON) -m pytest -v -rsx Tests/oracle Tests/daemon

## benchmarks (scripts/bench.sh)
bench:
	bash scripts/bench.sh

## regenerate samples/web0.trace (deterministic; Tests/oracle checks it is up to date)
sample:
	python3 scripts/make-sample-trace.py -o $(SAMPLE)

clean:
	rm -rf .build .build-* .build_*

distclean: clean
	rm -rf $(VENV)
