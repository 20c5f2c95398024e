//! Steps a child runs between fork and exec (`Command::pre_exec`), each limited to
//! async-signal-safe syscalls on data prepared before the fork.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The child unshares a new user namespace before it execs (its maps are then written
/// from outside, through /proc/<pid>).
pub fn unshare_user_ns(cmd: &mut Command) {
    // SAFETY: the closure only calls unshare(2), which is async-signal-safe and touches no
    // memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
            Ok(())
        });
    }
}

/// The child enters a new mount namespace whose mounts are slaves of ours, in which
/// `root` is bind-mounted onto itself (criu restores a container's mounts under a rootfs
/// that must be a mount point).
pub fn private_mount_ns_with_bind(cmd: &mut Command, root: CString) {
    // SAFETY: the closure only makes syscalls (no allocation) on data prepared before
    // the fork; the caller is single-threaded.
    unsafe {
        cmd.pre_exec(move || private_rootfs_mount(&root));
    }
}

fn private_rootfs_mount(root: &CString) -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)?;
    mount(Some(root.as_c_str()), root.as_c_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    Ok(())
}
