#!/bin/sh
# Rootless Docker in the trixie guest (issue 12, item 3), run as root by
# `rootless_docker_runs_on_berth_as_on_runc`: trixie's docker.io started by its
# dockerd-rootless.sh (rootlesskit with slirp4netns) as a user service of a user with
# subordinate ids and a lingering systemd instance, berth registered by path with
# --add-runtime. Prints
# "<runtime> <what>=<value>" lines for the test to compare, then stops that dockerd.
set -u
u=bprl
id $u >/dev/null 2>&1 || useradd -m $u
grep -q "^$u:" /etc/subuid || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 $u
uid=$(id -u $u)
loginctl enable-linger $u
i=0
while [ ! -S /run/user/$uid/bus ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i + 1)); done
x=/run/user/$uid
# The user's own commands (systemctl --user, docker).
asu() {
	runuser -u $u -- env -C /home/$u HOME=/home/$u XDG_RUNTIME_DIR=$x \
		DBUS_SESSION_BUS_ADDRESS=unix:path=$x/bus PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
}
as() { asu "$@"; }
# dockerd as the user runs it (dockerd-rootless-setuptool.sh installs it as a user service):
# a unit of the user's manager, so that it and its containers live in the user's delegated
# cgroup.
asu systemctl --user reset-failed bprl-dockerd.service 2>/dev/null
asu systemd-run --user --unit=bprl-dockerd --collect \
	-E PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
	/usr/share/docker.io/contrib/dockerd-rootless.sh --add-runtime berth=/usr/local/bin/berth \
	-H unix://$x/docker.sock
i=0
while ! as docker -H unix://$x/docker.sock info >/dev/null 2>&1 && [ $i -lt 360 ]; do sleep 0.5; i=$((i + 1)); done
D="docker -H unix://$x/docker.sock"
echo "host rootless=$(as $D info --format '{{.SecurityOptions}}' 2>&1 | grep -c rootless),$(as $D info --format '{{.CgroupDriver}}' 2>&1)"
as $D image inspect busybox:local >/dev/null 2>&1 || tar -C /root/bundle/rootfs -c . | as $D import - busybox:local >/dev/null
for rt in runc berth; do
	echo "$rt run=$(as $D run --rm --runtime $rt busybox:local sh -c 'echo $(id -u),$(cat /proc/self/uid_map | tr -s " " | tr " " :)' 2>&1 | tr ' ' _)"
	echo "$rt limits=$(as $D run --rm --runtime $rt --memory 64m --pids-limit 42 busybox:local sh -c 'echo $(cat /sys/fs/cgroup/memory.max),$(cat /sys/fs/cgroup/pids.max)' 2>&1 | tr ' ' _)"
	id=$(as $D run -d --runtime $rt busybox:local sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
	echo "$rt exec=$(as $D exec $id id -u 2>&1 | tr ' ' _)"
	as $D stop -t 10 $id >/dev/null 2>&1
	echo "$rt stopped=$(as $D inspect -f '{{.State.Status}},{{.State.ExitCode}}' $id 2>&1)"
	as $D rm $id >/dev/null 2>&1
	echo "$rt units_left=$(as systemctl --user list-units --all --no-legend "docker-$id*" 2>/dev/null | wc -l)"
done
echo "host containers_left=$(as $D ps -aq | wc -l)"
# Stop that dockerd (its unit takes rootlesskit and its children with it).
[ "$(asu systemctl --user is-active bprl-dockerd.service)" = active ] || asu journalctl --user -u bprl-dockerd.service --no-pager | tail -20 >&2
asu systemctl --user stop bprl-dockerd.service
echo "host dockerd_stopped=$(asu systemctl --user is-active bprl-dockerd.service 2>/dev/null | grep -qx active && echo no || echo yes)"
