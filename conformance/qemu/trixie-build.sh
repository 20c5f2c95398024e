#!/bin/bash
# Builds the Debian 13 (trixie) guest image; run by conformance/src/systemd_guest.rs, which
# hashes this script and the package list into the cache directory's name.
#
# Environment: WORK (an empty directory on the cache's filesystem; everything is built in
# it), MIRROR (Debian's archive), PACKAGES (space-separated), AGENT and AGENT_UNIT (the
# command agent and its systemd unit, installed into the image).
# Leaves in WORK: rootfs.img (raw ext4), vmlinuz, initrd.img. The caller removes WORK/root
# and renames WORK into place, so an interrupted build is never used.
set -euo pipefail
: "${WORK:?}" "${MIRROR:?}" "${PACKAGES:?}" "${AGENT:?}" "${AGENT_UNIT:?}"
root=$WORK/root
step() { printf '[trixie-build %s] %s\n' "$(date +%T)" "$*"; }

# Whatever happens, nothing stays mounted inside WORK (the caller deletes it).
cleanup() {
	for m in proc sys; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	return 0
}
trap cleanup EXIT

step "debootstrap minbase from $MIRROR"
debootstrap --variant=minbase trixie "$root" "$MIRROR"

# No daemon of a package starts inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# Only what the guest's disk needs goes into the initrd (MODULES=most makes it ~36 MB,
# which the emulated kernel must unpack at every boot).
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/berth-guest.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"

step "apt-get install $PACKAGES"
mount -t proc proc "$root/proc"
chroot "$root" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
	sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES"
umount "$root/proc"
rm -f "$root/usr/sbin/policy-rc.d"

step "configuring"
echo berth-trixie >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 berth-trixie\n' >"$root/etc/hosts"
# fsck pass 0: every boot starts from the same pristine image (qemu -snapshot).
printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$root/etc/fstab"
# A fixed machine-id: no first-boot units on every (snapshot) boot.
chroot "$root" systemd-machine-id-setup
chroot "$root" passwd -d root >/dev/null
# A root shell on the serial console for people (docs/production-guest.md).
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %%I $TERM\n' \
	>"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
# Timers and jobs of a long-lived machine that only cost boot time in a throwaway guest.
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
	e2scrub_reap.service fstrim.timer podman-auto-update.timer podman-clean-transient.service \
	systemd-tmpfiles-clean.timer getty@tty1.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
install -D -m 0755 "$AGENT" "$root/usr/local/sbin/berth-agent"
install -D -m 0644 "$AGENT_UNIT" "$root/etc/systemd/system/berth-agent.service"
chroot "$root" systemctl enable berth-agent.service
# SELinux is installed but off unless the kernel command line turns it on (the second boot
# mode); then permissive, with the files labelled here rather than by a relabelling boot.
printf 'SELINUX=permissive\nSELINUXTYPE=default\n' >"$root/etc/selinux/config"
# What systemd would otherwise redo at every boot (ConditionNeedsUpdate= compares /usr's
# mtime with these stamps): the linker cache and the journal catalog.
chroot "$root" ldconfig
chroot "$root" journalctl --update-catalog
touch -r "$root/usr" "$root/etc/.updated" "$root/var/.updated"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
step "labelling for SELinux"
chroot "$root" setfiles -e /proc -e /sys /etc/selinux/default/contexts/files/file_contexts /

step "kernel, initrd and ext4 image"
cp "$(readlink -f "$root/vmlinuz")" "$WORK/vmlinuz"
cp "$(readlink -f "$root/initrd.img")" "$WORK/initrd.img"
# Sparse; the guest's writes go to qemu's snapshot overlay, not into this file.
truncate -s 6G "$WORK/rootfs.img"
mkfs.ext4 -q -F -L berth-root -d "$root" "$WORK/rootfs.img"
step "done: $(du -sh --apparent-size "$WORK/rootfs.img" | cut -f1) apparent, $(du -sh "$WORK/rootfs.img" | cut -f1) used"
