//! File descriptors: FD_CLOEXEC, whether an fd is open, fds received over SCM_RIGHTS,
//! closing or marking close-on-exec what a container must not inherit,
//! and an fd handed down by a parent.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Sets (`on`) or clears FD_CLOEXEC on `fd`, keeping its other fd flags.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd; an invalid fd just fails with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD has no side effect.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// recvmsg(2) with room for one fd sent along (SCM_RIGHTS, received CLOEXEC): the bytes
/// read and the fd, now owned by the caller. EINTR is returned as is.
pub fn recv_with_fd(sock: BorrowedFd<'_>, iov: &mut [io::IoSliceMut<'_>]) -> nix::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let m = recvmsg::<()>(sock.as_raw_fd(), iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fd = None;
    for c in m.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel installed these fds for us; nothing else owns them.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                fd.get_or_insert(owned);
            }
        }
    }
    Ok((m.bytes, fd))
}

/// Takes ownership of an fd our parent left open for us and named (in an environment
/// variable): fails if no such fd is open. Call it once per fd, at start-up, before
/// anything else in the process could have opened or closed that number.
pub fn own_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if !fd_is_open(fd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the fd is open, was passed down by our parent and nothing else in this
    // process refers to it (see above), so this OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// The process's fd table: closing or marking CLOEXEC everything a container must not inherit.

const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

fn close_range(first: u32, last: u32, flags: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments; it only acts on this process's fd table.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The fds open in this process, from /proc/self/fd (without the one used to read it).
fn open_fds() -> io::Result<Vec<RawFd>> {
    let dir = std::fs::read_dir("/proc/self/fd")?;
    let mut fds: Vec<RawFd> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    // The directory's own fd was listed too and is closed now.
    fds.retain(|fd| fd_is_open(*fd));
    Ok(fds)
}

/// Marks every fd from `first` up CLOEXEC, so nothing the caller leaked reaches the
/// container (CVE-2024-21626). close_range(CLOSE_RANGE_CLOEXEC) where the kernel (5.11)
/// and the host's own seccomp profile allow it, /proc/self/fd and fcntl otherwise.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    if close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC).is_ok() {
        return Ok(());
    }
    for fd in open_fds()? {
        if fd as u32 >= first {
            set_cloexec(fd, true)?;
        }
    }
    Ok(())
}

/// Closes every fd from `first` up except those in `keep` (close_range over the gaps,
/// /proc/self/fd and close where close_range is missing or denied). Only for a process
/// that owns all of them: the forked init, whose other `OwnedFd`s are never dropped.
pub fn close_from_except(first: u32, keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> =
        keep.iter().filter(|fd| **fd >= 0).map(|fd| *fd as u32).filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut gaps = Vec::new();
    let mut lo = first;
    for k in &keep {
        if *k > lo {
            gaps.push((lo, k - 1));
        }
        lo = k.saturating_add(1);
    }
    gaps.push((lo, u32::MAX));
    if gaps.iter().all(|(a, b)| close_range(*a, *b, 0).is_ok()) {
        return Ok(());
    }
    for fd in open_fds()? {
        if fd as u32 >= first && keep.binary_search(&(fd as u32)).is_err() {
            // SAFETY: this process owns the fd, and nothing uses it after this (see above).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// Makes `fd` this process's stdin, stdout and stderr (dup2 onto 0, 1 and 2).
pub fn dup_onto_stdio(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    nix::unistd::dup2_stdin(fd)?;
    nix::unistd::dup2_stdout(fd)?;
    nix::unistd::dup2_stderr(fd)?;
    Ok(())
}

/// accept4(2) with SOCK_CLOEXEC, retried on EINTR.
pub fn accept_cloexec(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{accept4, SockFlag};
    let fd = loop {
        match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => break fd,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: accept4 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes sure fds 0 to `end - 1` are occupied (by /dev/null where free), so no fd opened
/// later can land in a slot the container would inherit.
pub fn occupy_free_fds(end: RawFd) {
    for fd in 0..end {
        if !fd_is_open(fd) {
            if let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                let raw = std::os::fd::IntoRawFd::into_raw_fd(f);
                if raw != fd {
                    // SAFETY: dup2 onto a slot that is free (checked above), so no fd owned
                    // elsewhere is replaced; then close our temporary fd, which we own.
                    unsafe {
                        libc::dup2(raw, fd);
                        libc::close(raw);
                    }
                }
            }
        }
    }
}

/// Clears FD_CLOEXEC so the fd survives execve (for --preserve-fds).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    set_cloexec(fd, false)
}
