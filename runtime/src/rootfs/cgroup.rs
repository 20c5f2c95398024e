//! `type: "cgroup"` mounts. Read-only unless the options explicitly say `rw`
//! (privileged containers): a writable cgroupfs without a cgroup namespace
//! lets the container reconfigure host cgroups (CVE-2023-25809).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use nix::sys::statfs::{fstatfs, TMPFS_MAGIC};
use nix::unistd::symlinkat;

use super::mounts::{dest_dir, Ctx};
use super::options::MountOptions;
use super::resolve;
use super::{sys_err, CgroupMount, RootfsError};
use crate::sys::mount::{self as sys, MountAttr};

const HIERARCHY_FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// Read-only when the mount's options say `ro`, as runc (every client's default config
/// says it; runc's own tests drop it to get a writable cgroupfs). Always read-only in a
/// user namespace without a cgroup namespace of its own: the case of CVE-2023-25809,
/// where the container's root is not the host's and the mount shows cgroups beyond the
/// container's own.
fn readonly(ctx: &Ctx, opts: &MountOptions) -> bool {
    opts.flags.contains(MsFlags::MS_RDONLY) || (ctx.in_user_ns && !ctx.cgroupns)
}

/// Bind the host directory of one hierarchy onto `target`, read-only unless `rw`.
fn bind_hierarchy(target: BorrowedFd, cm: &CgroupMount, ro: bool, field: &str) -> Result<(), RootfsError> {
    let src = resolve::open_dir(&cm.host_path)
        .map_err(|e| RootfsError::sys(field, format!("open cgroup {}", cm.host_path.display()), e))?;
    let tree = sys::open_tree_fd(src.as_fd(), false).map_err(sys_err(field, "open_tree cgroup"))?;
    let mut set = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
    if ro {
        set |= sys::MOUNT_ATTR_RDONLY;
    }
    let attr = MountAttr { attr_set: set, ..Default::default() };
    sys::mount_setattr_fd(tree.as_fd(), false, &attr).map_err(sys_err(field, "set cgroup mount flags"))?;
    sys::move_mount_fd(tree.as_fd(), target).map_err(sys_err(field, "move_mount cgroup"))
}

fn fresh(target: BorrowedFd, fstype: &str, data: Option<&str>, ro: bool, field: &str) -> Result<(), RootfsError> {
    let mut flags = HIERARCHY_FLAGS;
    if ro {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(Some(fstype), sys::fd_path(target).as_str(), Some(fstype), flags, data)
        .map_err(|e| RootfsError::sys(field, format!("mount {fstype}"), e))
}

pub(crate) fn mount_cgroup(ctx: &Ctx, field: &str, dest: &Path, opts: &MountOptions) -> Result<(), RootfsError> {
    let ro = readonly(ctx, opts);
    let target = dest_dir(ctx.root, dest).map_err(sys_err(field, "create mount point"))?;
    let v2 = match ctx.cgroup_mounts {
        [] => {
            if !ctx.cgroupns {
                return Err(RootfsError::invalid(field, "no cgroup hierarchy known for the container"));
            }
            None
        }
        [one] if one.name.is_empty() => Some(one),
        _ => return mount_v1(ctx, field, dest, target.as_fd(), ro),
    };
    match v2 {
        Some(cm) if !ctx.cgroupns => bind_hierarchy(target.as_fd(), cm, ro, field),
        _ => fresh(target.as_fd(), "cgroup2", None, ro, field),
    }
}

/// v1: a tmpfs holding one directory per hierarchy, like runc.
fn mount_v1(ctx: &Ctx, field: &str, dest: &Path, target: BorrowedFd, ro: bool) -> Result<(), RootfsError> {
    // A tmpfs like any other: it gets the mount label (runc mounts it as one).
    let data = match ctx.mount_label {
        Some(label) => crate::lsm::with_mount_label("mode=755", label),
        None => "mode=755".to_string(),
    };
    mount(Some("tmpfs"), sys::fd_path(target).as_str(), Some("tmpfs"), HIERARCHY_FLAGS, Some(data.as_str()))
        .map_err(sys_err(field, "mount cgroup tmpfs"))?;
    let tmpfs = resolve::open_in_root(ctx.root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
        .map_err(sys_err(field, "reopen cgroup tmpfs"))?;
    if fstatfs(&tmpfs).map(|s| s.filesystem_type() != TMPFS_MAGIC).unwrap_or(true) {
        return Err(RootfsError::invalid(field, "cgroup tmpfs moved away while it was being set up"));
    }
    for cm in ctx.cgroup_mounts {
        let dir = cm.name.strip_prefix("name=").unwrap_or(&cm.name);
        if dir.is_empty() || dir.contains('/') || dir == "." || dir == ".." {
            return Err(RootfsError::invalid(field, format!("bad cgroup hierarchy name {:?}", cm.name)));
        }
        match mkdirat(&tmpfs, dir, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(RootfsError::sys(field, format!("mkdir cgroup {dir}"), e)),
        }
        let sub = resolve::open_beneath(tmpfs.as_fd(), dir.as_ref(), OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(sys_err(field, "open cgroup dir"))?;
        if ctx.cgroupns {
            if cm.name == "unified" {
                fresh(sub.as_fd(), "cgroup2", None, ro, field)?;
            } else {
                fresh(sub.as_fd(), "cgroup", Some(&cm.name), ro, field)?;
            }
        } else {
            bind_hierarchy(sub.as_fd(), cm, ro, field)?;
        }
        if dir.contains(',') {
            for part in dir.split(',').filter(|p| !p.is_empty() && *p != dir) {
                match symlinkat(dir, &tmpfs, part) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(RootfsError::sys(field, format!("symlink cgroup {part}"), e)),
                }
            }
        }
    }
    if ro {
        let attr = MountAttr { attr_set: sys::MOUNT_ATTR_RDONLY, ..Default::default() };
        sys::mount_setattr_fd(tmpfs.as_fd(), false, &attr).map_err(sys_err(field, "remount cgroup tmpfs read-only"))?;
    }
    Ok(())
}
