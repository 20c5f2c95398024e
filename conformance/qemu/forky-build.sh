#!/bin/bash
# Builds the Debian forky (testing) guest image; run by conformance/src/systemd_guest.rs
# (Suite::Forky), which hashes this script and forky's package list into the cache
# directory's name. trixie-build.sh with forky's differences (kept apart so that the trixie
# image's hash, and so its cached image, stay as they are):
# - Debian 12's debootstrap does not know forky: its sid script bootstraps it;
# - testing's Release file may be past its Valid-Until where the archive (or the clock) is
#   behind: apt-get update does not check it;
# - forky's systemd (258+) resolves paths through /proc: /proc stays mounted in the chroot
#   until systemd-machine-id-setup and journalctl --update-catalog are done;
# - no SELinux (the forky guest boots with AppArmor only): no policy, no labelling.
#
# Environment: WORK (an empty directory on the cache's filesystem; everything is built in
# it), MIRROR (Debian's archive), PACKAGES (space-separated), AGENT and AGENT_UNIT (the
# command agent and its systemd unit, installed into the image).
# Leaves in WORK: rootfs.img (raw ext4), vmlinuz, initrd.img. The caller removes WORK/root
# and renames WORK into place, so an interrupted build is never used.
set -euo pipefail
: "${WORK:?}" "${MIRROR:?}" "${PACKAGES:?}" "${AGENT:?}" "${AGENT_UNIT:?}"
root=$WORK/root
step() { printf '[forky-build %s] %s\n' "$(date +%T)" "$*"; }

# Whatever happens, nothing stays mounted inside WORK (the caller deletes it).
cleanup() {
	for m in proc sys; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	return 0
}
trap cleanup EXIT

step "debootstrap minbase forky from $MIRROR"
script=/usr/share/debootstrap/scripts/forky
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
debootstrap --variant=minbase forky "$root" "$MIRROR" "$script"

# No daemon of a package starts inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# Only what the guest's disk needs goes into the initrd.
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/berth-guest.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"

step "apt-get install $PACKAGES"
mount -t proc proc "$root/proc"
chroot "$root" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
	sh -c "apt-get update -q -o Acquire::Check-Valid-Until=false && apt-get install -y -q --no-install-recommends $PACKAGES"
rm -f "$root/usr/sbin/policy-rc.d"

step "configuring"
echo berth-forky >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 berth-forky\n' >"$root/etc/hosts"
# fsck pass 0: every boot starts from the same pristine image (qemu -snapshot).
printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$root/etc/fstab"
# A fixed machine-id: no first-boot units on every (snapshot) boot.
rm -f "$root/etc/machine-id"
chroot "$root" systemd-machine-id-setup
chroot "$root" passwd -d root >/dev/null
# A root shell on the serial console for people (docs/production-guest.md).
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %%I $TERM\n' \
	>"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
# Timers and jobs of a long-lived machine that only cost boot time in a throwaway guest.
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
	e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer getty@tty1.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
install -D -m 0755 "$AGENT" "$root/usr/local/sbin/berth-agent"
install -D -m 0644 "$AGENT_UNIT" "$root/etc/systemd/system/berth-agent.service"
chroot "$root" systemctl enable berth-agent.service
# What systemd would otherwise redo at every boot (ConditionNeedsUpdate= compares /usr's
# mtime with these stamps): the linker cache and the journal catalog.
chroot "$root" ldconfig
chroot "$root" journalctl --update-catalog
umount "$root/proc"
touch -r "$root/usr" "$root/etc/.updated" "$root/var/.updated"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

step "kernel, initrd and ext4 image"
cp "$(readlink -f "$root/vmlinuz")" "$WORK/vmlinuz"
cp "$(readlink -f "$root/initrd.img")" "$WORK/initrd.img"
# Sparse; the guest's writes go to qemu's snapshot overlay, not into this file.
truncate -s 6G "$WORK/rootfs.img"
mkfs.ext4 -q -F -L berth-root -d "$root" "$WORK/rootfs.img"
step "done: $(du -sh --apparent-size "$WORK/rootfs.img" | cut -f1) apparent, $(du -sh "$WORK/rootfs.img" | cut -f1) used"
