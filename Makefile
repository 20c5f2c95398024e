# berth: build, install, demo, test, bench. Every target runs as root on Debian.
SHELL := /bin/bash
PREFIX ?= /usr/local
CARGO ?= cargo
RELEASE_DIR := target/x86_64-unknown-linux-gnu/release

# Debian packages the build, the tests and the benchmarks need.
DEB_PACKAGES := build-essential pkg-config jq busybox-static runc crun containerd docker.io \
	iptables libseccomp-dev protobuf-compiler hyperfine strace qemu-system-x86 linux-image-amd64

.PHONY: deps build install demo test unit conformance bench clean

deps:
	@if ! dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PACKAGES); \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup)"; exit 1; }

build: deps
	$(CARGO) build --release --workspace --bins

install: build
	install -D -m 0755 $(RELEASE_DIR)/berth $(DESTDIR)$(PREFIX)/bin/berth
	install -D -m 0755 $(RELEASE_DIR)/berth-snapshotter $(DESTDIR)$(PREFIX)/bin/berth-snapshotter
	install -D -m 0755 $(RELEASE_DIR)/containerd-shim-berth-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-berth-v2

demo: install
	./scripts/demo.sh

unit: deps
	$(CARGO) test --workspace --lib --bins

conformance: build
	$(CARGO) test --release --no-fail-fast -p berth-snapshotter -p containerd-shim-berth-v2 -- --test-threads=2
	BERTH=$(CURDIR)/$(RELEASE_DIR)/berth BERTH_SNAPSHOTTER=$(CURDIR)/$(RELEASE_DIR)/berth-snapshotter \
		$(CARGO) test --release --no-fail-fast -p conformance -- --test-threads=2

test: unit conformance

# Interleaved berth/runc/crun timings; BENCH_N=<iterations> (default 100). The bench
# binaries run directly, not through `cargo run`, whose extra environment would be copied
# into every runtime invocation.
bench: build
	./scripts/bench-host.sh
	BERTH=$(CURDIR)/$(RELEASE_DIR)/berth $(RELEASE_DIR)/bench
	BERTH_SNAPSHOTTER=$(CURDIR)/$(RELEASE_DIR)/berth-snapshotter $(RELEASE_DIR)/bench-snapshotter
	$(RELEASE_DIR)/bench-shim

clean:
	$(CARGO) clean
