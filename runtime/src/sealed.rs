//! CVE-2019-5736: a container must never be able to write the host's berth binary through
//! /proc/<pid>/exe of a berth process that entered it. Before a command that enters a
//! container, berth re-executes itself from an unwritable view of its binary (T1):
//!
//! 1. a detached read-only bind mount of the binary (open_tree(OPEN_TREE_CLONE) +
//!    mount_setattr(RDONLY)): /proc/<pid>/exe then points into a read-only mount no mount
//!    namespace contains, so every write through it fails with EROFS. Nothing is copied
//!    and no mount table changes, so it costs little more than the execve itself;
//! 2. where that is refused (kernels before 5.12, no CAP_SYS_ADMIN), a sealed memfd copy,
//!    which costs a copy of the whole binary (~4 ms here).
//!
//! Commands that do not enter a container skip this and cost nothing extra.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::os::unix::ffi::OsStrExt;

const F_SEAL_SEAL: i32 = 0x0001;
const F_SEAL_SHRINK: i32 = 0x0002;
const F_SEAL_GROW: i32 = 0x0004;
const F_SEAL_WRITE: i32 = 0x0008;
const F_SEAL_EXEC: i32 = 0x0020;
const SEALS: i32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
const MFD_EXEC: u32 = 0x0010;

fn seals_of(fd: &OwnedFd) -> i32 {
    fcntl(fd, FcntlArg::F_GET_SEALS).unwrap_or(-1)
}

/// Whether this process already runs from a binary nobody can write: a sealed copy, or
/// a file on a read-only mount.
pub fn is_protected() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    let fd = OwnedFd::from(f);
    let s = seals_of(&fd);
    if s >= 0 && s & SEALS == SEALS {
        return true;
    }
    nix::sys::statvfs::fstatvfs(&fd).is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// A detached, read-only bind mount of our own binary, as an O_PATH fd to exec.
fn readonly_view() -> io::Result<OwnedFd> {
    use crate::sys::mount::{
        mount_setattr_fd, open_tree_fd, MountAttr, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    };
    let exe = std::fs::File::open("/proc/self/exe")?;
    let tree = open_tree_fd(std::os::fd::AsFd::as_fd(&exe), false)?;
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, ..Default::default() };
    mount_setattr_fd(std::os::fd::AsFd::as_fd(&tree), false, &attr)?;
    Ok(tree)
}

fn memfd(name: &std::ffi::CStr, flags: u32) -> io::Result<OwnedFd> {
    // MFD_EXEC is newer than nix's flag list: keep every bit as given.
    Ok(memfd_create(name, MFdFlags::from_bits_retain(flags))?)
}

/// Re-executes the current command from an unwritable view of the binary, unless it
/// already runs from one. Returns only on failure.
pub fn reexec_protected() -> io::Result<()> {
    if is_protected() {
        return Ok(());
    }
    let image = match readonly_view() {
        Ok(fd) => fd,
        Err(_) => sealed_copy()?,
    };
    let (argv, envp) = command_line()?;
    match nix::unistd::execveat(&image, c"", &argv, &envp, nix::fcntl::AtFlags::AT_EMPTY_PATH) {
        Err(e) => Err(e.into()),
        Ok(never) => match never {},
    }
}

fn sealed_copy() -> io::Result<OwnedFd> {
    let exe = std::fs::File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    let name = c"berth-sealed";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (6.3+) keeps the copy executable even where memfds default to noexec.
    let copy = memfd(name, base | MFD_EXEC).or_else(|_| memfd(name, base))?;
    // sendfile stays in the kernel; copy_file_range would refuse ext4 → tmpfs (EXDEV).
    let mut off: libc::off_t = 0;
    while (off as u64) < len {
        // The kernel advances off.
        let count = (len - off as u64) as usize;
        let n = nix::sys::sendfile::sendfile(&copy, &exe, Some(&mut off), count)?;
        if n == 0 {
            break;
        }
    }
    drop(exe);
    // F_SEAL_EXEC is newer than nix's flag list: keep every bit as given.
    if fcntl(&copy, FcntlArg::F_ADD_SEALS(SealFlag::from_bits_retain(SEALS | F_SEAL_EXEC))).is_err() {
        // Kernels before 6.3 know no F_SEAL_EXEC.
        fcntl(&copy, FcntlArg::F_ADD_SEALS(SealFlag::from_bits_retain(SEALS)))?;
    }
    Ok(copy)
}

fn command_line() -> io::Result<(Vec<CString>, Vec<CString>)> {
    let to_c =
        |s: &std::ffi::OsStr| CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let argv: Vec<CString> = std::env::args_os().map(|a| to_c(&a)).collect::<io::Result<_>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        })
        .collect::<io::Result<_>>()?;
    Ok((argv, envp))
}
