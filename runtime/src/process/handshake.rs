//! The parent's side of the set-up handshake, for `create` and `exec` alike (the sequence
//! is drawn in [`super::channel`]): `Go`, then the child's requests, each answered, until it
//! reports `Ready`, and for `exec` the outcome of its execve. Each operation says what it
//! does for a request ([`Requests`]); the replies, the errors and the debug lines are the
//! handshake's.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::channel::{Channel, Msg};
use super::spawn::GuardedChild;
use super::Op;
use crate::error::{Error, Result};
use crate::{failpoint, log};

/// What the parent does for the requests a child makes during set-up. A request an
/// operation does not serve (`None`, the default) fails the handshake as unexpected.
pub trait Requests {
    /// `MapsPending`: write the uid_map and gid_map of the first child `pid`, which has
    /// unshared a user namespace. The reply is `MapsDone`.
    fn write_maps(&mut self, _pid: i32) -> Option<Result<()>> {
        None
    }

    /// `Child`: the first child forked the init, `init`, and exits; `child` is to be handed
    /// over to the init ([`GuardedChild::hand_over`]). Returns the state for the second `Go`.
    fn init_forked(&mut self, _child: &mut GuardedChild, _init: i32) -> Option<Result<String>> {
        None
    }

    /// `MountSourcePending`: open `mounts[index].source` for the child behind `pidfd`. An
    /// fd is sent as `MountSource`; an `Err` goes back as `Error`, and the child fails with it.
    fn open_mount_source(
        &mut self,
        _pidfd: BorrowedFd<'_>,
        _index: usize,
    ) -> Option<Result<std::result::Result<OwnedFd, String>>> {
        None
    }

    /// `HooksPending`: run the prestart and createRuntime hooks. The reply is `HooksDone`.
    fn run_hooks(&mut self) -> Option<Result<()>> {
        None
    }

    /// `SeccompListener`: hand the listener of the child `pid` to the seccomp agent. No reply.
    fn seccomp_listener(&mut self, _listener: OwnedFd, _pid: i32) -> Option<Result<()>> {
        None
    }
}

/// The parent's end of the channel and the child it leads to, which stays guarded until
/// [`Handshake::finish`].
pub struct Handshake<'a> {
    channel: Channel,
    child: GuardedChild,
    /// The container's id, which the errors name.
    id: &'a str,
    op: &'static Op,
}

impl<'a> Handshake<'a> {
    pub fn new(channel: Channel, child: GuardedChild, id: &'a str, op: &'static Op) -> Self {
        Handshake { channel, child, id, op }
    }

    /// The child's pid (the init's, once a first child has handed over).
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// `Go`: the child sits in its cgroup and goes on. `state` is the container's state as
    /// its hooks get it (empty for exec).
    pub fn go(&self, state: String) -> Result<()> {
        self.send(&Msg::Go { state })?;
        failpoint::hit(self.op.go_sent);
        log::debug(&format!("child process in init(): {} {} {}", self.op.child, self.pid(), self.op.after_go));
        Ok(())
    }

    /// Serves the child's requests until it reports `Ready`.
    pub fn serve(&mut self, requests: &mut impl Requests) -> Result<()> {
        loop {
            let received = self.channel.recv_with_fd().map_err(|e| self.sync_failed(e))?;
            let Some((msg, fd)) = received else {
                return Err(self.fail(format!("{} exited during set-up", self.op.peer_in_full)));
            };
            let pid = self.pid();
            let served = match &msg {
                Msg::MapsPending => requests.write_maps(pid).map(|r| r.and_then(|()| self.send(&Msg::MapsDone))),
                Msg::Child { pid: init } => {
                    let state = requests.init_forked(&mut self.child, *init);
                    state.map(|r| r.and_then(|state| self.send(&Msg::Go { state })))
                }
                Msg::MountSourcePending { index } => {
                    let opened = requests.open_mount_source(self.child.pidfd(), *index);
                    opened.map(|r| {
                        r.and_then(|opened| match opened {
                            Ok(source) => self.send_with_fd(&Msg::MountSource, source.as_fd()),
                            Err(m) => self.send(&Msg::Error(m)),
                        })
                    })
                }
                Msg::HooksPending => requests.run_hooks().map(|r| r.and_then(|()| self.send(&Msg::HooksDone))),
                Msg::SeccompListener => {
                    let listener =
                        fd.ok_or_else(|| self.fail("the seccomp listener message came without its fd".into()))?;
                    requests.seccomp_listener(listener, pid)
                }
                Msg::Ready => {
                    log::debug(&format!("{}: {} {pid} is set up", self.op.at_ready, self.op.child));
                    failpoint::hit(self.op.ready_received);
                    return Ok(());
                }
                Msg::Error(m) => return Err(self.fail(m.clone())),
                Msg::Go { .. } | Msg::MapsDone | Msg::MountSource | Msg::HooksDone => None,
            };
            match served {
                Some(done) => done?,
                None => return Err(self.unexpected(&msg)),
            }
        }
    }

    /// exec: `Ready` came right before execve and the channel is close-on-exec, so EOF
    /// means the exec happened; a message, that it failed.
    pub fn wait_exec(&self) -> Result<()> {
        match self.channel.recv().map_err(|e| self.sync_failed(e))? {
            None => Ok(()),
            Some(Msg::Error(m)) => Err(self.fail(m)),
            Some(other) => Err(self.unexpected(&other)),
        }
    }

    /// The operation completed: the child lives on, unguarded.
    /// A pidfd of the child (the init once a two-step init has handed it over).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.child.pidfd()
    }

    pub fn finish(self) -> (i32, OwnedFd) {
        self.child.release()
    }

    fn send(&self, msg: &Msg) -> Result<()> {
        self.channel.send(msg).map_err(|e| self.send_failed(e))
    }

    fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
        self.channel.send_with_fd(msg, fd).map_err(|e| self.send_failed(e))
    }

    /// Why a message could not reach the child: when it has gone (EPIPE), its own report of
    /// the failure if it sent one before exiting, else the error.
    fn send_failed(&self, e: io::Error) -> Error {
        if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) {
            // The peer closed its end: this reads what it left, then EOF; it cannot block.
            if let Ok(Some(Msg::Error(m))) = self.channel.recv() {
                return self.fail(m);
            }
        }
        self.sync_failed(e)
    }

    fn sync_failed(&self, e: io::Error) -> Error {
        self.fail(format!("sync with {}: {e}", self.op.peer))
    }

    fn unexpected(&self, msg: &Msg) -> Error {
        self.fail(format!("unexpected message from {}: {msg:?}", self.op.peer))
    }

    fn fail(&self, msg: String) -> Error {
        Error::Init { id: self.id.to_string(), msg }
    }
}
