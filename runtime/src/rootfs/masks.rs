//! linux.maskedPaths and linux.readonlyPaths, applied after the pivot with
//! fds opened inside the new root (T3, T5; CVE-2025-31133).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, makedev, Mode};

use super::resolve;
use super::{sys_err, RootfsError};
use crate::sys::mount::{self as sys, MountAttr};

/// Make the mount `fd` is on read-only (and recursively below it with `recursive`).
pub(crate) fn set_readonly(fd: BorrowedFd, recursive: bool) -> nix::Result<()> {
    let attr = MountAttr { attr_set: sys::MOUNT_ATTR_RDONLY, ..Default::default() };
    sys::mount_setattr_fd(fd, recursive, &attr)
}

/// Bind `path` onto itself read-only, nosuid, nodev, noexec (as runc does),
/// recursively so submounts (e.g. binfmt_misc under /proc/sys) stay read-only too.
pub(crate) fn readonly_path(root: BorrowedFd, field: &str, path: &Path) -> Result<(), RootfsError> {
    let fd = match resolve::open_in_root(root, path, OFlag::O_PATH, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(RootfsError::sys(field, format!("open {}", path.display()), e)),
    };
    let tree = sys::open_tree_fd(fd.as_fd(), true).map_err(sys_err(field, "open_tree"))?;
    let attr = MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
        ..Default::default()
    };
    sys::mount_setattr_fd(tree.as_fd(), true, &attr).map_err(sys_err(field, "set read-only"))?;
    sys::move_mount_fd(tree.as_fd(), fd.as_fd()).map_err(sys_err(field, "move_mount"))
}

/// Cover each masked path: files with the verified /dev/null, directories
/// with an empty read-only tmpfs (under the mount label, as runc's). Only a missing
/// destination is skipped. The directories share one tmpfs (runc 1.3's): it is made at the
/// first and bound at the others, one superblock and one open_tree each instead of a new
/// filesystem each.
pub(crate) fn mask_paths(root: BorrowedFd, paths: &[String], mount_label: Option<&str>) -> Result<(), RootfsError> {
    // fsconfig takes the label as the option's value: no quoting, unlike mount(2) data.
    let tmpfs_opts: Vec<(&str, &str)> = mount_label.map(|l| ("context", l)).into_iter().collect();
    let null = resolve::open_in_root(root, Path::new("/dev/null"), OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())
        .map_err(|e| RootfsError::invalid("linux.maskedPaths", format!("invalid /dev/null: {e}")))?;
    let st = fstat(&null).map_err(sys_err("linux.maskedPaths", "stat /dev/null"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != makedev(1, 3) {
        return Err(RootfsError::invalid("linux.maskedPaths", "invalid /dev/null: not the char device 1:3"));
    }
    let mut shared_tmpfs: Option<std::os::fd::OwnedFd> = None;
    for (i, p) in paths.iter().enumerate() {
        let field = format!("linux.maskedPaths[{i}]");
        let fd = match resolve::open_in_root(root, Path::new(p), OFlag::O_PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(RootfsError::sys(field, format!("open {p}"), e)),
        };
        let is_dir = fstat(&fd).map_err(sys_err(&field, "stat"))?.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let tree = match (is_dir, &shared_tmpfs) {
            (true, Some(first)) => {
                sys::open_tree_fd(first.as_fd(), false).map_err(sys_err(&field, "open_tree tmpfs"))?
            }
            (true, None) => {
                sys::fs_create("tmpfs", &tmpfs_opts, sys::MOUNT_ATTR_RDONLY).map_err(sys_err(&field, "create tmpfs"))?
            }
            (false, _) => sys::open_tree_fd(null.as_fd(), false).map_err(sys_err(&field, "open_tree /dev/null"))?,
        };
        sys::move_mount_fd(tree.as_fd(), fd.as_fd()).map_err(sys_err(&field, "mask"))?;
        // Once moved, the new tmpfs's fd is its root where it is mounted: what the next
        // directories get a clone of.
        if is_dir && shared_tmpfs.is_none() {
            shared_tmpfs = Some(tree);
        }
    }
    Ok(())
}
