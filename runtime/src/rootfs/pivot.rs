//! Mount propagation of the new namespace, and switching to the new root.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use super::{resolve, sys_err, RootfsError};

const NONE: Option<&str> = None;

/// Before any mount: make `/` recursively slave (or what rootfsPropagation
/// says) so nothing we do reaches the host, make the rootfs's parent mount
/// private when it could still be shared (pivot_root refuses a shared
/// parent), and bind the rootfs onto itself so it is a mount point.
/// Binds the rootfs onto itself (recursively), so it is a mount of its own.
pub(crate) fn bind_onto_itself(rootfs: &Path) -> Result<(), RootfsError> {
    mount(Some(rootfs), rootfs, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
        .map_err(sys_err("root.path", "bind rootfs onto itself"))
}

pub(crate) fn prepare_root(rootfs: &Path, propagation: Option<MsFlags>) -> Result<(), RootfsError> {
    let flags = pre_pivot_propagation(propagation);
    mount(NONE, "/", NONE, flags, NONE).map_err(sys_err("linux.rootfsPropagation", "set propagation of /"))?;
    let all_unshared = flags.contains(MsFlags::MS_REC) && !flags.contains(MsFlags::MS_SHARED);
    if !all_unshared {
        parent_mount_private(rootfs)?;
    }
    bind_onto_itself(rootfs)?;
    Ok(())
}

/// The propagation `/` gets before the rootfs is bound onto itself. An
/// unbindable `/` (or rootfs) cannot be the source of that bind (EINVAL, where
/// runc fails), so `unbindable`/`runbindable` get the default recursive slave
/// here, which keeps everything we mount from reaching the host, and are
/// applied to the new `/` as the last step of its set-up (`finalize`).
fn pre_pivot_propagation(propagation: Option<MsFlags>) -> MsFlags {
    match propagation {
        Some(p) if !p.contains(MsFlags::MS_UNBINDABLE) => p,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    }
}

/// Mount points of this namespace with their "is shared" bit, in mountinfo
/// order (parents before children).
fn mount_points() -> Result<Vec<(PathBuf, bool)>, RootfsError> {
    let f = std::fs::File::open("/proc/self/mountinfo").map_err(|e| {
        RootfsError::sys("root.path", "read mountinfo", Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    })?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let shared = line.split(" - ").next().unwrap_or("").split(' ').skip(6).any(|f| f.starts_with("shared:"));
        out.push((PathBuf::from(unescape(mp)), shared));
    }
    Ok(out)
}

/// Make the mount that contains `rootfs` private if it is shared (runc's
/// rootfsParentMountPrivate). Reads mountinfo, which only happens for
/// non-default propagation settings.
fn parent_mount_private(rootfs: &Path) -> Result<(), RootfsError> {
    let mut best: Option<(PathBuf, bool)> = None;
    for (mp, shared) in mount_points()? {
        if rootfs.starts_with(&mp) && best.as_ref().is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len()) {
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        mount(NONE, &mp, NONE, MsFlags::MS_PRIVATE, NONE).map_err(sys_err("root.path", "make parent mount private"))?;
    }
    Ok(())
}

/// Without pivot_root the host's mounts stay below the chroot; detach every
/// one that is neither the rootfs, inside it, nor on the path to it (runc's
/// msMoveRoot), so nothing of the host is reachable by escaping the chroot.
fn detach_host_mounts(rootfs: &Path) -> Result<(), RootfsError> {
    for (mp, _) in mount_points()?.into_iter().rev() {
        if rootfs.starts_with(&mp) || mp.starts_with(rootfs) {
            continue;
        }
        // Make sure the unmount does not propagate anywhere.
        match mount(NONE, &mp, NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE) {
            Ok(()) => {}
            // Already gone with a detached parent.
            Err(Errno::ENOENT | Errno::EINVAL) => continue,
            Err(e) => return Err(RootfsError::sys("root.path", format!("make {} slave", mp.display()), e)),
        }
        match umount2(&mp, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(Errno::EPERM) => {
                // Locked mounts (user namespace): hide them instead.
                mount(Some("tmpfs"), &mp, Some("tmpfs"), MsFlags::empty(), NONE)
                    .map_err(sys_err("root.path", "cover host mount"))?;
            }
            Err(e) => return Err(RootfsError::sys("root.path", format!("detach {}", mp.display()), e)),
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Switch to the new root held by `root` (an fd of the rootfs bind mount).
pub(crate) fn enter(
    root: OwnedFd,
    rootfs: &Path,
    no_pivot: bool,
    propagation: Option<MsFlags>,
) -> Result<(), RootfsError> {
    if no_pivot {
        detach_host_mounts(rootfs)?;
    }
    // pivot_root(".", ".") stacks the old root on top of the new one at ".";
    // detaching it leaves only the container's tree, with no directory needed
    // inside the rootfs. It is reached through an fd of the old root: on "."
    // after the pivot, mount(2) acts on the new root below the stack (only
    // umount2 follows it), and making that a slave would make the whole
    // container tree a slave of the host, so `rshared` mounts would no longer
    // propagate back (runc fchdirs to the old root for the same reason).
    let oldroot = if no_pivot {
        None
    } else {
        Some(resolve::open_dir(Path::new("/")).map_err(sys_err("root.path", "open old root"))?)
    };
    fchdir(&root).map_err(sys_err("root.path", "chdir into rootfs"))?;
    drop(root);
    if let Some(oldroot) = oldroot {
        pivot_root(".", ".").map_err(sys_err("root.path", "pivot_root"))?;
        fchdir(&oldroot).map_err(sys_err("root.path", "chdir into old root"))?;
        drop(oldroot);
        // The old root must not propagate the unmount to the host.
        mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
            .map_err(sys_err("root.path", "make old root slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys_err("root.path", "detach old root"))?;
    } else {
        // runc's msMoveRoot: move the rootfs over / and chroot into it.
        mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE).map_err(sys_err("root.path", "move rootfs onto /"))?;
        chroot(".").map_err(sys_err("root.path", "chroot"))?;
    }
    chdir("/").map_err(sys_err("root.path", "chdir /"))?;
    // An unbindable root comes last, in `finalize`: readonlyPaths and maskedPaths bind
    // paths onto themselves, which an unbindable tree refuses (EINVAL).
    if let Some(p) = propagation.filter(|p| !p.contains(MsFlags::MS_UNBINDABLE)) {
        mount(NONE, "/", NONE, p, NONE).map_err(sys_err("linux.rootfsPropagation", "set propagation of new /"))?;
    }
    Ok(())
}
