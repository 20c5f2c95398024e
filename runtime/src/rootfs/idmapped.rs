//! Id-mapped bind mounts (`idmap`/`ridmap`, per-mount `uidMappings`/`gidMappings`).
//! The kernel only id-maps a mount for a caller privileged over the filesystem's own user
//! namespace, which the init is not once it is in a user namespace; so, as runc does,
//! `berth create` builds each id-mapped tree in the host (open_tree clone +
//! mount_setattr(MOUNT_ATTR_IDMAP)) before cloning the init, which inherits the detached
//! trees and move_mounts them into place.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::RootfsError;
use crate::sys::mount::{self as msys, MountAttr};
use crate::sys::{self, Forked};

/// The detached, id-mapped trees of `mounts[i]`, by index.
pub type Prepared = HashMap<usize, OwnedFd>;

/// Whether a mount asks to be id-mapped, and recursively (`ridmap`).
pub fn wants(m: &oci_spec::runtime::Mount) -> Option<bool> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
        || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
    let ridmap = opts.iter().any(|o| o == "ridmap");
    (maps || ridmap || opts.iter().any(|o| o == "idmap")).then_some(ridmap)
}

/// Why no user namespace with the mount's maps could be made.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("clone3: {0}")]
    Clone(#[source] std::io::Error),
    #[error(transparent)]
    Maps(#[from] crate::id_mappings::MapError),
    #[error("opening its user namespace: {0}")]
    Open(#[source] std::io::Error),
}

/// A user namespace carrying `uid`/`gid`: made by a short-lived child we kill once its
/// namespace file is open.
pub fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, UsernsError> {
    let forked = sys::clone3_fork(libc::CLONE_NEWUSER as u64, None).map_err(UsernsError::Clone)?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            // Die with `berth create` if it dies first.
            let _ = sys::kill_with_parent();
            loop {
                // Wait for the SIGKILL that ends this helper.
                nix::unistd::pause();
            }
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let result = crate::id_mappings::write(pid, uid, gid)
        .map_err(UsernsError::from)
        .and_then(|()| File::open(format!("/proc/{pid}/ns/user")).map_err(UsernsError::Open));
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let _ = nix::sys::wait::waitid(nix::sys::wait::Id::PIDFd(pidfd.as_fd()), nix::sys::wait::WaitPidFlag::WEXITED);
    result.map(OwnedFd::from)
}

/// Builds the id-mapped trees of the spec's mounts (in `berth create`, on the host).
pub fn prepare(spec: &Spec, bundle: &Path) -> Result<Prepared, RootfsError> {
    let mut out = Prepared::new();
    let linux = spec.linux().as_ref();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let Some(recursive) = wants(m) else { continue };
        let field = format!("mounts[{i}]");
        let pick = |own: &Option<Vec<LinuxIdMapping>>, ctr: Option<&Vec<LinuxIdMapping>>| {
            own.clone().filter(|v| !v.is_empty()).or_else(|| ctr.cloned()).unwrap_or_default()
        };
        let uid = pick(m.uid_mappings(), linux.and_then(|l| l.uid_mappings().as_ref()));
        let gid = pick(m.gid_mappings(), linux.and_then(|l| l.gid_mappings().as_ref()));
        let source =
            m.source().as_ref().map(|s| if s.is_absolute() { s.clone() } else { bundle.join(s) }).unwrap_or_default();
        let src = nix::fcntl::open(&source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| RootfsError::sys(&field, format!("open bind source {}", source.display()), e))?;
        let rbind =
            m.options().as_deref().unwrap_or(&[]).iter().any(|o| o == "rbind") || m.typ().as_deref() == Some("rbind");
        let tree = msys::open_tree_fd(src.as_fd(), rbind).map_err(super::sys_err(&field, "open_tree"))?;
        let userns = userns_with(&uid, &gid).map_err(|source| RootfsError::Userns { field: field.clone(), source })?;
        idmap_tree(&tree, &userns, recursive).map_err(|e| {
            RootfsError::sys(format!("{field}.options"), "id-map the mount (mount_setattr MOUNT_ATTR_IDMAP)", e)
        })?;
        out.insert(i, tree);
    }
    Ok(out)
}

fn idmap_tree(tree: &OwnedFd, userns: &OwnedFd, recursive: bool) -> nix::Result<()> {
    let attr =
        MountAttr { attr_set: msys::MOUNT_ATTR_IDMAP, userns_fd: userns.as_raw_fd() as u64, ..Default::default() };
    msys::mount_setattr_fd(tree.as_fd(), recursive, &attr)
}
