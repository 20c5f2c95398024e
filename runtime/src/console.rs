//! The container's terminal: a pty from the container's own devpts, its master sent to the
//! caller's --console-socket over SCM_RIGHTS (as runc does), its peer obtained with
//! TIOCGPTPEER rather than by opening /dev/pts/N by name (CVE-2025-52565).

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

// From <asm-generic/ioctls.h>.
const TIOCSPTLCK: libc::c_ulong = 0x4004_5431;
const TIOCGPTN: libc::c_ulong = 0x8004_5430;
const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// Connects to the console socket given on the command line (in the caller's mount namespace).
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let s = UnixStream::connect(path)?;
    Ok(s.into())
}

/// Unlocks the pty behind `master` and returns its peer, opened O_RDWR|O_NOCTTY, and its name.
pub fn open_peer(master: BorrowedFd<'_>) -> io::Result<(OwnedFd, String)> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int to the pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTN, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a new fd that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(fd as RawFd) }, format!("/dev/pts/{n}")))
}

/// Sends `fd` with `name` as the message body, the format runc and go-runc use.
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one fd sent with SCM_RIGHTS (used by `run` when it owns the terminal itself).
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us; we own it now.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "no file descriptor received on the console socket"))
}

/// Clears ONLCR on a terminal (master or peer: they share one termios) that berth itself
/// copies to and from its own stdio (`run`/`exec` in the foreground), as runc does: the
/// process's "\n" then reaches our stdout as "\n", not "\r\n" (our own terminal, raw
/// meanwhile, is left to add what it needs). A master sent on to a --console-socket keeps
/// the kernel's default. Called before the process runs, so no output escapes it.
pub fn clear_onlcr(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    let mut t = tcgetattr(fd)?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(fd, SetArg::TCSANOW, &t)?;
    Ok(())
}

/// Sets the window size of a terminal.
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
