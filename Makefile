# berth: build, install, demo, test, bench. Every target runs as root on Debian.
SHELL := /bin/bash
PREFIX ?= /usr/local
CARGO ?= cargo
RELEASE_DIR := target/x86_64-unknown-linux-gnu/release

# Debian packages the build, the tests and the benchmarks need.
DEB_PACKAGES := build-essential pkg-config jq busybox-static runc crun containerd docker.io tini podman conmon \
	iptables libseccomp-dev protobuf-compiler libprotobuf-dev hyperfine strace qemu-system-x86 linux-image-amd64 \
	containernetworking-plugins iproute2 criu debootstrap uidmap slirp4netns catatonit

.PHONY: deps build install demo demo-docker test lint unit conformance test-load soak bench fuzz fuzz-ci fuzz-build-ci fuzz-deps clean
SHARE := $(DESTDIR)$(PREFIX)/share/berth

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
	install -D -m 0755 $(RELEASE_DIR)/berth-pause $(DESTDIR)$(PREFIX)/bin/berth-pause
	install -D -m 0644 docs/examples/containerd-berth.toml $(SHARE)/containerd-berth.toml
	install -D -m 0644 docs/examples/containerd2-berth.toml $(SHARE)/containerd2-berth.toml
	install -D -m 0644 docs/examples/shim.toml $(SHARE)/shim.toml
	install -D -m 0644 docs/examples/runtimeclass-berth.yaml $(SHARE)/runtimeclass-berth.yaml
	@# A unit for berth-snapshotter where systemd runs; elsewhere docs/operations.md gives the command.
	@if [ -d /run/systemd/system ]; then \
		install -D -m 0644 docs/examples/berth-snapshotter.service $(DESTDIR)/etc/systemd/system/berth-snapshotter.service && \
		systemctl daemon-reload; \
	else echo "no systemd: start the snapshotter with: berth-snapshotter &  (see docs/operations.md)"; fi

demo: install
	./scripts/demo.sh

# Registers berth as a runtime of the machine's Docker (daemon.json) and restarts dockerd.
demo-docker: install
	./scripts/docker-register.sh

# Tests that need root, cgroup v1 or a built binary are #[ignore = "needs …"]: a plain
# `cargo test` lists them as ignored instead of passing them silently, and these targets (CI
# runs them as root on a cgroup v1 hybrid host) run them with --include-ignored. Tests that are
# not for CI (load, soak, the rootfs timing report) sit behind the `manual-tests` feature,
# which no CI target enables.
unit: deps
	$(CARGO) test --workspace --lib --bins -- --include-ignored

# conformance/tests/failpoints.rs walks a debug berth built with the `failpoints` feature,
# conformance/tests/shim_failpoints.rs a debug containerd-shim-berth-v2 built with its own;
# both kept under target/failpoints so that no other binary carries them. The shim keeps its
# name (containerd finds it by name on its PATH) in a directory of its own.
FAILPOINTS_DIR := target/failpoints
FAILPOINTS_BERTH := $(FAILPOINTS_DIR)/berth
FAILPOINTS_SHIM := $(FAILPOINTS_DIR)/shim/containerd-shim-berth-v2

conformance: build
	@# The failpoints build reuses the debug dependencies `make unit` built; its binary is kept
	@# apart, and the ordinary debug binary is relinked without the feature right after.
	$(CARGO) build -p berth --features failpoints --bin berth
	install -D -m 0755 target/x86_64-unknown-linux-gnu/debug/berth $(FAILPOINTS_BERTH)
	$(CARGO) build -p berth --bin berth
	$(CARGO) build -p containerd-shim-berth-v2 --features failpoints --bin containerd-shim-berth-v2
	install -D -m 0755 target/x86_64-unknown-linux-gnu/debug/containerd-shim-berth-v2 $(FAILPOINTS_SHIM)
	$(CARGO) build -p containerd-shim-berth-v2 --bin containerd-shim-berth-v2
	$(CARGO) test --release --no-fail-fast -p berth-snapshotter -p containerd-shim-berth-v2 -- --include-ignored --test-threads=2
	@# conformance/tests/systemd_guest*.rs boot the Debian 13 guest, conformance/tests/forky_guest.rs
	@# the Debian forky one (each built with debootstrap on first use, ~3 and ~7 min, cached in
	@# /var/cache/berth/guests; docs/production-guest.md). The script runs the host's binaries,
	@# then the two guests side by side.
	BERTH=$(CURDIR)/$(RELEASE_DIR)/berth BERTH_SNAPSHOTTER=$(CURDIR)/$(RELEASE_DIR)/berth-snapshotter \
		BERTH_FAILPOINTS=$(CURDIR)/$(FAILPOINTS_BERTH) BERTH_SHIM_FAILPOINTS=$(CURDIR)/$(FAILPOINTS_SHIM) \
		CARGO="$(CARGO)" ./scripts/conformance.sh

# One format (rustfmt.toml) and no clippy warnings, fuzz targets included.
lint: deps
	$(CARGO) fmt --all --check
	cd fuzz && $(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint unit conformance fuzz-ci

# Not in CI: 50 pods x 2 containers through CRI, 4 at a time, on handler berth; prints latency percentiles.
test-load: build
	$(CARGO) test --release -p conformance --features manual-tests --test cri_load -- --ignored --nocapture

# Not in CI: one pod through CRI on handler berth; rounds of 200 containers 32-way for
# SOAK_MINUTES (default 30), then 1000 execs; 0 failures, the shim's fds/threads/memory flat.
# SOAK_CONTAINERS, SOAK_THREADS, SOAK_EXECS override the other figures.
soak: build
	$(CARGO) test --release -p conformance --features manual-tests --test soak -- --ignored --nocapture

# Interleaved berth/runc/crun timings; BENCH_N=<iterations> (default 100). The bench
# binaries run directly, not through `cargo run`, whose extra environment would be copied
# into every runtime invocation.
bench: build
	./scripts/bench-host.sh; trap './scripts/bench-host.sh restore' EXIT; \
	BERTH=$(CURDIR)/$(RELEASE_DIR)/berth $(RELEASE_DIR)/bench && \
	BERTH_SNAPSHOTTER=$(CURDIR)/$(RELEASE_DIR)/berth-snapshotter $(RELEASE_DIR)/bench-snapshotter && \
	$(RELEASE_DIR)/bench-shim && \
	$(RELEASE_DIR)/bench-pod
	@# The same scenarios on a systemd host: the Debian 13 guest (emulated, so ratios only),
	@# with the cgroupfs driver and with --systemd-cgroup, each also without address randomisation
	@# (TCG translates code at a new address afresh: docs/performance.md). BENCH_GUEST_N (default 20).
	BERTH=$(CURDIR)/$(RELEASE_DIR)/berth $(RELEASE_DIR)/bench-guest

# Fuzzing (libFuzzer through libfuzzer-sys; see docs/fuzzing.md). Each target starts from its
# committed seeds in fuzz/corpus/<target> (read only); what the fuzzer adds goes to
# fuzz/target/corpus/<target>. A crash or panic stops that target, saves the input under
# fuzz/artifacts/<target>/, and fails make once every target has had its turn.
#   fuzz-ci (in `make test`): each target 60 s, built with plain cargo and cargo-fuzz's coverage
#     flags, no sanitizer: no cargo-fuzz to install, a fifth less to build, 5-19x more inputs a
#     minute than with ASan (measurements in docs/fuzzing.md); ~10 min on 2 cores.
#   fuzz: each target FUZZ_SECONDS (default 600) s, built by cargo-fuzz with AddressSanitizer.
# Both builds are release with debug assertions and overflow checks (fuzz/Cargo.toml), each
# in a target directory of its own so that neither rebuilds the other.
FUZZ_TARGETS := config_validate dbus_messages mountinfo resolve_in_root seccomp_build shim_ttrpc snapshotter_filters
FUZZ_SECONDS ?= 600
FUZZ_TRIPLE := x86_64-unknown-linux-gnu
# The flags cargo-fuzz 0.13 gives rustc (its src/project.rs) minus the sanitizer: libFuzzer's
# coverage counters, comparison tracing and stack depth, and cfg(fuzzing).
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
	-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing
FUZZ_CI_TARGET_DIR := fuzz/target/nosan
FUZZ_CI_BIN := $(FUZZ_CI_TARGET_DIR)/$(FUZZ_TRIPLE)/release
FUZZ_ASAN_BIN := fuzz/target/$(FUZZ_TRIPLE)/release

# Targets run FUZZ_JOBS at a time (libFuzzer is single-threaded); scripts/fuzz-run.sh.
FUZZ_JOBS ?= $(shell nproc)

# No cargo-fuzz needed: plain cargo with the flags above (RUSTFLAGS replaces .cargo/config.toml's
# crt-static, as cargo-fuzz's does; --target keeps them off build scripts and proc-macros).
fuzz-build-ci: deps
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_TARGET_DIR=$(CURDIR)/$(FUZZ_CI_TARGET_DIR) \
		$(CARGO) build --release --target $(FUZZ_TRIPLE) --bins

fuzz-ci: fuzz-build-ci
	./scripts/fuzz-run.sh $(FUZZ_CI_BIN) 60 $(FUZZ_JOBS) $(FUZZ_TARGETS)

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); RUSTC_BOOTSTRAP lets the stable
# toolchain accept them.
fuzz-deps: deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build

fuzz: fuzz-deps
	./scripts/fuzz-run.sh $(FUZZ_ASAN_BIN) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

clean:
	$(CARGO) clean
