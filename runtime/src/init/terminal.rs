//! The terminal of a container process, the init's or an exec'd one's: a pty from the
//! container's devpts whose master goes to the console socket (runc's format) and whose
//! peer becomes the process's stdio and controlling terminal.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::Process;

use super::error::{applying, doing, InitError};

/// Opens the peer of `master`, gives it `process.consoleSize` and sends `master` to
/// `socket`. `clear_onlcr`: berth itself copies the terminal (foreground `exec -t`), so
/// ONLCR goes here, before the process can write, not in berth after it received the
/// master.
pub fn hand_over(
    master: OwnedFd,
    process: &Process,
    socket: BorrowedFd,
    clear_onlcr: bool,
) -> Result<OwnedFd, InitError> {
    let (peer, name) = crate::console::open_peer(master.as_fd()).map_err(applying("terminal").io())?;
    if let Some(size) = process.console_size() {
        let _ = crate::console::set_size(peer.as_fd(), size.height() as u16, size.width() as u16);
    }
    if clear_onlcr {
        crate::console::clear_onlcr(peer.as_fd()).map_err(applying("terminal").doing("clearing ONLCR").io())?;
    }
    crate::console::send_fd(socket, master.as_fd(), &name)
        .map_err(doing("sending the terminal to the console socket").io())?;
    Ok(peer)
}

/// Makes `peer` fds 0-2 and the controlling terminal of this process (a session leader).
pub fn make_stdio(peer: OwnedFd) -> Result<(), InitError> {
    crate::sys::dup_onto_stdio(peer.as_fd()).map_err(applying("terminal").doing("dup2").io())?;
    crate::console::set_controlling(peer.as_fd()).map_err(applying("terminal").doing("TIOCSCTTY").io())
}
