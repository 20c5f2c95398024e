//! The container's terminal: a pty from the container's own devpts, its master sent to the
//! caller's --console-socket over SCM_RIGHTS (as runc does), its peer obtained with
//! TIOCGPTPEER rather than by opening /dev/pts/N by name (CVE-2025-52565).

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::sys::term;

/// Connects to the console socket given on the command line (in the caller's mount namespace).
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let s = UnixStream::connect(path)?;
    Ok(s.into())
}

/// Unlocks the pty behind `master` and returns its peer, opened O_RDWR|O_NOCTTY, and its name.
pub fn open_peer(master: BorrowedFd<'_>) -> io::Result<(OwnedFd, String)> {
    let (peer, n) = term::open_pty_peer(master)?;
    Ok((peer, format!("/dev/pts/{n}")))
}

/// Sends `fd` with `name` as the message body, the format runc and go-runc use (for the
/// terminal's master, and for --pidfd-socket's pidfd).
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one fd sent with SCM_RIGHTS (used by `run` when it owns the terminal itself).
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    if let (_, Some(fd)) = crate::sys::recv_with_fd(socket, &mut iov)? {
        return Ok(fd);
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
    term::set_window_size(fd, &ws)
}

/// Makes `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling(fd: BorrowedFd<'_>) -> io::Result<()> {
    term::set_controlling_terminal(fd)
}
