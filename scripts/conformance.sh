#!/usr/bin/env bash
# `make conformance`'s test run (BERTH, BERTH_SNAPSHOTTER and the failpoint binaries come from
# the Makefile): the host's conformance binaries with two test threads, then the emulated
# guests in two lanes side by side. Each guest's qemu runs both of its vCPUs on one host
# thread (tcg,thread=single: conformance/src/systemd_guest.rs says why), so one guest keeps
# one of the two cores busy: the Debian 13 binaries, which share one image, in one lane, the
# forky binary in the other. Every binary runs even when an earlier one failed; the exit code
# is non-zero if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

guests=(systemd_guest systemd_guest_selinux forky_guest)
# Targets that need a feature CI does not enable (required-features in conformance/Cargo.toml).
featured=(cri_load soak lsm_applied systemd_cgroup)
host=()
for f in conformance/tests/*.rs; do
  t=$(basename "$f" .rs)
  [[ " ${guests[*]} ${featured[*]} " == *" $t "* ]] || host+=(--test "$t")
done
run_args=(-- --include-ignored --test-threads=2)
cargo_test() { "$CARGO" test --release --no-fail-fast -p conformance "$@"; }

# Every target built once, so that the two lanes below only run binaries.
cargo_test --no-run || exit 1
rc=0
cargo_test --lib --bins "${host[@]}" "${run_args[@]}" || rc=1

log=$(mktemp /tmp/berth-forky-lane.XXXXXX)
# Its own process group: an interrupted run stops the lane's cargo, test binary and qemu.
setsid "$CARGO" test --release --no-fail-fast -p conformance --test forky_guest "${run_args[@]}" >"$log" 2>&1 &
forky=$!
trap 'kill -- -"$forky" 2>/dev/null; rm -f "$log"' EXIT
echo "== forky_guest runs beside the Debian 13 guests; its output follows theirs"
cargo_test --test systemd_guest --test systemd_guest_selinux "${run_args[@]}" || rc=1
wait "$forky" || rc=1
echo "== forky_guest"
cat "$log"
exit "$rc"
