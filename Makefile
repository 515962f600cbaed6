# LampCell — the two commands a newcomer needs:
#   make run    installs what is missing, builds, and runs the simulated cell
#   make test   installs what is missing, builds, and runs every test
SHELL := /bin/bash
SWIFT ?= swift
export PATH := $(PATH):/opt/swift/usr/bin

# Debian packages the build, the tests and the simulator need.
DEBIAN_PACKAGES := libmodbus-dev libsystemd-dev pkg-config mbpoll systemd
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build release run sim test clean

all: build

# Installs the Debian packages that are missing (asks apt only when something is missing).
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

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

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

clean:
	rm -rf .build
