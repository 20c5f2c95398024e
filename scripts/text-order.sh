#!/usr/bin/env bash
# Lays out berth's text for `create` (runtime/text-order.txt), or checks that layout.
#   scripts/text-order.sh write   # after a change to what create runs, or a new toolchain
#   scripts/text-order.sh check   # fails when the checked-in order has drifted
# Builds the release berth with a link map (BERTH_LINK_MAP, read by runtime/build.rs), then
# traces create, start and delete of a busybox bundle one instruction at a time
# (conformance/src/bin/text-order.rs, as root; a few minutes). docs/performance.md, memory.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
rel=target/x86_64-unknown-linux-gnu/release
map=$PWD/target/berth.map
BERTH_LINK_MAP=$map cargo build --release -j1 -p berth --bin berth
cargo build --release -j1 -p conformance --bin text-order
case $mode in
  write)
    "$rel/text-order" write "$rel/berth" "$map" runtime/text-order.txt
    # Relink with the new order and show what it gives.
    BERTH_LINK_MAP=$map cargo build --release -j1 -p berth --bin berth
    "$rel/text-order" check "$rel/berth" "$map" ;;
  check) "$rel/text-order" check "$rel/berth" "$map" ;;
  *) echo "usage: $0 write|check" >&2; exit 2 ;;
esac
