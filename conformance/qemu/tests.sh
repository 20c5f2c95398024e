# Guest tests of berth on pure cgroup v2; sourced by /init (busybox sh).
#
# Every test prints exactly one line:
#     BERTH-RESULT <name> PASS|FAIL <detail>
# and the host's tests/cgroup_v2.rs asserts one #[test] per name.
#
# The bundles under /bundles/<name> are written by the host
# (conformance/src/qemu.rs, fn guest_bundles) from `berth spec`; each uses
# the shared read-only busybox root /rootfs and linux.cgroupsPath
# /berth-test/<name>. What each container runs is repeated above the test
# that uses it, with the limits the test expects.

STATE=/run/berth-state
PARENT=/sys/fs/cgroup/berth-test

# Bounded, so a hung berth costs one test, not the whole guest run.
berth() { timeout 60 /bin/berth --root "$STATE" "$@"; }

# create + start NAME, the container's stdio and berth's errors going to
# /tmp/NAME.log: a command substitution would wait for the container too,
# since its init inherits the pipe.
create_start() {
	berth create -b "/bundles/$1" "$1" >"/tmp/$1.log" 2>&1 && berth start "$1" >>"/tmp/$1.log" 2>&1
}

# verdict NAME PROBLEMS DETAIL: PASS when PROBLEMS is empty.
verdict() {
	if [ -z "$2" ]; then s=PASS; else s=FAIL; fi
	echo "BERTH-RESULT $1 $s $(echo "$2 $3" | tr '\n\r' '  ')"
}

# The init pid from `berth state` (JSON on one or many lines).
state_pid() { berth state "$1" | tr -d ' \n' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
state_status() { berth state "$1" | tr -d ' \n' | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'; }

# Polls (bounded, no timing asserted) until the container's status is $2.
wait_status() {
	i=0
	while [ "$(state_status "$1")" != "$2" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$(state_status "$1")" = "$2" ]
}

# Polls until the cgroup $1 holds exactly $2 processes.
wait_procs() {
	i=0
	while [ "$(wc -l <"$1/cgroup.procs")" != "$2" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$(wc -l <"$1/cgroup.procs")" = "$2" ]
}

# basic: sh -c 'cat /proc/self/cgroup; echo hello-v2; exit 7' with a cgroup namespace.
test_run_exit_code_output_and_cgroupns_root() {
	out=$(berth run -b /bundles/basic basic 2>&1)
	rc=$?
	p=""
	[ "$rc" = 7 ] || p="$p exit=$rc(want-7)"
	echo "$out" | grep -qx 'hello-v2' || p="$p no-output"
	echo "$out" | grep -qx '0::/' || p="$p cgroup-not-0::/"
	[ -e "$PARENT/basic" ] && p="$p cgroup-left"
	verdict run_exit_code_output_and_cgroupns_root "$p" "rc=$rc out=[$out]"
}

# placed: sleep 1000.
test_cgroups_path_placement_at_clone_and_delete() {
	p=""
	berth create -b /bundles/placed placed >/tmp/placed.log 2>&1 || p="$p create-failed"
	pid=$(state_pid placed)
	# Before start: the init is still berth's, so its cgroup was set at clone.
	created_cg=$(cat /proc/"$pid"/cgroup 2>&1)
	[ "$created_cg" = "0::/berth-test/placed" ] || p="$p cgroup-at-create=[$created_cg]"
	grep -qx "$pid" "$PARENT/placed/cgroup.procs" || p="$p pid-not-in-cgroup.procs"
	berth start placed >>/tmp/placed.log 2>&1 || p="$p start-failed"
	started_cg=$(cat /proc/"$pid"/cgroup 2>&1)
	[ "$started_cg" = "0::/berth-test/placed" ] || p="$p cgroup-after-start=[$started_cg]"
	berth kill placed KILL || p="$p kill-failed"
	wait_status placed stopped || p="$p not-stopped"
	berth delete placed || p="$p delete-failed"
	[ -e "$PARENT/placed" ] && p="$p cgroup-left-after-delete"
	verdict cgroups_path_placement_at_clone_and_delete "$p" "pid=$pid log=[$(cat /tmp/placed.log)]"
}

# placed (again, under another id): sleep 1000. exec is cloned straight into the
# container's cgroup (CLONE_INTO_CGROUP), or into an existing sub-cgroup with --cgroup.
test_exec_joins_the_container_cgroup_on_v2() {
	p=""
	berth run -d -b /bundles/placed execv2 >/tmp/execv2.log 2>&1 || p="$p run-failed"
	out=$(berth exec execv2 cat /proc/self/cgroup 2>&1) || p="$p exec-failed"
	[ "$out" = "0::/" ] || p="$p exec-cgroup=[$out]"
	berth exec -d --pid-file /tmp/execv2.pid execv2 sleep 1000 >>/tmp/execv2.log 2>&1 || p="$p exec-detach-failed"
	epid=$(cat /tmp/execv2.pid 2>/dev/null)
	host_cg=$(cat /proc/"$epid"/cgroup 2>&1)
	[ "$host_cg" = "0::/berth-test/placed" ] || p="$p exec-host-cgroup=[$host_cg]"
	mkdir "$PARENT/placed/sub"
	sub=$(berth exec --cgroup sub execv2 cat /proc/self/cgroup 2>&1) || p="$p exec-sub-failed"
	[ "$sub" = "0::/sub" ] || p="$p exec-sub-cgroup=[$sub]"
	berth exec --cgroup ../x execv2 true 2>/dev/null && p="$p dotdot-accepted"
	berth delete -f execv2 || p="$p delete-failed"
	[ -e "$PARENT/placed" ] && p="$p cgroup-left"
	verdict exec_joins_the_container_cgroup_on_v2 "$p" "out=[$out] host=[$host_cg] sub=[$sub] log=[$(cat /tmp/execv2.log)]"
}

# limits: sleep 1000; memory.limit 64 MiB, cpu shares 1024 quota 50000
# period 100000, pids.limit 20.
test_resources_written_to_v2_files() {
	p=""
	d="$PARENT/limits"
	create_start limits || p="$p create-start-failed"
	got="memory.max=$(cat $d/memory.max) cpu.max=$(cat $d/cpu.max) cpu.weight=$(cat $d/cpu.weight) pids.max=$(cat $d/pids.max)"
	want="memory.max=67108864 cpu.max=50000 100000 cpu.weight=39 pids.max=20"
	[ "$got" = "$want" ] || p="$p got=[$got] want=[$want]"
	berth kill limits KILL
	wait_status limits stopped || p="$p not-stopped"
	berth delete limits || p="$p delete-failed"
	[ -e "$d" ] && p="$p cgroup-left"
	verdict resources_written_to_v2_files "$p" "$got log=[$(cat /tmp/limits.log)]"
}

# limits2: sleep 1000; memory limit 64 MiB swap 128 MiB reservation 32 MiB,
# cpu quota 20000 period 100000 burst 10000 idle 1 cpus "0" mems "0", pids.limit 20,
# hugepageLimits 2MB 4 MiB, unified memory.high=50331648 pids.max=7 (unified
# is written last, so it wins over pids.limit).
test_more_resources_written_to_v2_files() {
	p=""
	d="$PARENT/limits2"
	create_start limits2 || p="$p create-start-failed"
	got=""
	for f in memory.max memory.swap.max memory.low memory.high cpu.max cpu.max.burst cpu.idle \
		cpuset.cpus cpuset.mems hugetlb.2MB.max pids.max; do
		got="$got $f=$(cat $d/$f 2>&1)"
	done
	want=" memory.max=67108864 memory.swap.max=67108864 memory.low=33554432 memory.high=50331648"
	want="$want cpu.max=20000 100000 cpu.max.burst=10000 cpu.idle=1 cpuset.cpus=0 cpuset.mems=0"
	want="$want hugetlb.2MB.max=4194304 pids.max=7"
	[ "$got" = "$want" ] || p="$p got=[$got] want=[$want]"
	berth delete --force limits2 || p="$p delete-failed"
	[ -e "$d" ] && p="$p cgroup-left"
	verdict more_resources_written_to_v2_files "$p" "$got log=[$(cat /tmp/limits2.log)]"
}

# edges: sleep 1000; memory limit -1 swap -1, cpu shares 262144 (the top of
# the v1 scale) quota -1 period 100000, pids.limit -1, blockIO weight 500.
test_resource_edge_values_on_v2() {
	p=""
	d="$PARENT/edges"
	create_start edges || p="$p create-start-failed"
	got=""
	for f in memory.max memory.swap.max cpu.weight cpu.max pids.max io.weight; do
		got="$got $f=$(cat $d/$f 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	done
	want=" memory.max=max memory.swap.max=max cpu.weight=10000 cpu.max=max 100000"
	want="$want pids.max=max io.weight=default 4950"
	[ "$got" = "$want" ] || p="$p got=[$got] want=[$want]"
	berth delete --force edges || p="$p delete-failed"
	[ -e "$d" ] && p="$p cgroup-left"
	verdict resource_edge_values_on_v2 "$p" "$got log=[$(cat /tmp/edges.log)]"
}

# shared1, shared2: sleep 1000 in /berth-shared/shared1 and .../shared2;
# nobody made /berth-shared before, so shared1's create makes it. Deleting
# shared1 must leave it to shared2. Like runc, berth then leaves it behind
# when shared2 goes (only its creator removes a parent); the detail says
# whether it was, and the test removes it for the leak check.
test_parent_cgroup_outlives_first_delete() {
	p=""
	top=/sys/fs/cgroup/berth-shared
	create_start shared1 || p="$p create-start-1-failed"
	create_start shared2 || p="$p create-start-2-failed"
	berth delete --force shared1 || p="$p delete-1-failed"
	[ -d "$top/shared2" ] || p="$p parent-removed-under-shared2"
	[ "$(state_status shared2)" = running ] || p="$p shared2-not-running"
	berth delete --force shared2 || p="$p delete-2-failed"
	left=$(find "$top" -mindepth 1 -type d 2>/dev/null | tr '\n' ' ')
	[ -z "$left" ] || p="$p children-left=[$left]"
	parent=removed
	[ -e "$top" ] && parent=left-behind
	rmdir "$top" 2>/dev/null
	verdict parent_cgroup_outlives_first_delete "$p" "parent=$parent log=[$(cat /tmp/shared1.log /tmp/shared2.log)]"
}

# cgmount: pids.limit 9; prints its /sys/fs/cgroup/pids.max, how many
# "berth-test" entries it sees there, whether the mount is a read-only cgroup2.
test_cgroup_mount_shows_own_cgroup() {
	out=$(berth run -b /bundles/cgmount cgmount 2>&1)
	rc=$?
	p=""
	[ "$rc" = 0 ] || p="$p exit=$rc"
	echo "$out" | grep -qx 'pids.max=9' || p="$p not-own-pids.max"
	echo "$out" | grep -qx 'parent-visible=0' || p="$p host-hierarchy-visible"
	echo "$out" | grep -qx 'cgroup2-ro=1' || p="$p not-a-ro-cgroup2-mount"
	verdict cgroup_mount_shows_own_cgroup "$p" "rc=$rc out=[$out]"
}

# devdeny: default deny-all (+ runc's default allows, added by berth), CAP_MKNOD:
#   echo x >/dev/null && echo null-ok
#   mknod /dev/sda b 8 0 && echo mknod-ok
#   head -c1 /dev/sda; echo read-rc=$?
#   mknod /dev/kmsg c 1 11 && echo x >/dev/kmsg; echo kmsg-rc=$?
test_ebpf_device_filter_denies_unlisted_devices() {
	out=$(berth run -b /bundles/devdeny devdeny 2>&1)
	rc=$?
	p=""
	echo "$out" | grep -qx 'null-ok' || p="$p dev-null-unusable"
	echo "$out" | grep -qx 'mknod-ok' || p="$p mknod-denied"
	echo "$out" | grep -q '/dev/sda: Operation not permitted' || p="$p sda-read-not-EPERM"
	echo "$out" | grep -qx 'read-rc=1' || p="$p sda-read-succeeded"
	echo "$out" | grep -q '/dev/kmsg: Operation not permitted' || p="$p kmsg-write-not-EPERM"
	verdict ebpf_device_filter_denies_unlisted_devices "$p" "rc=$rc out=[$out]"
}

# devallow: linux.devices holds /dev/kmsg (c 1:11) and linux.resources.devices allows it;
#   echo berth-devallow-ok >/dev/kmsg.
test_ebpf_device_filter_allows_listed_device() {
	out=$(berth run -b /bundles/devallow devallow 2>&1)
	rc=$?
	p=""
	[ "$rc" = 0 ] || p="$p exit=$rc"
	dmesg | grep -q 'berth-devallow-ok' || p="$p message-not-in-kernel-log"
	verdict ebpf_device_filter_allows_listed_device "$p" "rc=$rc out=[$out]"
}

# devorder: devices [allow a *:* rwm, deny c *:11 w] (+ runc's defaults), CAP_MKNOD:
#   mknod /dev/sda b 8 0; head -c1 /dev/sda; echo sda-rc=$?
#   mknod /dev/kmsg c 1 11 && echo x >/dev/kmsg; echo kmsg-rc=$?
#   echo x >/dev/null && echo null-ok
test_ebpf_device_filter_last_matching_rule_wins() {
	out=$(berth run -b /bundles/devorder devorder 2>&1)
	rc=$?
	p=""
	# Allowed by the filter, the open reaches the block layer: no such disk.
	echo "$out" | grep -q '/dev/sda: No such device or address' || p="$p sda-not-ENXIO"
	echo "$out" | grep -q '/dev/kmsg: Operation not permitted' || p="$p kmsg-write-not-EPERM"
	echo "$out" | grep -qx 'null-ok' || p="$p dev-null-unusable"
	verdict ebpf_device_filter_last_matching_rule_wins "$p" "rc=$rc out=[$out]"
}

# devblock: deny-all + "b 8:0 r" (+ runc's defaults), CAP_MKNOD:
#   mknod /dev/sda b 8 0; mknod /dev/sdb b 8 16
#   head -c1 /dev/sda; echo sda-read-rc=$?
#   echo x >/dev/sda; echo sda-write-rc=$?
#   head -c1 /dev/sdb; echo sdb-read-rc=$?
test_ebpf_device_filter_matches_type_numbers_and_access() {
	out=$(berth run -b /bundles/devblock devblock 2>&1)
	rc=$?
	p=""
	# Allowed: the open reaches the block layer, which has no such disk.
	echo "$out" | grep -q 'head: /dev/sda: No such device or address' || p="$p sda-read-not-ENXIO"
	echo "$out" | grep -q "can't create /dev/sda: Operation not permitted" || p="$p sda-write-not-EPERM"
	echo "$out" | grep -q 'head: /dev/sdb: Operation not permitted' || p="$p sdb-read-not-EPERM"
	verdict ebpf_device_filter_matches_type_numbers_and_access "$p" "rc=$rc out=[$out]"
}

# outer: sleep 1000 in /berth-test/outer (default device rules).
# inner: in /berth-test/outer/inner, lists /dev/kmsg in linux.devices:
#   echo x >/dev/null && echo null-ok; echo x >/dev/kmsg; echo kmsg-rc=$?
# Both filters are attached with BPF_F_ALLOW_MULTI, so the kernel runs both
# and the outer one still denies kmsg.
test_ebpf_device_filter_of_parent_still_applies_to_nested_container() {
	p=""
	create_start outer || p="$p outer-create-start-failed"
	out=$(berth run -b /bundles/inner inner 2>&1)
	rc=$?
	# Enabling controllers in a cgroup that holds processes can turn it into
	# a thread root, after which no domain child can hold a process.
	outer_state="subtree_control=[$(cat $PARENT/outer/cgroup.subtree_control)] type=$(cat $PARENT/outer/cgroup.type)"
	echo "$out" | grep -qx 'null-ok' || p="$p dev-null-unusable"
	echo "$out" | grep -q '/dev/kmsg: Operation not permitted' || p="$p kmsg-not-EPERM"
	[ -e "$PARENT/outer/inner" ] && p="$p inner-cgroup-left"
	berth delete --force outer || p="$p outer-delete-failed"
	[ -e "$PARENT/outer" ] && p="$p outer-cgroup-left"
	verdict ebpf_device_filter_of_parent_still_applies_to_nested_container "$p" "rc=$rc $outer_state out=[$out] log=[$(cat /tmp/outer.log)]"
}

# pids: pids.limit 5; sh (1 process) starts `sleep 100 &` 20 times, printing
# "forked N" after each; the shell gives up at the first failed fork.
test_pids_max_enforced() {
	out=$(berth run -b /bundles/pids pids 2>&1)
	rc=$?
	n=$(echo "$out" | grep -c '^forked ')
	p=""
	# The shell is the 1st of 5 allowed processes: 4 sleeps fit.
	[ "$n" = 4 ] || p="$p forks=$n(want-4)"
	echo "$out" | grep -q "can't fork" || p="$p no-fork-failure"
	verdict pids_max_enforced "$p" "forks=$n rc=$rc out=[$out]"
}

# oom: memory.limit 16 MiB; `tail /dev/zero` buffers an endless line.
test_memory_max_oom_kills() {
	out=$(berth run -b /bundles/oom oom 2>&1)
	rc=$?
	p=""
	[ "$rc" = 137 ] || p="$p exit=$rc(want-137)"
	kl=$(dmesg | grep 'oom-kill:' | grep 'oom_memcg=/berth-test/oom' | tail -n1)
	[ -n "$kl" ] || p="$p no-memcg-oom-kill-in-kernel-log"
	verdict memory_max_oom_kills "$p" "rc=$rc kernel=[$kl] out=[$out]"
}

# killall: sh -c 'sleep 1000 & sleep 1000 & wait'.
test_kill_all_signals_every_process() {
	p=""
	d="$PARENT/killall"
	create_start killall || p="$p create-start-failed"
	wait_procs "$d" 3 || p="$p not-3-procs=[$(cat $d/cgroup.procs | tr '\n' ,)]"
	berth kill --all killall KILL || p="$p kill-all-failed"
	wait_procs "$d" 0 || p="$p survivors=[$(cat $d/cgroup.procs | tr '\n' ,)]"
	wait_status killall stopped || p="$p not-stopped"
	berth delete killall || p="$p delete-failed"
	[ -e "$d" ] && p="$p cgroup-left"
	verdict kill_all_signals_every_process "$p" "log=[$(cat /tmp/killall.log)]"
}

# ops: a counting loop plus a sleep; memory 64 MiB, pids 20.
test_ps_pause_events_update_on_cgroup_v2() {
	p=""
	d="$PARENT/ops"
	mkdir -p /tmp/opsobs
	create_start ops || p="$p create-start-failed"
	wait_procs "$d" 3 || p="$p not-3-procs=[$(cat $d/cgroup.procs | tr '\n' ,)]"
	pj=$(berth ps --format json ops)
	n=$(echo "$pj" | tr ',' '\n' | grep -c '[0-9]')
	[ "$n" -ge 2 ] || p="$p ps-json=[$pj]"
	berth ps ops | head -n1 | grep -q PID || p="$p ps-table-no-header"
	berth pause ops || p="$p pause-failed"
	[ "$(cat $d/cgroup.freeze)" = 1 ] || p="$p cgroup.freeze-not-1"
	grep -q '^frozen 1' $d/cgroup.events || p="$p not-frozen"
	[ "$(state_status ops)" = paused ] || p="$p status=$(state_status ops)(want-paused)"
	c1=$(cat /tmp/opsobs/count)
	sleep 1
	c2=$(cat /tmp/opsobs/count)
	[ "$c1" = "$c2" ] || p="$p counted-while-paused($c1,$c2)"
	berth pause ops 2>/dev/null && p="$p pause-of-paused-accepted"
	berth resume ops || p="$p resume-failed"
	grep -q '^frozen 0' $d/cgroup.events || p="$p still-frozen"
	[ "$(state_status ops)" = running ] || p="$p status=$(state_status ops)(want-running)"
	berth resume ops 2>/dev/null && p="$p resume-of-running-accepted"
	sleep 1
	c3=$(cat /tmp/opsobs/count)
	[ "$c3" != "$c2" ] || p="$p not-counting-after-resume"
	ev=$(berth events --stats ops)
	echo "$ev" | grep -q '^{"type":"stats","id":"ops","data":{"cpu":{"usage":{"total":[1-9]' || p="$p no-cpu-stats"
	echo "$ev" | grep -q '"pids":{"current":[23],"limit":20}' || p="$p pids-stats"
	echo "$ev" | grep -q '"memory":{[^}]*"usage":{"limit":67108864,"usage":[1-9]' || p="$p memory-stats"
	berth update --memory 100m --pids-limit 30 --cpu-quota 20000 --cpu-period 100000 --cpu-share 512 ops || p="$p update-failed"
	[ "$(cat $d/memory.max)" = 104857600 ] || p="$p memory.max=$(cat $d/memory.max)"
	[ "$(cat $d/pids.max)" = 30 ] || p="$p pids.max=$(cat $d/pids.max)"
	[ "$(cat $d/cpu.max)" = "20000 100000" ] || p="$p cpu.max=$(cat $d/cpu.max)"
	[ "$(cat $d/cpu.weight)" = 20 ] || p="$p cpu.weight=$(cat $d/cpu.weight)"
	echo '{"pids":{"limit":40},"memory":{"reservation":33554432}}' | berth update -r - ops || p="$p update-stdin-failed"
	[ "$(cat $d/pids.max)" = 40 ] || p="$p pids.max=$(cat $d/pids.max)(want-40)"
	[ "$(cat $d/memory.low)" = 33554432 ] || p="$p memory.low=$(cat $d/memory.low)"
	[ "$(cat $d/memory.max)" = 104857600 ] || p="$p memory.max-lost=$(cat $d/memory.max)"
	echo '{"unified":{"memory.high":"94371840"},"cpu":{"burst":5000}}' | berth update -r - ops || p="$p update-unified-failed"
	[ "$(cat $d/memory.high)" = 94371840 ] || p="$p memory.high=$(cat $d/memory.high)"
	[ "$(cat $d/cpu.max.burst)" = 5000 ] || p="$p cpu.max.burst=$(cat $d/cpu.max.burst)"
	[ "$(cat $d/cpu.max)" = "20000 100000" ] || p="$p cpu.max-lost=$(cat $d/cpu.max)"
	berth update --blkio-weight 5 ops 2>/dev/null && p="$p bad-weight-accepted"
	berth update --memory 200m --memory-swap 100m ops 2>/dev/null && p="$p swap-below-limit-accepted"
	[ "$(cat $d/memory.max)" = 104857600 ] || p="$p bad-update-changed-memory.max"
	berth delete --force ops || p="$p delete-failed"
	[ -e "$d" ] && p="$p cgroup-left"
	verdict ps_pause_events_update_on_cgroup_v2 "$p" "ps=[$pj] counts=$c1,$c2,$c3 stats=[$(echo "$ev" | cut -c1-300)] log=[$(cat /tmp/ops.log)]"
}

# opskill: a paused container is SIGKILLed, or deleted with --force.
test_kill_and_delete_of_paused_on_cgroup_v2() {
	p=""
	d="$PARENT/opskill"
	create_start opskill || p="$p create-start-failed"
	wait_procs "$d" 2 || p="$p not-2-procs"
	berth pause opskill || p="$p pause-failed"
	berth kill opskill KILL || p="$p kill-failed"
	wait_status opskill stopped || p="$p not-stopped=$(state_status opskill)"
	berth delete opskill || p="$p delete-failed"
	[ -e "$d" ] && p="$p cgroup-left-after-kill"
	create_start opskill || p="$p recreate-failed"
	wait_procs "$d" 2 || p="$p not-2-procs-again"
	berth pause opskill || p="$p pause2-failed"
	berth delete --force opskill || p="$p delete-force-failed"
	[ -e "$d" ] && p="$p cgroup-left-after-delete-force"
	[ -e "$STATE/opskill" ] && p="$p state-left"
	verdict kill_and_delete_of_paused_on_cgroup_v2 "$p" "log=[$(cat /tmp/opskill.log)]"
}

# sdpath: this guest has no systemd (busybox init): --systemd-cgroup with bt-sd.slice:pfx:sdpath
# is refused in one line naming the flag, and nothing is made (no slice, no state).
test_systemd_cgroups_path_on_cgroup_v2() {
	p=""
	berth --systemd-cgroup create -b /bundles/sdpath sdpath >/tmp/sdpath.log 2>&1 && p="$p create-succeeded"
	grep -q -- "--systemd-cgroup" /tmp/sdpath.log || p="$p flag-not-named"
	[ "$(wc -l </tmp/sdpath.log)" = 1 ] || p="$p not-one-line"
	[ -e /sys/fs/cgroup/bt.slice ] && p="$p slices-made"
	[ -e "$STATE/sdpath" ] && p="$p state-left"
	verdict systemd_cgroups_path_on_cgroup_v2 "$p" "log=[$(cat /tmp/sdpath.log)]"
}

# opsoom: `events` streams stats and reports the OOM kill (memory.events oom_kill), then ends.
test_events_stream_reports_oom_on_cgroup_v2() {
	p=""
	create_start opsoom || p="$p create-start-failed"
	berth events --interval 500ms opsoom >/tmp/opsoom.ev 2>&1
	rc=$?
	[ "$rc" = 0 ] || p="$p events-rc=$rc"
	grep -q '^{"type":"oom","id":"opsoom"}$' /tmp/opsoom.ev || p="$p no-oom-event"
	grep -q '^{"type":"stats","id":"opsoom"' /tmp/opsoom.ev || p="$p no-stats-event"
	berth delete --force opsoom || p="$p delete-failed"
	verdict events_stream_reports_oom_on_cgroup_v2 "$p" "events=[$(cut -c1-80 /tmp/opsoom.ev | tr '\n' '|')]"
}

# force: sleep 1000.
test_delete_force_removes_running_container() {
	p=""
	create_start force || p="$p create-start-failed"
	[ "$(state_status force)" = running ] || p="$p not-running"
	berth delete --force force || p="$p delete-force-failed"
	[ -e "$PARENT/force" ] && p="$p cgroup-left"
	[ -e "$STATE/force" ] && p="$p state-dir-left"
	verdict delete_force_removes_running_container "$p" "log=[$(cat /tmp/force.log)]"
}

# nested: makes /sys/fs/cgroup/sub (rw cgroup mount), moves a `sleep` into
# it and execs another sleep.
test_delete_force_removes_nested_cgroups() {
	p=""
	d="$PARENT/nested"
	create_start nested || p="$p create-start-failed"
	wait_procs "$d/sub" 1 || p="$p sub-cgroup-not-populated"
	berth delete --force nested || p="$p delete-force-failed"
	[ -e "$d" ] && p="$p cgroup-left=[$(find $d | tr '\n' ' ')]"
	[ -e "$STATE/nested" ] && p="$p state-dir-left"
	verdict delete_force_removes_nested_cgroups "$p" "log=[$(cat /tmp/nested.log)]"
}

# nopidns: no pid namespace; sh -c 'sleep 1000 >/dev/null 2>&1 & echo started'.
# The init's death does not take the sleep with it: run must kill it to
# remove the cgroup.
test_run_without_pid_namespace_kills_leftovers() {
	berth run -b /bundles/nopidns nopidns >/tmp/nopidns.log 2>&1
	rc=$?
	p=""
	[ "$rc" = 0 ] || p="$p exit=$rc"
	grep -qx started /tmp/nopidns.log || p="$p no-output"
	[ -e "$PARENT/nopidns" ] && p="$p cgroup-left=[$(cat $PARENT/nopidns/cgroup.procs | tr '\n' ,)]"
	left=$(ps -o pid,args | grep 'sleep 1000' | grep -v grep)
	[ -n "$left" ] && p="$p leftover=[$left]"
	# Whatever happened, leave nothing for the next tests.
	berth delete --force nopidns >/dev/null 2>&1
	echo "$left" | while read -r pid _; do [ -n "$pid" ] && kill -9 "$pid"; done
	verdict run_without_pid_namespace_kills_leftovers "$p" "rc=$rc log=[$(cat /tmp/nopidns.log)]"
}

# busychild: true, cgroupsPath /berth-test/busy/child with a memory limit;
# occupied: true, cgroupsPath /berth-test/busy. The guest keeps a sleep in
# /berth-test/busy, so the kernel will not delegate controllers below it
# (no internal processes) and berth must not reuse it.
test_refusals_leave_the_host_unchanged() {
	p=""
	busy="$PARENT/busy"
	mkdir "$busy"
	sleep 1000 &
	sleeper=$!
	echo "$sleeper" >"$busy/cgroup.procs"
	berth run -b /bundles/busychild busychild >/tmp/busychild.log 2>&1 && p="$p busychild-ran"
	grep -q 'controller is not enabled' /tmp/busychild.log || p="$p unclear-error"
	[ -e "$busy/child" ] && p="$p child-cgroup-left"
	# Threaded controllers enabled here would make busy a thread root.
	sc=$(cat "$busy/cgroup.subtree_control")
	[ -z "$sc" ] && [ "$(cat $busy/cgroup.type)" = domain ] || p="$p busy-changed=[$sc $(cat $busy/cgroup.type)]"
	[ -e "$STATE/busychild" ] && p="$p busychild-state-left"
	berth run -b /bundles/occupied occupied >/tmp/occupied.log 2>&1 && p="$p occupied-ran"
	grep -q 'not empty' /tmp/occupied.log || p="$p occupied-error-unclear"
	grep -qx "$sleeper" "$busy/cgroup.procs" || p="$p sleeper-moved"
	[ -e "$STATE/occupied" ] && p="$p occupied-state-left"
	kill -9 "$sleeper"
	wait "$sleeper" 2>/dev/null
	rmdir "$busy" || p="$p busy-not-removable"
	verdict refusals_leave_the_host_unchanged "$p" "busychild=[$(cat /tmp/busychild.log)] occupied=[$(cat /tmp/occupied.log)]"
}

# defaultpath: sleep 1000, no linux.cgroupsPath: the cgroup is berth's own
# (the root here) + the id.
test_default_cgroup_path_is_own_cgroup_plus_id() {
	p=""
	create_start defaultpath || p="$p create-start-failed"
	pid=$(state_pid defaultpath)
	cg=$(cat /proc/"$pid"/cgroup 2>&1)
	[ "$cg" = "0::/defaultpath" ] || p="$p cgroup=[$cg]"
	berth delete --force defaultpath || p="$p delete-failed"
	[ -e /sys/fs/cgroup/defaultpath ] && p="$p cgroup-left"
	verdict default_cgroup_path_is_own_cgroup_plus_id "$p" "log=[$(cat /tmp/defaultpath.log)]"
}

# After everything: nothing left under the parent cgroup or the state root,
# and no container process alive.
# Checkpoint/restore with Debian's criu. The ckpt bundle (qemu.rs) runs
#     sh -c '<counter loop> & echo $! >/data/loop.pid; wait'
# where the loop rewrites /data/count with 0, 1, 2, ... every 0.1 s; /data is
# the guest's $CK. The container's stdio are pipes, as with containerd:
# criu hands the restored init the restoring berth's own stdio.
CK=/tmp/ckpt-data
# The counter; the loop truncates before it writes, so an empty read is retried.
count() {
	for _ in 1 2 3 4 5; do
		c=$(cat "$CK/count" 2>/dev/null)
		[ -n "$c" ] && break
		sleep 0.02
	done
	echo "${c:--1}"
}

# Polls until the counter is above $1.
wait_count_above() {
	i=0
	while [ "$(count)" -le "$1" ] && [ $i -lt 300 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$(count)" -gt "$1" ]
}

# Polls until file $1 has a line "restore-rc=N"; prints N.
wait_rc() {
	i=0
	while ! grep -q '^restore-rc=' "$1" && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sed -n 's/^restore-rc=//p' "$1"
}

# The pid of host pid $1 inside its innermost pid namespace.
ns_pid() { sed -n 's/^NSpid:.*[^0-9]\([0-9]*\)$/\1/p' "/proc/$1/status"; }

# The host pid of the process in cgroup $1 whose innermost pid is $2.
host_pid_of_ns_pid() {
	for hp in $(cat "$1/cgroup.procs"); do
		[ "$(ns_pid "$hp")" = "$2" ] && echo "$hp"
	done
}

# The end of criu's log $1, on one line (the error and what led to it).
criu_errors() { tail -n 12 "$1" 2>/dev/null | tr '\n' ' '; }

test_checkpoint_leave_running_keeps_counting() {
	p=""
	mkdir -p "$CK"
	echo | berth run -d -b /bundles/ckpt ckpt 2>&1 | cat >/tmp/ckpt.log &
	wait_count_above 3 || p="$p not-counting=[$(count) $(cat /tmp/ckpt.log)]"
	CK_LOOP_NS=$(cat "$CK/loop.pid")
	out=$(berth checkpoint --image-path /tmp/ck-live --leave-running ckpt 2>&1) ||
		p="$p checkpoint-failed=[$out $(criu_errors /tmp/ck-live/dump.log)]"
	[ "$(state_status ckpt)" = running ] || p="$p status=$(state_status ckpt)"
	c=$(count)
	wait_count_above "$c" || p="$p stopped-counting-at-$c"
	ls /tmp/ck-live/*.img >/dev/null 2>&1 || p="$p no-images"
	[ -f /tmp/ck-live/berth-checkpoint.json ] || p="$p no-descriptor"
	verdict checkpoint_leave_running_keeps_counting "$p" "count=$(count) loop-ns-pid=$CK_LOOP_NS"
}

test_checkpoint_stops_container() {
	p=""
	out=$(berth checkpoint --image-path /tmp/ck-stop ckpt 2>&1) ||
		p="$p checkpoint-failed=[$out $(criu_errors /tmp/ck-stop/dump.log)]"
	# As runc, the checkpointed container is destroyed (state, cgroup) by checkpoint itself.
	[ -e "$STATE/ckpt" ] && p="$p state-left=$(state_status ckpt)"
	c1=$(count)
	sleep 0.5
	CK_STOPPED_AT=$(count)
	[ "$c1" = "$CK_STOPPED_AT" ] || p="$p still-counting=$c1->$CK_STOPPED_AT"
	[ -e "$PARENT/ckpt" ] && p="$p cgroup-left"
	verdict checkpoint_stops_container "$p" "stopped-at=$CK_STOPPED_AT"
}

test_restore_continues_count_with_same_pids() {
	p=""
	{
		echo | berth restore -d --image-path /tmp/ck-stop -b /bundles/ckpt ckpt 2>&1
		echo "restore-rc=$?"
	} | cat >/tmp/ckpt-restore.log &
	rc=$(wait_rc /tmp/ckpt-restore.log)
	[ "$rc" = 0 ] || p="$p restore-rc=$rc=[$(cat /tmp/ckpt-restore.log) $(criu_errors /tmp/ck-stop/restore.log)]"
	[ "$(state_status ckpt)" = running ] || p="$p status=$(state_status ckpt)"
	first=$(count)
	[ "$first" -ge "$CK_STOPPED_AT" ] || p="$p restarted-at-$first"
	wait_count_above "$CK_STOPPED_AT" || p="$p not-counting"
	pid=$(state_pid ckpt)
	[ "$(ns_pid "$pid")" = 1 ] || p="$p init-ns-pid=$(ns_pid "$pid")"
	loop=$(host_pid_of_ns_pid "$PARENT/ckpt" "$CK_LOOP_NS")
	[ -n "$loop" ] && grep -q while "/proc/$loop/cmdline" || p="$p no-loop-at-ns-pid-$CK_LOOP_NS"
	cg=$(cat "/proc/$pid/cgroup" 2>&1)
	[ "$cg" = "0::/berth-test/ckpt" ] || p="$p cgroup=[$cg]"
	berth kill ckpt KILL || p="$p kill-failed"
	wait_status ckpt stopped || p="$p not-stopped"
	berth delete ckpt || p="$p delete-failed"
	[ -e "$PARENT/ckpt" ] && p="$p cgroup-left"
	[ -e "$STATE/ckpt" ] && p="$p state-left"
	verdict restore_continues_count_with_same_pids "$p" "stopped-at=$CK_STOPPED_AT first=$first later=$(count) init=$pid loop=$loop"
}

# Foreground restore (no -d) of the --leave-running images under another id:
# berth waits, returns the exit status and deletes the container.
test_restore_foreground_waits_and_cleans_up() {
	p=""
	{
		echo | berth restore --image-path /tmp/ck-live -b /bundles/ckpt ckfg 2>&1
		echo "restore-rc=$?"
	} | cat >/tmp/ckfg.log &
	wait_status ckfg running || p="$p status=$(state_status ckfg)=[$(cat /tmp/ckfg.log) $(criu_errors /tmp/ck-live/restore.log)]"
	c=$(count)
	wait_count_above "$c" || p="$p not-counting"
	berth kill ckfg KILL || p="$p kill-failed"
	rc=$(wait_rc /tmp/ckfg.log)
	[ "$rc" = 137 ] || p="$p rc=$rc"
	[ -e "$STATE/ckfg" ] && p="$p state-left"
	[ -e "$PARENT/ckpt" ] && p="$p cgroup-left"
	verdict restore_foreground_waits_and_cleans_up "$p" "rc=$rc"
}

# A restore that fails (images of another container's bind mount layout
# missing from the bundle) leaves no state, cgroup or process.
test_restore_failure_leaves_nothing() {
	p=""
	out=$(berth restore -d --image-path /tmp/ck-live -b /bundles/force ckbad 2>&1) && p="$p restore-succeeded"
	echo "$out" | grep -q '/data' || p="$p error-does-not-name-the-mount"
	[ -e "$STATE/ckbad" ] && p="$p state-left"
	[ -e "$PARENT/force" ] && p="$p cgroup-left"
	# No images next to the descriptor: criu fails after berth made the cgroup.
	mkdir -p /tmp/ck-empty
	cp /tmp/ck-live/berth-checkpoint.json /tmp/ck-empty/
	out2=$(berth restore -d --image-path /tmp/ck-empty -b /bundles/ckpt ckbad 2>&1) && p="$p empty-restore-succeeded"
	echo "$out2" | grep -q 'criu restore failed' || p="$p no-criu-error"
	[ -e "$STATE/ckbad" ] && p="$p state-left-after-criu"
	[ -e "$PARENT/ckpt" ] && p="$p cgroup-left-after-criu"
	verdict restore_failure_leaves_nothing "$p" "out=[$out] out2=[$out2]"
}

test_no_leaks() {
	p=""
	left=$(find "$PARENT" -mindepth 1 -type d 2>/dev/null | tr '\n' ' ')
	[ -z "$left" ] || p="$p cgroups=[$left]"
	states=$(ls -A "$STATE" 2>/dev/null | tr '\n' ' ')
	[ -z "$states" ] || p="$p state-dirs=[$states]"
	procs=$(ps -o pid,args | grep -E 'sleep|tail' | grep -v grep | tr '\n' ' ')
	[ -z "$procs" ] || p="$p processes=[$procs]"
	rmdir "$PARENT" 2>/dev/null
	verdict no_leaks "$p" ""
}

# userns: a user namespace with a cgroup namespace and a rw cgroup mount; the container's
# root owns its cgroup (delegation) and can make a sub-cgroup; delete removes both.
test_userns_cgroup_is_delegated_to_the_container_root() {
	out=$(berth run -b /bundles/userns userns 2>&1)
	rc=$?
	p=""
	[ "$rc" = 0 ] || p="$p exit=$rc"
	echo "$out" | grep -qx '0 0' || p="$p cgroup-not-owned-by-root-inside"
	echo "$out" | grep -qx 'sub-made' || p="$p no-sub-cgroup"
	[ -e "$PARENT/userns" ] && p="$p cgroup-left"
	verdict userns_cgroup_is_delegated_to_the_container_root "$p" "rc=$rc out=[$out]"
}

# containerd (Debian's, private config and root under /tmp/ctd), containerd-shim-berth-v2 and
# berth: the shim's Stats gives io.containerd.cgroups.v2.Metrics (ctr prints the v2 table) and
# a container over its --memory-limit gives a TaskOOM (/tasks/oom in `ctr events`) and 137.
# The image is the host-built busybox archive /ctd/busybox-oci.tar (native snapshotter: overlay
# is a module of the guest kernel).
test_containerd_shim_metrics_and_oom_on_cgroup_v2() {
	p=""
	C=/tmp/ctd
	mkdir -p "$C"
	cat >"$C/config.toml" <<-EOF
	version = 2
	root = "$C/root"
	state = "$C/state"
	disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
	[grpc]
	  address = "$C/c.sock"
	[ttrpc]
	  address = "$C/c.sock.ttrpc"
	EOF
	PATH=/bin:/usr/bin BERTH_RUNTIME=/bin/berth /usr/bin/containerd --config "$C/config.toml" >"$C/log" 2>&1 &
	cpid=$!
	ctr() { timeout 120 /usr/bin/ctr -a "$C/c.sock" -n v2 "$@"; }
	i=0
	until ctr version >/dev/null 2>&1 || [ $i -ge 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ctr version >/dev/null 2>&1 || p="$p containerd-not-up"
	ctr images import --snapshotter native /ctd/busybox-oci.tar >"$C/import.log" 2>&1 || p="$p import-failed"
	img=docker.io/library/berth-busybox:latest
	rt="--snapshotter native --runtime io.containerd.berth.v2"
	ctr run -d $rt --memory-limit 33554432 "$img" m sleep 1000 >"$C/m.log" 2>&1 || p="$p run-failed"
	i=0
	until ctr task ls | grep -q '^m .*RUNNING' || [ $i -ge 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ctr task metrics m >"$C/metrics" 2>&1 || p="$p metrics-failed"
	grep -Eq '^pids\.current +1 *$' "$C/metrics" || p="$p no-pids.current-1"
	grep -Eq '^memory\.usage_limit +33554432 *$' "$C/metrics" || p="$p no-memory.usage_limit"
	grep -Eq '^memory\.usage +[1-9][0-9]* *$' "$C/metrics" || p="$p no-memory.usage"
	grep -Eq '^cpu\.usage_usec +[0-9]+ *$' "$C/metrics" || p="$p no-cpu.usage_usec"
	ctr events >"$C/events" 2>&1 &
	epid=$!
	sleep 1
	ctr run --rm $rt --memory-limit 16777216 "$img" o tail /dev/zero >"$C/o.log" 2>&1
	orc=$?
	[ "$orc" = 137 ] || p="$p oom-exit=$orc(want-137)"
	i=0
	until grep -q '/tasks/oom.*"o"' "$C/events" || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q '/tasks/oom.*"o"' "$C/events" || p="$p no-TaskOOM"
	oom_of_a_cgroup_removed_before_the_shim_read_it
	kill "$epid" 2>/dev/null
	wait "$epid" 2>/dev/null
	ctr task kill -s KILL m >/dev/null 2>&1
	i=0
	until ctr task ls | grep -q '^m .*STOPPED' || [ $i -ge 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ctr task rm m >/dev/null 2>&1 || p="$p task-rm-failed"
	ctr container rm m >/dev/null 2>&1 || p="$p container-rm-failed"
	shims=$(ps -o pid,args | grep containerd-shim-berth | grep -v grep | tr '\n' ' ')
	[ -z "$shims" ] || p="$p shims-left=[$shims]"
	kill "$cpid"
	wait "$cpid"
	table=$(grep -E '^(pids\.current|memory\.usage|memory\.usage_limit|cpu\.usage_usec) ' "$C/metrics" | tr -s ' ' | tr '\n' ';')
	oomev=$(grep '/tasks/oom' "$C/events" | cut -c1-120)
	[ -z "$p" ] || p="$p log=[$(tail -n 5 "$C/log" | cut -c1-200)] out=[$(cat "$C/m.log" "$C/o.log" "$C/metrics" | head -n 20)]"
	verdict containerd_shim_metrics_and_oom_on_cgroup_v2 "$p" "metrics=[$table] oom-exit=$orc events=[$oomev]"
}

# Run by test_containerd_shim_metrics_and_oom_on_cgroup_v2, with its containerd ($C, ctr, $rt,
# $img) and its `ctr events` (in $C/events). With the systemd cgroup driver, systemd removes a
# scope's cgroup as soon as it is empty, which can be before the shim has read the OOM-killed
# init's count. Here the shim is stopped (SIGSTOP) while its container is OOM-killed and the
# emptied cgroup removed, as systemd does, then let go: the shim must still publish /tasks/oom,
# and before /tasks/exit (from the parent cgroup's count, which has every kill below it).
oom_of_a_cgroup_removed_before_the_shim_read_it() {
	q=""
	mkdir -p /tmp/oomtrig
	rm -f /tmp/oomtrig/go
	ctr run -d $rt --memory-limit 16777216 --mount type=bind,src=/tmp/oomtrig,dst=/trig,options=rbind:ro \
		"$img" g sh -c 'until [ -e /trig/go ]; do sleep 0.1; done; exec tail /dev/zero' >"$C/g.log" 2>&1 || q="$q run-failed"
	i=0
	until ctr task ls | grep -q '^g .*RUNNING' || [ $i -ge 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	gpid=$(ctr task ls | awk '$1 == "g" { print $2 }')
	gcg=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$gpid/cgroup" 2>/dev/null)
	shim=$(awk '{ print $4 }' "/proc/$gpid/stat" 2>/dev/null)
	case "$(cat "/proc/$shim/comm" 2>/dev/null)" in containerd-shim*) ;; *) q="$q init-parent-is-not-the-shim=[$shim]" ;; esac
	[ "$gcg" != /sys/fs/cgroup ] && [ -d "$gcg" ] || q="$q no-cgroup=[$gcg]"
	if [ -z "$q" ]; then
		kill -STOP "$shim"
		touch /tmp/oomtrig/go
		i=0
		until grep -qx 'populated 0' "$gcg/cgroup.events" || [ $i -ge 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		rmdir "$gcg" || q="$q rmdir-failed"
		kill -CONT "$shim"
	fi
	i=0
	until grep -q '/tasks/exit.*"g"' "$C/events" || [ $i -ge 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	oom_at=$(grep -n '/tasks/oom.*"g"' "$C/events" | head -n 1 | cut -d: -f1)
	exit_at=$(grep -n '/tasks/exit.*"g"' "$C/events" | head -n 1 | cut -d: -f1)
	[ -n "$exit_at" ] || q="$q no-TaskExit"
	[ -n "$oom_at" ] || q="$q no-TaskOOM"
	[ -n "$oom_at" ] && [ -n "$exit_at" ] && [ "$oom_at" -gt "$exit_at" ] && q="$q TaskOOM-after-TaskExit"
	ctr task rm g >/dev/null 2>&1 || q="$q task-rm-failed"
	ctr container rm g >/dev/null 2>&1 || q="$q container-rm-failed"
	[ -d "$gcg" ] && q="$q cgroup-left"
	rm -rf /tmp/oomtrig
	verdict containerd_shim_reports_oom_of_a_cgroup_removed_before_it_was_read "$q" \
		"events=[$(grep '"g"' "$C/events" | cut -c1-100 | tr '\n' '|')]"
}

run_all_tests() {
	# The parent exists before the first container so every test sees the
	# same layout; berth enables the controllers down to each leaf.
	mkdir -p "$PARENT" "$STATE"
	for t in run_exit_code_output_and_cgroupns_root \
		cgroups_path_placement_at_clone_and_delete \
		exec_joins_the_container_cgroup_on_v2 \
		resources_written_to_v2_files \
		more_resources_written_to_v2_files \
		resource_edge_values_on_v2 \
		parent_cgroup_outlives_first_delete \
		cgroup_mount_shows_own_cgroup \
		ebpf_device_filter_denies_unlisted_devices \
		ebpf_device_filter_allows_listed_device \
		ebpf_device_filter_last_matching_rule_wins \
		ebpf_device_filter_matches_type_numbers_and_access \
		ebpf_device_filter_of_parent_still_applies_to_nested_container \
		pids_max_enforced \
		memory_max_oom_kills \
		kill_all_signals_every_process \
		delete_force_removes_running_container \
		ps_pause_events_update_on_cgroup_v2 \
		kill_and_delete_of_paused_on_cgroup_v2 \
		events_stream_reports_oom_on_cgroup_v2 \
		systemd_cgroups_path_on_cgroup_v2 \
		delete_force_removes_nested_cgroups \
		default_cgroup_path_is_own_cgroup_plus_id \
		run_without_pid_namespace_kills_leftovers \
		refusals_leave_the_host_unchanged \
		userns_cgroup_is_delegated_to_the_container_root \
		checkpoint_leave_running_keeps_counting \
		checkpoint_stops_container \
		restore_continues_count_with_same_pids \
		restore_foreground_waits_and_cleans_up \
		restore_failure_leaves_nothing \
		containerd_shim_metrics_and_oom_on_cgroup_v2 \
		no_leaks; do
		# berth.tests=a,b on the kernel command line (BERTH_QEMU_TESTS) runs only those.
		only=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^berth\.tests=//p')
		case ",$only," in ,,) ;; *",$t,"*) ;; *) continue ;; esac
		echo "BERTH-START $t uptime=$(cut -d' ' -f1 /proc/uptime)"
		"test_$t"
	done
}
