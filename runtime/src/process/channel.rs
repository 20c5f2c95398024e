//! One typed message enum over a SOCK_SEQPACKET socketpair between `berth create` and the
//! container's init: each message is one datagram, and EOF means the peer died.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Parent → init: the init sits in its cgroup; go on. Carries the state JSON the init
    /// hands to createContainer hooks (only the parent knows the init's host pid).
    Go { state: String },
    /// First child → parent: I unshared a user namespace; write my uid/gid maps.
    MapsPending,
    /// Parent → first child: the maps are written.
    MapsDone,
    /// First child → parent: the real init is forked (as the parent's child) with this
    /// host pid; the first child exits. The parent answers with a second `Go`.
    Child { pid: i32 },
    /// Init → parent: mounts are done; run prestart and createRuntime hooks now.
    HooksPending,
    /// Parent → init: hooks ran.
    HooksDone,
    /// Init → parent: everything is set up; the init waits for `start`.
    Ready,
    /// Init → parent: set-up failed.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

const MAX_MSG: usize = 64 * 1024;

pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
        loop {
            match send(std::os::fd::AsRawFd::as_raw_fd(&self.fd), &data, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message, or None if the peer closed its end (exited).
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        use std::os::fd::AsRawFd;
        // Peek at the datagram's real length (MSG_TRUNC) so the buffer is only as large as
        // the message: this runs in every create, in the parent and in the init.
        let len = loop {
            match recv(self.fd.as_raw_fd(), &mut [0u8; 0], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if len == 0 {
            // Drain the EOF (or the empty datagram) and report the peer gone.
            let _ = recv(self.fd.as_raw_fd(), &mut [0u8; 1], MsgFlags::empty());
            return Ok(None);
        }
        let mut buf = vec![0u8; len.min(MAX_MSG)];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        serde_json::from_slice(&buf[..n]).map(Some).map_err(io::Error::other)
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
