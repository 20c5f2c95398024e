//! A container without a mount namespace of its own (no `mount` in linux.namespaces): its
//! rootfs is set up in the runtime's mount namespace, as runc does, and entered with
//! chroot. Unlike runc, nothing here changes a host mount's propagation (runc makes the
//! host's `/` rslave and the rootfs parent private), `--no-pivot` never moves the rootfs
//! over the host's `/`, and `delete` takes the rootfs mount tree down again (runc leaves it
//! mounted on the host).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir};

use super::{sys_err, RootfsError};

const NONE: Option<&str> = None;

/// Binds the rootfs onto itself (so it is a mount of its own, detachable at once with all
/// the container's mounts below it) and gives that mount the container's propagation:
/// rslave unless rootfsPropagation says otherwise, so the container's mounts do not
/// propagate to the host's peers.
pub(crate) fn prepare_root(rootfs: &Path, propagation: Option<MsFlags>) -> Result<(), RootfsError> {
    super::pivot::bind_onto_itself(rootfs)?;
    let flags = propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mount(NONE, rootfs, NONE, flags, NONE).map_err(sys_err("linux.rootfsPropagation", "set propagation of the rootfs"))
}

/// chroot into the rootfs mount held by `root` (pivot_root would swap the host's root).
pub(crate) fn enter(root: OwnedFd) -> Result<(), RootfsError> {
    fchdir(&root).map_err(sys_err("root.path", "chdir into rootfs"))?;
    drop(root);
    chroot(".").map_err(sys_err("root.path", "chroot"))?;
    chdir("/").map_err(sys_err("root.path", "chdir /"))
}

/// The id of the mount on top of `rootfs` now, to tell afterwards whether the container's
/// rootfs mount is (still) there.
pub fn top_mount_id(rootfs: &Path) -> std::io::Result<u64> {
    crate::sys::mount::mount_id(rootfs)
}

/// Detaches the container's rootfs mount tree from the runtime's mount namespace if the
/// mount on top of `rootfs` is not `before` (what was there before the container), or is
/// `ours` (recorded after create). Anything else on top is not ours and stays.
pub fn detach(rootfs: &Path, before: Option<u64>, ours: Option<u64>) -> Result<(), RootfsError> {
    let Ok(top) = top_mount_id(rootfs) else {
        return Ok(());
    };
    let is_ours = match (before, ours) {
        (_, Some(o)) => top == o,
        (Some(b), None) => top != b,
        (None, None) => false,
    };
    if is_ours {
        umount2(rootfs, MntFlags::MNT_DETACH).map_err(sys_err("root.path", "detach the rootfs mounts"))?;
    }
    Ok(())
}
