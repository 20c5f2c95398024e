#!/usr/bin/env bash
# Runs built libFuzzer targets (make fuzz-ci, make fuzz; docs/fuzzing.md), JOBS at a time:
# libFuzzer is single-threaded, so a 2-core machine runs two targets at once.
#   usage: scripts/fuzz-run.sh BIN_DIR SECONDS JOBS TARGET...
# Each target reads its committed seeds in fuzz/corpus/<target> (read only) and adds what it
# finds to fuzz/target/corpus/<target>. A crash, panic, timeout (10 s) or RSS over 4 GB stops
# that target and saves the input under fuzz/artifacts/<target>/. libFuzzer's output goes to
# fuzz/target/log/<target>.log; this prints each target's executions, and the log's tail for a
# target that failed. Exits 1 if any target failed, once all have run.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { echo "usage: $0 BIN_DIR SECONDS JOBS TARGET..." >&2; exit 2; }
export FUZZ_BIN=$1 FUZZ_SECONDS=$2
jobs=$3
shift 3

one() {
	local t=$1
	# TMPDIR: the target's scratch bundles and trees, one directory per target since two run at once.
	mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t" "fuzz/target/tmp/$t"
	rm -f "fuzz/target/log/$t.failed"
	if ! TMPDIR="$PWD/fuzz/target/tmp/$t" ASAN_OPTIONS=detect_odr_violation=0 "$FUZZ_BIN/$t" \
		-artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-rss_limit_mb=4096 -print_final_stats=1 "fuzz/target/corpus/$t" "fuzz/corpus/$t" \
		>"fuzz/target/log/$t.log" 2>&1; then
		touch "fuzz/target/log/$t.failed"
	fi
	rm -rf "fuzz/target/tmp/$t"
}
export -f one

mkdir -p fuzz/target/log
echo "fuzz: $# targets for $FUZZ_SECONDS s each, $jobs at a time, from $FUZZ_BIN"
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'one {}'

failed=
for t in "$@"; do
	log=fuzz/target/log/$t.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	added=$(sed -n 's/^stat::new_units_added: *//p' "$log")
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
	if [ -e "fuzz/target/log/$t.failed" ] || [ ! -s "$log" ]; then
		failed="$failed $t"
		echo "== $t: FAILED ($log)"
		tail -n 40 "$log"
	else
		echo "== $t: ${execs:-?} executions in ${secs:-?} s, ${added:-?} new inputs, no crash"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: crashes in$failed (inputs in fuzz/artifacts/; docs/fuzzing.md#a-crash)"
	exit 1
fi
