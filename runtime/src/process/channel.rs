//! One typed message enum over a SOCK_STREAM socketpair between `berth` and the process it
//! forks into a container (the init of `create`, the process of `exec`). Each message is a
//! frame: its length (u32, little-endian) and its JSON. EOF between frames means the peer
//! died. A message may carry one fd (SCM_RIGHTS), attached to the first bytes of its frame.
//!
//! A stream, not datagrams: a datagram must fit the socket's send buffer in one piece
//! (~208 KiB by default), and `Go` carries the container's state, annotations included,
//! which the spec does not bound (runc passes 1 MiB of annotations).
//!
//! # The handshake
//!
//! The parent's side is `handshake.rs` (with `spawn.rs` before it), the init's `init/`, the
//! exec'd process's `exec.rs`. `[…]` says when a message is sent at all.
//!
//! `create`, the init made in one step (no user or time namespace):
//!
//! ```text
//!  berth create                                          init
//!  clone3: new namespaces, into a pid namespace by
//!  path, into the v2 cgroup  ─────────────────────────►  v1: moves itself into its cgroups
//!                                                        (the `tasks` files berth opened);
//!                                                        closes inherited fds, waits
//!  oom_score_adj;
//!  linux.netDevices moved into its netns
//!  Go { state }  ─────────────────────────────────────►  joins namespaces by path, new cgroup ns,
//!                                                        keyring, setsid, hostname, sysctls, mounts
//!                ◄───────────────────────────────────── MountSourcePending { index }
//!                                                        [in a user ns: a bind source it cannot open]
//!  opens it with the host's credentials in the init's
//!  mount ns (rootfs/source.rs)
//!  MountSource + fd, or Error(why)  ──────────────────►  mounts it, or fails with `why`
//!                ◄───────────────────────────────────── HooksPending
//!                                                        [prestart or createRuntime hooks]
//!  runs them, in the bundle
//!  HooksDone  ────────────────────────────────────────►  createContainer hooks, terminal,
//!                                                        pivot_root, process attributes, seccomp
//!                ◄───────────────────────────────────── SeccompListener + fd   [NOTIFY rules]
//!  hands it to linux.seccomp.listenerPath with the
//!  state; no reply
//!                ◄───────────────────────────────────── Ready
//!  saves state.json, writes --pid-file, exits            waits for `berth start` (start.rs)
//! ```
//!
//! `create` with a user or time namespace: a first child makes the namespaces, then forks
//! the init (`init/stage.rs`):
//!
//! ```text
//!  berth create                                          first child
//!  clone3: no namespaces, into the v2 cgroup  ────────►  v1: moves itself into its cgroups;
//!                                                        closes inherited fds, waits
//!  oom_score_adj
//!  Go { state }  ─────────────────────────────────────►  joins namespaces by path (user first),
//!                                                        unshares a user namespace
//!                ◄───────────────────────────────────── MapsPending   [a new user namespace]
//!  writes its uid_map and gid_map (id_mappings.rs)
//!  MapsDone  ─────────────────────────────────────────►  becomes uid/gid 0, unshares the other
//!                                                        namespaces, writes time offsets, forks
//!                                                        the init (CLONE_PARENT)
//!                ◄───────────────────────────────────── Child { pid }, and exits
//!  reaps it, guards the init instead, moves
//!  linux.netDevices into the init's netns
//!  Go { state with the init's pid }  ─────────────────►  the init: from the cgroup namespace on,
//!                                                        as above
//! ```
//!
//! `exec`:
//!
//! ```text
//!  berth exec                                            process
//!  clone3: into the init's pid namespace, into the
//!  v2 cgroup (or --cgroup's)  ────────────────────────►  v1: moves itself into its cgroups;
//!                                                        closes inherited fds, waits
//!  oom_score_adj
//!  Go { "" }  ────────────────────────────────────────►  setns(init's pidfd) for every other
//!                                                        namespace, keyring, setsid, terminal
//!                                                        (its master over a socket of its own),
//!                                                        process attributes, seccomp
//!                ◄───────────────────────────────────── SeccompListener + fd   [NOTIFY rules]
//!  hands it to listenerPath with the state (running,
//!  the init's pid); no reply
//!                ◄───────────────────────────────────── Ready, then execve
//!  EOF: the execve happened (the channel is CLOEXEC)
//!                ◄───────────────────────────────────── or Error(why): it failed; exits 127
//!  writes --pid-file; waits unless --detach
//! ```
//!
//! In every sequence the child may send `Error(why)` instead of its next message and exit:
//! the parent fails with `why` (and kills the child and undoes what it made). EOF before
//! `Ready` means the child died. A reply that cannot be sent because the child has gone is
//! reported with the `Error` it left, if any. Any other message is unexpected and fails the
//! operation.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
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

/// The frame header: the JSON's length.
const HEADER: usize = 4;

pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

/// `msg` as one frame: header and JSON.
fn frame(msg: &Msg) -> io::Result<Vec<u8>> {
    let mut data = vec![0u8; HEADER];
    serde_json::to_writer(&mut data, msg).map_err(io::Error::other)?;
    let len = u32::try_from(data.len() - HEADER).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("a message of {} bytes is too large", data.len()))
    })?;
    data[..HEADER].copy_from_slice(&len.to_le_bytes());
    Ok(data)
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        self.send_all(&frame(msg)?)
    }

    /// Writes all of `data`, however many writes the socket's buffer takes (the peer reads
    /// as we write).
    fn send_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match send(self.fd.as_raw_fd(), data, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Sends `msg` with `fd` attached.
    pub fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> io::Result<()> {
        let data = frame(msg)?;
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(&data)];
        let sent = loop {
            match sendmsg::<()>(self.fd.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        // The fd went with the first bytes; the rest, if the buffer was full, follows.
        self.send_all(&data[sent..])
    }

    /// The next message, or None if the peer closed its end (exited). An fd sent along is
    /// closed.
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(msg, _)| msg))
    }

    /// The next message and the fd sent with it, if any.
    pub fn recv_with_fd(&self) -> io::Result<Option<(Msg, Option<OwnedFd>)>> {
        // The header alone first, with room for an fd: the kernel hands an fd over with the
        // first bytes of the write that carried it, which is the header of its frame, and
        // never merges those bytes into an earlier read.
        let mut header = [0u8; HEADER];
        let mut got = 0;
        let mut fd = None;
        while got < HEADER {
            let mut iov = [IoSliceMut::new(&mut header[got..])];
            let n = match crate::sys::recv_with_fd(self.fd.as_fd(), &mut iov) {
                Ok((n, received)) => {
                    if let Some(owned) = received {
                        fd.get_or_insert(owned);
                    }
                    n
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer exited in the middle of a message"));
            }
            got += n;
        }
        let len = u32::from_le_bytes(header) as usize;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match recv(self.fd.as_raw_fd(), &mut buf[got..], MsgFlags::empty()) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the peer exited in the middle of a message ({got} of {len} bytes)"),
                    ))
                }
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let msg = serde_json::from_slice(&buf).map_err(io::Error::other)?;
        Ok(Some((msg, fd)))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A second handle on the same socket (a dup, close-on-exec).
    pub fn try_clone(&self) -> io::Result<Channel> {
        Ok(Channel { fd: self.fd.try_clone()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_larger_than_a_socket_buffer_arrive_whole() {
        let (a, b) = pair().unwrap();
        let state = "x".repeat(4 << 20);
        let sent = state.clone();
        let t = std::thread::spawn(move || {
            a.send(&Msg::Go { state: sent }).unwrap();
            a.send(&Msg::Ready).unwrap();
        });
        match b.recv().unwrap() {
            Some(Msg::Go { state: got }) => assert!(got == state, "the state changed in transit"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(b.recv().unwrap(), Some(Msg::Ready)));
        t.join().unwrap();
        assert!(b.recv().unwrap().is_none(), "EOF after the peer closed");
    }

    #[test]
    fn an_fd_arrives_with_its_message() {
        let (a, b) = pair().unwrap();
        // From another thread: a message larger than the socket's buffer blocks its sender
        // until the receiver reads.
        let t = std::thread::spawn(move || {
            let f = std::fs::File::open("/dev/null").unwrap();
            a.send(&Msg::HooksDone).unwrap();
            a.send_with_fd(&Msg::SeccompListener, f.as_fd()).unwrap();
            a.send(&Msg::Error("e".repeat(300_000))).unwrap();
        });
        let (m, fd) = b.recv_with_fd().unwrap().unwrap();
        assert!(matches!(m, Msg::HooksDone) && fd.is_none());
        let (m, fd) = b.recv_with_fd().unwrap().unwrap();
        assert!(matches!(m, Msg::SeccompListener) && fd.is_some());
        let (m, fd) = b.recv_with_fd().unwrap().unwrap();
        assert!(matches!(m, Msg::Error(ref e) if e.len() == 300_000) && fd.is_none());
        t.join().unwrap();
    }
}
