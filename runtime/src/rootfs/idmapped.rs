//! Id-mapped bind mounts (`idmap`/`ridmap`, per-mount `uidMappings`/`gidMappings`).
//! The kernel only id-maps a mount for a caller privileged over the filesystem's own user
//! namespace, which the init is not once it is in a user namespace; so, as runc 1.3 does,
//! `berth create` builds each id-mapped tree when the init reaches the mount (open_tree
//! clone + mount_setattr(MOUNT_ATTR_IDMAP), in the init's mount namespace: see
//! [`super::source`]), and the init move_mounts it into place.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use crate::sys::mount::{self as msys, MountAttr};
use crate::sys::{self, Forked};

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
    #[error("opening the user namespace the container joins, {}: {source}", path.display())]
    Join {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
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

/// The user namespace whose maps an id-mapped `m` takes: the mount's own maps; without
/// them the user namespace the container joins (`linux.namespaces[].path`, as runc), or
/// one carrying the container's `linux.uidMappings`/`gidMappings`.
pub fn userns_for(spec: &Spec, m: &Mount) -> Result<OwnedFd, UsernsError> {
    let own = |v: &Option<Vec<LinuxIdMapping>>| v.clone().filter(|v| !v.is_empty());
    let linux = spec.linux().as_ref();
    let (uid, gid) = match (own(m.uid_mappings()), own(m.gid_mappings())) {
        (Some(uid), Some(gid)) => (uid, gid),
        _ => {
            let joined = linux
                .and_then(|l| l.namespaces().as_ref())
                .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User))
                .and_then(|n| n.path().clone());
            if let Some(path) = joined {
                return File::open(&path).map(OwnedFd::from).map_err(|source| UsernsError::Join { path, source });
            }
            let ctr = |v: Option<&Vec<LinuxIdMapping>>| v.cloned().unwrap_or_default();
            (ctr(linux.and_then(|l| l.uid_mappings().as_ref())), ctr(linux.and_then(|l| l.gid_mappings().as_ref())))
        }
    };
    userns_with(&uid, &gid)
}

/// A detached clone of the mount at `src` (recursive for `rbind`), id-mapped with the maps
/// of `userns`, only its top mount or (`ridmap`) all of it. Errors read as the init
/// reports them under the mount's name.
pub fn mapped_tree(src: BorrowedFd, m: &Mount, userns: &OwnedFd, recursive: bool) -> Result<OwnedFd, String> {
    // Recursive as the init's own binds decide it (mounts.rs), from the options only, as runc.
    let rbind = super::options::parse(m.options().as_deref().unwrap_or(&[])).is_rbind();
    let tree = msys::open_tree_fd(src, rbind).map_err(|e| format!("open_tree: {e}"))?;
    let attr =
        MountAttr { attr_set: msys::MOUNT_ATTR_IDMAP, userns_fd: userns.as_raw_fd() as u64, ..Default::default() };
    msys::mount_setattr_fd(tree.as_fd(), recursive, &attr)
        .map_err(|e| format!("id-map the mount (mount_setattr MOUNT_ATTR_IDMAP): {e}"))?;
    Ok(tree)
}
