//! The container's pty master and /dev/console (T5, CVE-2025-52565).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, makedev, Mode};
use nix::sys::statfs::{fstatfs, DEVPTS_SUPER_MAGIC};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::resolve;
use super::{sys_err, RootfsError};
use crate::sys::mount as sys;

const FIELD: &str = "process.terminal";

/// /dev/ptmx of the container, verified to be devpts's ptmx (5:2) before it
/// is opened for I/O, so a fifo or another device planted there is never opened.
pub(crate) fn open_ptmx(root: BorrowedFd) -> Result<OwnedFd, RootfsError> {
    let p = resolve::open_in_root(root, Path::new("/dev/ptmx"), OFlag::O_PATH, Mode::empty())
        .map_err(sys_err(FIELD, "open /dev/ptmx"))?;
    let st = fstat(&p).map_err(sys_err(FIELD, "stat /dev/ptmx"))?;
    let on_devpts = fstatfs(&p).map(|s| s.filesystem_type() == DEVPTS_SUPER_MAGIC).unwrap_or(false);
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != makedev(5, 2) || !on_devpts {
        return Err(RootfsError::invalid(FIELD, "/dev/ptmx is not the devpts ptmx (char 5:2)"));
    }
    // Re-open the verified inode itself, not the name.
    nix::fcntl::open(
        sys::fd_path(p.as_fd()).as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_err(FIELD, "open ptmx"))
}

/// Create <root>/dev/console as a plain file (replacing a link or anything
/// that is not a regular file or char device) and bind the pty peer onto it.
pub(crate) fn mount_console(root: BorrowedFd, peer: BorrowedFd) -> Result<(), RootfsError> {
    let st = fstat(peer).map_err(sys_err(FIELD, "stat pty peer"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Err(RootfsError::invalid(FIELD, "console peer is not a character device"));
    }
    let dev = resolve::mkdir_all_in_root(root, Path::new("/dev"), Mode::from_bits_truncate(0o755))
        .map_err(sys_err(FIELD, "open /dev"))?;
    let flags =
        OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let mut target = None;
    for _ in 0..4 {
        // O_PATH first: a planted fifo or device must not be opened for I/O.
        match resolve::open_beneath(dev.as_fd(), "console".as_ref(), OFlag::O_PATH) {
            Ok(fd) => {
                let kind = fstat(&fd).map_err(sys_err(FIELD, "stat /dev/console"))?.st_mode & libc::S_IFMT;
                if kind == libc::S_IFREG || kind == libc::S_IFCHR {
                    target = Some(fd);
                    break;
                }
                if kind == libc::S_IFDIR {
                    return Err(RootfsError::invalid(FIELD, "/dev/console is a directory"));
                }
                match unlinkat(&dev, "console", UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(RootfsError::sys(FIELD, "remove /dev/console", e)),
                }
            }
            Err(Errno::ENOENT) => match openat(&dev, "console", flags, Mode::from_bits_truncate(0o666)) {
                Ok(_) | Err(Errno::EEXIST | Errno::ELOOP) => {}
                Err(e) => return Err(RootfsError::sys(FIELD, "create /dev/console", e)),
            },
            Err(e) => return Err(RootfsError::sys(FIELD, "open /dev/console", e)),
        }
    }
    let target = target.ok_or_else(|| RootfsError::invalid(FIELD, "/dev/console keeps changing"))?;
    mount(
        Some(sys::fd_path(peer).as_str()),
        sys::fd_path(target.as_fd()).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys_err(FIELD, "bind pty onto /dev/console"))
}
