//! `tmpcopyup` (runc/crun extension, podman's default for tmpfs): fill a new
//! tmpfs with what the image had at its destination. Both sides are walked by
//! fd without following links, so image symlinks are copied as links and
//! never read through.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, mknodat, umask, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

use crate::sys::mount::fd_path;

/// Directory nesting we follow; deeper trees are an error, not a stack overflow.
const MAX_DEPTH: usize = 128;

fn open_dir_nofollow(dir: BorrowedFd, name: &CStr) -> nix::Result<OwnedFd> {
    openat(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
}

fn copy_entry(src: BorrowedFd, dst: BorrowedFd, name: &CStr, depth: usize) -> nix::Result<()> {
    let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
        SFlag::S_IFDIR => {
            match mkdirat(dst, name, mode) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            let s = open_dir_nofollow(src, name)?;
            let d = open_dir_nofollow(dst, name)?;
            copy_dir(s.as_fd(), d.as_fd(), depth + 1)?;
        }
        SFlag::S_IFREG => {
            let s = openat(src, name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
            let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let d = openat(dst, name, flags, mode)?;
            let mut s = std::fs::File::from(s);
            let mut d = std::fs::File::from(d);
            std::io::copy(&mut s, &mut d).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(src, name)?;
            symlinkat(target.as_os_str(), dst, name)?;
        }
        k @ (SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO) => {
            mknodat(dst, name, k, mode, st.st_rdev)?;
        }
        // Sockets are bound to a live process; nothing to copy.
        _ => return Ok(()),
    }
    fchownat(dst, name, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)), AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn copy_dir(src: BorrowedFd, dst: BorrowedFd, depth: usize) -> nix::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    // Listing goes through our own fd's magic link, so it is the directory
    // we opened, whatever happens to names meanwhile.
    let dir = open_dir_nofollow(src, c".")?;
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    for entry in std::fs::read_dir(fd_path(dir.as_fd())).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = CString::new(entry.file_name().as_bytes()).map_err(|_| Errno::EINVAL)?;
        copy_entry(src, dst, &name, depth)?;
    }
    Ok(())
}

/// Copy the tree under `src` (the covered directory) into `dst` (the new
/// tmpfs root), keeping modes, owners, links and device nodes.
pub(crate) fn copy_up(src: BorrowedFd, dst: BorrowedFd) -> nix::Result<()> {
    let old = umask(Mode::empty());
    let r = copy_dir(src, dst, 0);
    umask(old);
    r
}
