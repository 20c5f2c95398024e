#!/usr/bin/env bash
# `make demo`: a Kubernetes pod on berth, end to end, with the installed binaries. The demo
# program (conformance/src/bin/demo-pod.rs) starts berth-snapshotter and a private containerd
# with the CRI plugin, runs a pod of two containers on runtime handler berth through the CRI
# API as kubelet would, execs into it, prints each step and tears everything down.
set -euo pipefail
PREFIX=${PREFIX:-/usr/local}
here=$(cd "$(dirname "$0")/.." && pwd)
demo="$here/target/x86_64-unknown-linux-gnu/release/demo-pod"
[ -x "$demo" ] || cargo build --release -p conformance --bin demo-pod
export BERTH="$PREFIX/bin/berth" BERTH_SHIM="$PREFIX/bin/containerd-shim-berth-v2" \
  BERTH_SNAPSHOTTER="$PREFIX/bin/berth-snapshotter" BERTH_PAUSE="$PREFIX/bin/berth-pause"
exec "$demo"
