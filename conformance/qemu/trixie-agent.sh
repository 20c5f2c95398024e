#!/bin/bash
# berth-agent: runs the host's commands in the trixie test guest (conformance/src/systemd_guest.rs).
# Started by berth-agent.service. Reads lines "<id> <timeout-secs> <base64 script>" from the
# virtio-serial port and answers each with one line
# "BERTH-DONE <id> <exit code> <base64 stdout> <base64 stderr>", in order, one at a time,
# after announcing itself with "BERTH-AGENT-READY".
port=${1:-/dev/virtio-ports/berth.cmd}
# udev names the port shortly after virtio_console loads; poll rather than guess a delay.
until [ -e "$port" ]; do sleep 0.05; done
exec 3<>"$port"
# The host sends nothing before this line: bytes it wrote before the port was open here
# could be lost.
printf 'BERTH-AGENT-READY\n' >&3
out=$(mktemp) err=$(mktemp)
while IFS=' ' read -r id secs b64 <&3; do
	[ -n "$id" ] || continue
	if script=$(printf '%s' "$b64" | base64 -d 2>"$err"); then
		# The script's stdio are files, never pipes: a daemon it starts in the background
		# must not hold the answer back. A hung command costs its timeout, not the boot.
		timeout -k 5 "$secs" bash -c "$script" </dev/null >"$out" 2>"$err"
		rc=$?
	else
		: >"$out"
		rc=254
	fi
	printf 'BERTH-DONE %s %s %s %s\n' "$id" "$rc" "$(base64 -w0 <"$out")" "$(base64 -w0 <"$err")" >&3
done
