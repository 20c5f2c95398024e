//! The start handshake. A created init blocks in accept() on a unix socket in the state
//! directory; `berth start` connects, sends the state JSON, and shuts down its write side.
//! The init runs startContainer hooks and execs; if that fails it writes the error back, and
//! on success the connection closes on exec (CLOEXEC), so `start` reads EOF and nothing else.
//!
//! The socket is bound and connected by a name relative to the state directory (through
//! /proc/self/fd of a directory fd), because `<root>/<64-char id>/…` can exceed the 108 bytes
//! of sun_path.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

fn addr_in(dir: &std::fs::File, name: &str) -> io::Result<UnixAddr> {
    let path = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name);
    Ok(UnixAddr::new(Path::new(&path))?)
}

/// Creates the listening socket `<dir>/<name>`, mode 0600.
pub fn listen(dir: &Path, name: &str) -> io::Result<OwnedFd> {
    let dirf = std::fs::File::open(dir)?;
    let fd = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let addr = addr_in(&dirf, name)?;
    socket::bind(fd.as_raw_fd(), &addr)?;
    std::fs::set_permissions(dir.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    socket::listen(&fd, Backlog::new(1).map_err(io::Error::from)?)?;
    Ok(fd)
}

/// Init side: wait for `start`, return the connection and the state JSON it sent.
pub fn accept(listener: &OwnedFd) -> io::Result<(UnixStream, Vec<u8>)> {
    let mut conn = UnixStream::from(crate::sys::accept_cloexec(listener.as_fd())?);
    // Unbounded, like the annotations it carries: only root can reach the 0600 socket in
    // the state directory, and `start` sends one state and shuts its side down.
    let mut state = Vec::new();
    conn.read_to_end(&mut state)?;
    Ok((conn, state))
}

/// Start side: connect, hand over the state, and return what the init reported
/// (empty: it exec'd the process).
pub fn start(dir: &Path, name: &str, state: &[u8]) -> io::Result<String> {
    let dirf = std::fs::File::open(dir)?;
    let fd = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::connect(fd.as_raw_fd(), &addr_in(&dirf, name)?)?;
    let mut conn = UnixStream::from(fd);
    conn.write_all(state)?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    (&mut conn).take(64 * 1024).read_to_string(&mut reply)?;
    Ok(reply)
}
