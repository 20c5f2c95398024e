#!/usr/bin/env bash
# Lays out berth's text for `create` (runtime/text-order.txt), or checks that layout.
#   scripts/text-order.sh write   # after a change to what create runs, or a new toolchain
#   scripts/text-order.sh check   # fails when the checked-in order has drifted
# Builds the release berth as `make build` does, the whole workspace at once, with a link map
# (BERTH_LINK_MAP, read by runtime/build.rs): the order names symbols, whose hashes follow the
# features cargo unifies over the packages it builds, so a `-p berth` build has other names
# for a third of them and is not the binary we ship. Then it
# traces create, start, delete and run of a busybox bundle one instruction at a time
# (conformance/src/bin/text-order.rs, as root; a few minutes). docs/performance.md, memory.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
rel=target/x86_64-unknown-linux-gnu/release
map=$PWD/target/berth.map
# The workspace build also builds the tracer (conformance/src/bin/text-order.rs).
build() { BERTH_LINK_MAP=$map cargo build --release --workspace --bins; }
build
case $mode in
  write)
    "$rel/text-order" write "$rel/berth" "$map" runtime/text-order.txt
    # Relink with the new order and show what it gives.
    build
    "$rel/text-order" check "$rel/berth" "$map" ;;
  check) "$rel/text-order" check "$rel/berth" "$map" ;;
  *) echo "usage: $0 write|check" >&2; exit 2 ;;
esac
