//! File descriptors: FD_CLOEXEC, whether an fd is open, fds received over SCM_RIGHTS,
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
