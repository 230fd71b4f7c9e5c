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

# `make install`: GNU layout under PREFIX, staged under DESTDIR. The configuration lives in /etc
# whatever the PREFIX (the unit's ExecStart= names it). CONFIG=debug installs the debug build
# (the unit checks and the system test do, to reuse what `make test` built); NOBUILD=1 installs
# what is built without calling swift build.
PREFIX      ?= /usr/local
DESTDIR     ?=
CONFIG      ?= release
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
# systemd's own paths for PREFIX=/usr (Debian: /lib/systemd/system); else under PREFIX, which
# systemd searches too (/usr/local/lib/systemd/system, /usr/local/lib/sysusers.d, ...).
ifeq ($(PREFIX),/usr)
UNITDIR     ?= /lib/systemd/system
else
UNITDIR     ?= $(PREFIX)/lib/systemd/system
endif
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d

.PHONY: setup build debug run test swift-test oracle-test bench bench-shapes sample report clean distclean fuzz sanitize soak \
	install uninstall check-units check-man system-test build-release build-debug

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

## set-up, debug build, swift test, the unit/man-page checks, then the Python oracle, end-to-end
## (CLI and daemon), monitoring-plugin and systemd system tests (Tests/system skips, saying why, where it cannot run)
test: setup
	$(SWIFT) build
	$(SWIFT) test
	$(MAKE) --no-print-directory check-units check-man CONFIG=debug
	NESTCACHE_BIN=$(NESTCACHE_BIN) NESTCACHED_BIN=$(NESTCACHED_BIN) $(PYTHON) -m pytest -v -rs \
		Tests/oracle Tests/daemon Tests/contrib Tests/system
	bash scripts/fuzz.sh --ci

## libFuzzer + ASan on every fuzz target, FUZZ_SECONDS each, random seed (scripts/fuzz.sh; `make test`
## runs the reproducible `--ci` pass: seed 1, a fixed number of inputs); fails on a crash, leak, hang
## or broken invariant
FUZZ_SECONDS      ?= 300
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

## ASan and TSan: swift test and the daemon's end-to-end tests on sanitized builds (scripts/sanitize.sh)
sanitize: setup
	bash scripts/sanitize.sh

## not in CI: SOAK_MINUTES with 1,000 simulated VMs, reload storms and client churn (scripts/soak.py)
SOAK_MINUTES ?= 10
soak: setup build
	$(PYTHON) scripts/soak.py --minutes $(SOAK_MINUTES)

## systemd units: `systemd-analyze verify` and `security` on an installed tree (scripts/check-units.sh)
check-units:
	CONFIG=$(CONFIG) bash scripts/check-units.sh

## man pages: groff warnings are errors
check-man:
	bash scripts/check-man.sh man/nestcached.8 man/nestcache.1

## only the systemd system test (boots systemd in throw-away namespaces; needs root)
system-test:
	NESTCACHED_BIN=$(NESTCACHED_BIN) $(PYTHON) -m pytest -v -rs Tests/system

## install the $(CONFIG) build, units, sysusers/tmpfiles, man pages and (once) the configuration
install: $(if $(NOBUILD),,build-$(CONFIG))
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/nestcache
	install -m 0755 .build/$(CONFIG)/nestcache $(DESTDIR)$(BINDIR)/nestcache
	install -m 0755 .build/$(CONFIG)/nestcached $(DESTDIR)$(SBINDIR)/nestcached
	sed -e 's|^ExecStart=/usr/sbin/nestcached --config /etc/|ExecStart=$(SBINDIR)/nestcached --config $(SYSCONFDIR)/|' \
		systemd/nestcached.service > $(DESTDIR)$(UNITDIR)/nestcached.service
	grep -q '^ExecStart=$(SBINDIR)/nestcached --config $(SYSCONFDIR)/nestcache/nestcached.toml$$' \
		$(DESTDIR)$(UNITDIR)/nestcached.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/nestcached.service
	install -m 0644 systemd/nestcached.socket $(DESTDIR)$(UNITDIR)/nestcached.socket
	install -m 0644 systemd/nestcache.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/nestcache.conf
	install -m 0644 systemd/nestcache.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/nestcache.conf
	install -m 0644 man/nestcache.1 $(DESTDIR)$(MANDIR)/man1/nestcache.1
	install -m 0644 man/nestcached.8 $(DESTDIR)$(MANDIR)/man8/nestcached.8
	if [[ -e $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml ]]; then \
		echo "install: keeping the existing $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml"; \
	else \
		install -m 0644 config/nestcached.toml $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml; \
	fi
	@if [[ -z "$(DESTDIR)" ]]; then \
		echo "install: now run: systemd-sysusers $(SYSUSERSDIR)/nestcache.conf &&" \
			"systemd-tmpfiles --create $(TMPFILESDIR)/nestcache.conf &&" \
			"systemctl daemon-reload && systemctl enable --now nestcached.socket"; \
	fi

## remove what `install` put in place; the configuration only when unchanged
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/nestcache $(DESTDIR)$(SBINDIR)/nestcached \
		$(DESTDIR)$(UNITDIR)/nestcached.service $(DESTDIR)$(UNITDIR)/nestcached.socket \
		$(DESTDIR)$(SYSUSERSDIR)/nestcache.conf $(DESTDIR)$(TMPFILESDIR)/nestcache.conf \
		$(DESTDIR)$(MANDIR)/man1/nestcache.1 $(DESTDIR)$(MANDIR)/man8/nestcached.8
	if cmp -s config/nestcached.toml $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml; \
		rmdir $(DESTDIR)$(SYSCONFDIR)/nestcache 2>/dev/null || true; \
	elif [[ -e $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml ]]; then \
		echo "uninstall: keeping the modified $(DESTDIR)$(SYSCONFDIR)/nestcache/nestcached.toml"; \
	fi

build-release:
	$(SWIFT) build -c release --product nestcache
	$(SWIFT) build -c release --product nestcached

build-debug:
	$(SWIFT) build

## benchmarks (scripts/bench.sh)
bench:
	bash scripts/bench.sh

## docs/REPORT.md and docs/report/PRESET/*.svg: `nestcache report` on every preset, with the
## readings it derives from the numbers (scripts/make-report.py; under two minutes)
report:
	$(SWIFT) build -c release --product nestcache
	python3 scripts/make-report.py --bin .build/release/nestcache --out docs/REPORT.md

## only `nestcache replay` vs the C baseline (bench/baseline.c) and libCacheSim, by trace shape
bench-shapes:
	bash scripts/bench.sh shapes

## regenerate samples/web0.trace (deterministic; Tests/oracle checks it is up to date)
sample:
	python3 scripts/make-sample-trace.py -o $(SAMPLE)

clean:
	rm -rf .build .build-* .build_*

distclean: clean
	rm -rf $(VENV)
