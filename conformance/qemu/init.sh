#!/bin/busybox sh
# /init of the cgroup v2 test guest (see docs/cgroup-v2-testing.md).
#
# Stage 1 runs on the initramfs itself. pivot_root(2) refuses to move the
# initramfs (it has no parent mount), and berth pivots into every container
# root, so stage 1 copies the archive onto a tmpfs and switch_roots there;
# stage 2 mounts the kernel filesystems, runs /tests.sh and powers off.
# The host reads only the "BERTH-..." lines of the serial console.

bb=/bin/busybox

if [ "${BERTH_STAGE:-1}" = 1 ]; then
	$bb mount -t tmpfs -o mode=0755 newroot /newroot
	# Everything but the mount points: bin, bundles, rootfs, the scripts,
	# and the host binaries' trees (usr, lib, lib64) when there are any.
	for f in /*; do
		case "$f" in /proc | /sys | /dev | /run | /tmp | /newroot) ;; *) $bb cp -a "$f" /newroot/ ;; esac
	done
	$bb mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
	export BERTH_STAGE=2
	exec $bb switch_root /newroot /init
fi

# The host binaries (criu, GNU tar for criu's tmpfs archives) before busybox.
export PATH=/usr/sbin:/usr/bin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# criu stats /dev/pts (its own) before it dumps a container's devpts.
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
# criu probes TCP repair over loopback before every dump and restore.
ifconfig lo 127.0.0.1 up
# Kernel modules the host put in the archive (criu's socket diagnostics).
if [ -f /modules.load ]; then
	while read -r m; do insmod "$m" || echo "insmod $m failed"; done </modules.load
fi

echo "BERTH-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) controllers=$(tr ' ' ',' </sys/fs/cgroup/cgroup.controllers)"

. /tests.sh
run_all_tests

echo "BERTH-GUEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
# If ACPI power-off did not take, pid 1 exiting panics the kernel, and
# panic=-1 with qemu's -no-reboot turns that into qemu exiting too.
exit 1
