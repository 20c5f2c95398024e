//! One typed message enum over a SOCK_SEQPACKET socketpair between `berth create` and the
//! container's init: each message is one datagram, and EOF means the peer died. A message
//! may carry one fd (SCM_RIGHTS).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recv, recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType,
};
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
    /// Init → parent: I cannot open `mounts[index].source` myself (user namespace);
    /// open it in my mount namespace with the host's credentials.
    MountSourcePending { index: usize },
    /// Parent → init, with the O_PATH fd of the source (or `Error` instead).
    MountSource,
    /// Init → parent: mounts are done; run prestart and createRuntime hooks now.
    HooksPending,
    /// Parent → init: hooks ran.
    HooksDone,
    /// Init → parent, with the fd: the seccomp filter is loaded and notifies; hand its
    /// listener to the agent at `linux.seccomp.listenerPath`.
    SeccompListener,
    /// Init → parent: everything is set up; the init waits for `start`.
    Ready,
    /// Init → parent: set-up failed. Parent → init: a request (`MountSourcePending`) failed.
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

    /// Sends `msg` with `fd` attached.
    pub fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(&data)];
        loop {
            match sendmsg::<()>(self.fd.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message, or None if the peer closed its end (exited). An fd sent along is
    /// closed.
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(msg, _)| msg))
    }

    /// The next message and the fd sent with it, if any.
    pub fn recv_with_fd(&self) -> io::Result<Option<(Msg, Option<OwnedFd>)>> {
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
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(m) => {
                    let mut fd = None;
                    for c in m.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: the kernel installed these fds for us; we own them.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (m.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let msg = serde_json::from_slice(&buf[..n]).map_err(io::Error::other)?;
        Ok(Some((msg, fd)))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
