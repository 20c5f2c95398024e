//! Bind sources the parent, `berth create`, opens for the init, at the init's request and
//! in the init's mount namespace, when the mount's turn comes:
//! - in a user namespace the init is root only over the ids it maps, so a source below a
//!   host directory it may not search (a 0700 directory of the host's root) fails with
//!   EACCES; the init asks only after its own open failed;
//! - an id-mapped mount (`idmap`, `ridmap`, the mount's own `uidMappings`) needs a caller
//!   privileged over the filesystem's user namespace, which the init is not once it is in
//!   one ([`super::idmapped`]); the init always asks for those.
//!
//! As runc (1.1's mountFds, 1.3's mount source thread) does, a short-lived helper, still
//! the host's root, joins the init's mount namespace and opens the source there, so the
//! fd names a mount of the init's namespace (one in the host's namespace could not be
//! bound there: open_tree and MS_BIND refuse foreign mounts), the mount keeps the locks
//! the kernel put on it for the less privileged namespace, and a source under the rootfs
//! sees the mounts made before it. The init asks only by index: the parent takes the path
//! from its own copy of the config.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use oci_spec::runtime::{Mount, Spec};

use crate::process::channel::{self, Msg};
use crate::sys::{self, Forked};

/// The init's side: ask the parent for `mounts[index].source`, opened O_PATH in the
/// init's mount namespace.
pub type HostOpen<'a> = &'a dyn Fn(usize) -> Result<OwnedFd, HostOpenError>;

/// Why the parent did not hand over a bind source.
#[derive(Debug, thiserror::Error)]
pub enum HostOpenError {
    /// The request or its answer did not cross the channel.
    #[error("sync with parent: {0}")]
    Sync(#[source] std::io::Error),
    /// The parent's own report, as the channel carries it: text.
    #[error("{0}")]
    Parent(String),
}

/// `mounts[index]`, and its source as the parent resolves it (relative to the bundle).
fn mount_and_source<'a>(spec: &'a Spec, bundle: &Path, index: usize) -> Result<(&'a Mount, PathBuf), String> {
    let m =
        spec.mounts().as_ref().and_then(|v| v.get(index)).ok_or_else(|| format!("mounts[{index}]: no such mount"))?;
    let source = m.source().as_ref().ok_or_else(|| format!("mounts[{index}].source: missing"))?;
    Ok((m, if source.is_absolute() { source.clone() } else { bundle.join(source) }))
}

/// The parent's side: open `mounts[index].source` in the mount namespace of the process
/// `init` (a pidfd) with this process's (the host's) credentials: O_PATH, or for an
/// id-mapped mount a detached, id-mapped clone of it. Errors do not repeat the field: the
/// init reports them under the mount's name.
pub fn open_for_init(init: BorrowedFd, spec: &Spec, bundle: &Path, index: usize) -> Result<OwnedFd, String> {
    let (mount, path) = mount_and_source(spec, bundle, index)?;
    // The user namespace is made (or opened) here, before the helper changes mount
    // namespace: a joined namespace's path names a file of the host's.
    let idmap = match super::idmapped::wants(mount) {
        Some(recursive) => {
            let userns =
                super::idmapped::userns_for(spec, mount).map_err(|e| format!("id-mapping user namespace: {e}"))?;
            Some((userns, recursive))
        }
        None => None,
    };
    let (ours, theirs) = channel::pair().map_err(|e| format!("socketpair: {e}"))?;
    // The helper, not this process, changes mount namespace: setns would also move our
    // root and cwd, which the rest of `create` relies on.
    let (_, helper) = match sys::clone3_fork(0, None).map_err(|e| format!("fork: {e}"))? {
        Forked::Child => {
            drop(ours);
            let _ = sys::set_non_dumpable();
            let opened = nix::sched::setns(init, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("joining the container's mount namespace: {e}"))
                .and_then(|()| {
                    nix::fcntl::open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                        .map_err(|e| format!("open bind source {}: {e}", path.display()))
                })
                .and_then(|src| match &idmap {
                    Some((userns, recursive)) => super::idmapped::mapped_tree(src.as_fd(), mount, userns, *recursive),
                    None => Ok(src),
                });
            let sent = match opened {
                Ok(fd) => theirs.send_with_fd(&Msg::MountSource, fd.as_fd()),
                Err(m) => theirs.send(&Msg::Error(m)),
            };
            // _exit ends the helper without running the parent's destructors.
            crate::sys::exit_now(i32::from(sent.is_err()))
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(theirs);
    let reply = ours.recv_with_fd();
    let _ = waitid(Id::PIDFd(helper.as_fd()), WaitPidFlag::WEXITED);
    match reply {
        Ok(Some((Msg::MountSource, Some(fd)))) => Ok(fd),
        Ok(Some((Msg::Error(m), _))) => Err(m),
        Ok(Some((other, _))) => Err(format!("unexpected reply from the helper: {other:?}")),
        Ok(None) => Err("the helper opening the bind source died".to_string()),
        Err(e) => Err(format!("reading the helper's reply: {e}")),
    }
}
