#!/bin/sh
# Rootless podman in the trixie guest (issue 12, item 2), run as root by
# `rootless_podman_with_limits_on_berth_as_on_runc_and_crun`: a user with subordinate ids and
# a lingering systemd user instance (user@<uid>.service, whose cgroup v2 subtree systemd
# delegates to it); podman 5 as that user, with its defaults (the systemd cgroup manager on
# the user's bus), on runc, crun and berth. Prints "<runtime> <what>=<value>" lines for the
# test to compare.
set -u
u=bprl
id $u >/dev/null 2>&1 || useradd -m $u
grep -q "^$u:" /etc/subuid || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 $u
uid=$(id -u $u)
loginctl enable-linger $u
i=0
while [ ! -S /run/user/$uid/bus ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i + 1)); done
# The user's own commands (systemctl --user).
asu() {
	runuser -u $u -- env -C /home/$u XDG_RUNTIME_DIR=/run/user/$uid \
		DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus "$@"
}
# A command as the user would run it from a session: in a unit of the user's manager, so
# that it and what it starts live in the user's delegated cgroup (root's agent service is
# not the user's to move processes out of).
as() {
	asu systemd-run --user --pipe --wait --quiet --collect --working-directory=/home/$u -- "$@"
}
as podman image exists busybox:local || tar -C /root/bundle/rootfs -c . | as podman import - busybox:local >/dev/null
echo "host delegated=$(cat /sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service/cgroup.subtree_control | tr ' ' ,)"
for rt in runc crun /usr/local/bin/berth; do
	n=$(basename $rt)
	P="podman --runtime $rt"
	out=$(as $P run --rm --network none --memory 64m --pids-limit 42 busybox:local \
		sh -c 'echo $(id -u),$(cat /sys/fs/cgroup/memory.max),$(cat /sys/fs/cgroup/pids.max)' 2>&1)
	echo "$n limits=$(echo $out | tr ' ' _)"
	as $P run --rm --network none --memory 16m --memory-swap 16m busybox:local tail /dev/zero >/dev/null 2>&1
	echo "$n oom=$?"
	# The sleeps outlast the loop however slow the emulated guest forks (3 s did not, once,
	# for runc); sh exits after the loop, and the kernel kills them with the pid namespace.
	forks=$(as $P run --rm --network none --pids-limit 5 busybox:local \
		sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 300 & done' 2>&1 | grep -c "can't fork")
	echo "$n refused_forks=$forks"
	id=$(as $P run -d --network none --memory 32m busybox:local sleep 1000)
	echo "$n exec=$(as $P exec $id id -u 2>&1 | tr ' ' _)"
	echo "$n scope=$(asu systemctl --user is-active libpod-$id.scope 2>&1),$(asu systemctl --user show -P MemoryMax libpod-$id.scope 2>&1)"
	as $P stop -t 1 $id >/dev/null 2>&1
	as $P rm $id >/dev/null 2>&1
	echo "$n units_left=$(asu systemctl --user list-units --all --no-legend "libpod-$id*" 2>/dev/null | wc -l)"
done
echo "host containers_left=$(as podman ps -aq | wc -l)"
