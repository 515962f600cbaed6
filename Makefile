# LampCell — the two commands a newcomer needs:
#   make run    installs what is missing, builds, and runs the simulated cell
#   make test   installs what is missing, builds, and runs every test and the CI fault campaign
#   make bench  benchmarks (release build, ~25 min with the plant item, 11 of them; docs/BENCHMARKS.md); BENCH=1,3 or BENCH=modbus picks items
SHELL := /bin/bash
SWIFT ?= swift
export PATH := $(PATH):/opt/swift/usr/bin

# Debian packages the build, the tests and the simulator need (libpq: the plant database client; postgresql-15:
# the private server the plant tests start).
DEBIAN_PACKAGES := libmodbus-dev libsystemd-dev libpq-dev postgresql-15 openssl pkg-config mbpoll systemd
# Only `make test` needs these: the operator panel's browser tests (headless Chromium over WebDriver) and the
# shift report's PDF check (pdftoppm, pdftotext). `lampctl report` prints PDFs with Chromium too.
TEST_PACKAGES := chromium chromium-driver poppler-utils fonts-dejavu-core
# Only `make bench` needs these: cyclictest (the machine's own wake-up latency) and a C compiler for the C client.
BENCH_PACKAGES := rt-tests build-essential curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps test-deps bench-deps build release run sim test bench clean install

all: build

# Installs the Debian packages of $(1) that are missing (asks apt only when something is missing).
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEBIAN_PACKAGES))

test-deps: deps
	$(call install_missing,$(TEST_PACKAGES))

bench-deps: deps
	$(call install_missing,$(BENCH_PACKAGES))

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Runs the daemon against the simulated cell (served in-process on loopback ports over Modbus TCP), producing
# lamps; one log line per lamp. Ctrl-C: controlled stop. LAMPS=N stops after N lamps.
LAMPS ?=
run: deps
	$(SWIFT) build --product lampcelld
	$$($(SWIFT) build --show-bin-path)/lampcelld --config Systemd/lampcelld-dev.toml --simulate --auto-start \
	  $(if $(LAMPS),--lamps $(LAMPS))

# Serves only the simulated cell (for mbpoll or a lampcelld elsewhere); fault injection on stdin.
sim: deps
	$(SWIFT) build --product lampsim
	$$($(SWIFT) build --show-bin-path)/lampsim serve --cell Hardware/cell.toml

# Every test (debug build), and the CI fault campaign: CAMPAIGN_SEEDS seeded virtual-time shifts of CAMPAIGN_HOURS
# simulated hours each, every fault kind, invariants checked every period (docs/RELIABILITY.md), in a release build of
# lampsim (about 8.5 s of CPU per simulated hour; a debug build is ~60 times slower). The campaign's release build and
# run go beside the tests at nice 19, in their own build folder (CAMPAIGN_BUILD): the tests' real-time threads are
# SCHED_FIFO when run as root, and the rest of the tests mostly wait on real time, so the campaign takes the idle CPU.
# It runs one seed at a time (CAMPAIGN_JOBS), so that one core stays free for the real-time end-to-end tests, whose
# timing checks (the API load test, the hostile device) compare against quiet windows; with both cores taken by the
# campaign they failed now and then. 40 seeds then end before the tests do, and keep `make test` under 20 minutes on
# 2 cores; the 200-seed run is measured in docs/RELIABILITY.md.
CAMPAIGN_SEEDS ?= 40
CAMPAIGN_JOBS ?= 1
CAMPAIGN_HOURS ?= 1
CAMPAIGN_BUILD ?= .build-campaign
# SIGKILLs of the real-time crash test in `make test` (the test's own default, run alone, is 50; docs/RELIABILITY.md
# has the 200-kill run). 12 keeps `make test` under 20 minutes on 2 cores with the plant database and the panel tests.
CRASH_KILLS ?= 12
test: test-deps
	$(SWIFT) build --build-tests
	@mkdir -p $(CAMPAIGN_BUILD); rm -f $(CAMPAIGN_BUILD)/ci-campaign.log $(CAMPAIGN_BUILD)/ci-campaign.status
	@( nice -n 19 $(SWIFT) build -c release --product lampsim --scratch-path $(CAMPAIGN_BUILD) > $(CAMPAIGN_BUILD)/ci-campaign.log 2>&1 \
	   && nice -n 19 $(CAMPAIGN_BUILD)/release/lampsim campaign --seeds $(CAMPAIGN_SEEDS) --hours $(CAMPAIGN_HOURS) \
	        --jobs $(CAMPAIGN_JOBS) >> $(CAMPAIGN_BUILD)/ci-campaign.log 2>&1; echo $$? > $(CAMPAIGN_BUILD)/ci-campaign.status ) & \
	tests=0; LAMPCELL_CRASH_KILLS=$${LAMPCELL_CRASH_KILLS:-$(CRASH_KILLS)} $(SWIFT) test --skip-build --no-parallel || tests=$$?; \
	echo "make test: tests done (exit $$tests); waiting for the campaign (log: $(CAMPAIGN_BUILD)/ci-campaign.log)"; wait; \
	echo "--- CI fault campaign ($(CAMPAIGN_SEEDS) seeds x $(CAMPAIGN_HOURS) h, release lampsim) ---"; \
	cat $(CAMPAIGN_BUILD)/ci-campaign.log | grep -v '^\[' ; campaign=$$(cat $(CAMPAIGN_BUILD)/ci-campaign.status 2>/dev/null || echo 1); \
	echo "make test: tests exit $$tests, campaign exit $$campaign"; test $$tests -eq 0 -a $$campaign -eq 0

# Every benchmark of docs/BENCHMARKS.md in one run (release build), one table, also written to
# .build/bench/latest.md. Not part of `make test`. BENCH=1,3,7 (or control,work,modbus,motion,cycle,shift,ledger,slow,plant,
# footprint,planner) picks items; BENCH_SCALE=0.1 shortens every window (a smoke run). Run as root for SCHED_FIFO.
BENCH ?=
BENCH_SCALE ?=
bench: bench-deps
	$(SWIFT) build -c release --product lampcelld
	$(SWIFT) build -c release --product lampsim
	$(SWIFT) build -c release --product lampbench
	$$($(SWIFT) build -c release --show-bin-path)/lampbench $(if $(BENCH),--only $(BENCH)) \
	  $(if $(BENCH_SCALE),--scale $(BENCH_SCALE))

clean:
	rm -rf .build

# Installs the daemon as a systemd service (docs/SYSTEMD.md): binaries, units, sysusers/tmpfiles snippets, the
# Hardware definitions and the default configuration (kept when one is already there). Honours DESTDIR and PREFIX;
# /usr/local in the units and the config is replaced by PREFIX, so the config names where the Hardware files went.
#   make install                                   release build, into /usr/local (units in /usr/local/lib/systemd)
#   make install DESTDIR=/tmp/root PREFIX=/usr     staged tree, e.g. for a package
#   make install CONFIGURATION=debug               a debug build
#   make install BIN_DIR=.build/debug              install binaries already built there (no swift build)
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
CONFIGURATION ?= release
BIN_DIR ?=
INSTALL_BINARIES := lampcelld lampsim
UNIT_DIR = $(PREFIX)/lib/systemd/system
SYSUSERS_DIR = $(PREFIX)/lib/sysusers.d
TMPFILES_DIR = $(PREFIX)/lib/tmpfiles.d
DATA_DIR = $(PREFIX)/share/lampcell
DOC_DIR = $(PREFIX)/share/doc/lampcell
INSTALL_SED = sed -e 's|/usr/local|$(PREFIX)|g' -e 's|/etc/lampcelld|$(SYSCONFDIR)/lampcelld|g'

install: $(if $(BIN_DIR),,deps)
	@set -euo pipefail; \
	if [ -n "$(BIN_DIR)" ]; then bin="$(BIN_DIR)"; else \
	  for p in $(INSTALL_BINARIES); do $(SWIFT) build -c $(CONFIGURATION) --product $$p; done; \
	  bin="$$($(SWIFT) build -c $(CONFIGURATION) --show-bin-path)"; fi; \
	for p in $(INSTALL_BINARIES); do install -D -m 0755 "$$bin/$$p" "$(DESTDIR)$(PREFIX)/bin/$$p"; done; \
	install -d -m 0755 "$(DESTDIR)$(UNIT_DIR)" "$(DESTDIR)$(SYSUSERS_DIR)" "$(DESTDIR)$(TMPFILES_DIR)" \
	  "$(DESTDIR)$(DATA_DIR)/Hardware/recipes" "$(DESTDIR)$(DOC_DIR)" "$(DESTDIR)$(SYSCONFDIR)/lampcelld"; \
	for u in lampcelld.service lampcelld.socket; do \
	  $(INSTALL_SED) "Systemd/$$u" > "$(DESTDIR)$(UNIT_DIR)/$$u"; chmod 0644 "$(DESTDIR)$(UNIT_DIR)/$$u"; done; \
	install -m 0644 Systemd/sysusers.d/lampcell.conf "$(DESTDIR)$(SYSUSERS_DIR)/lampcell.conf"; \
	install -m 0644 Systemd/tmpfiles.d/lampcell.conf "$(DESTDIR)$(TMPFILES_DIR)/lampcell.conf"; \
	install -m 0644 Hardware/cell.toml Hardware/README.md "$(DESTDIR)$(DATA_DIR)/Hardware/"; \
	install -m 0644 Hardware/recipes/*.toml "$(DESTDIR)$(DATA_DIR)/Hardware/recipes/"; \
	install -m 0644 docs/SYSTEMD.md "$(DESTDIR)$(DOC_DIR)/SYSTEMD.md"; \
	config="$(DESTDIR)$(SYSCONFDIR)/lampcelld/lampcelld.toml"; \
	if [ -e "$$config" ]; then \
	  $(INSTALL_SED) Systemd/lampcelld.toml > "$$config.default"; chmod 0644 "$$config.default"; \
	  echo "make install: kept $$config; the new default is $$config.default"; \
	else $(INSTALL_SED) Systemd/lampcelld.toml > "$$config"; chmod 0644 "$$config"; fi; \
	echo "make install: installed into $(DESTDIR)$(PREFIX) (config $(DESTDIR)$(SYSCONFDIR)/lampcelld)"; \
	if [ -z "$(DESTDIR)" ]; then echo "next: systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload;" \
	  "systemctl enable --now lampcelld.socket lampcelld.service"; fi
