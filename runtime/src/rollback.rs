//! What a failed `create` (or `restore`) undoes: every resource it made is held here until
//! the operation completes, so a failure at any step leaves nothing behind. The init has its
//! own guard (`process::spawn::GuardedChild`), which the caller declares after this one so
//! that it is dropped first: the init dies before its cgroup and mounts go.
//!
//! If berth itself is killed, nothing here runs: the early record is what lets
//! `delete --force` find and remove what was made.

use std::path::PathBuf;

use crate::cgroups::Manager;
use crate::log;
use crate::rootfs;
use crate::state::Store;

/// Undoes a partial create when dropped, unless disarmed.
pub(crate) struct Rollback<'a> {
    pub(crate) store: &'a Store,
    pub(crate) id: &'a str,
    /// The state directory `<root>/<id>` is ours to remove.
    pub(crate) dir: bool,
    pub(crate) cgroup: Option<Box<dyn Manager>>,
    /// Without a mount namespace: the rootfs and the id of the mount on top of it before
    /// the init started, to detach what the init mounted there.
    pub(crate) shared_rootfs: Option<(PathBuf, u64)>,
}

impl<'a> Rollback<'a> {
    /// Holds the state directory just made for `id`.
    pub(crate) fn new(store: &'a Store, id: &'a str) -> Self {
        Rollback { store, id, dir: true, cgroup: None, shared_rootfs: None }
    }

    pub(crate) fn disarm(mut self) {
        self.dir = false;
        self.cgroup = None;
        self.shared_rootfs = None;
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if let Some((rootfs, before)) = self.shared_rootfs.take() {
            if let Err(e) = rootfs::shared_ns::detach(&rootfs, Some(before), None) {
                log::warn(&format!("cleaning up after a failed create: {e}"));
            }
        }
        if let Some(cg) = self.cgroup.take() {
            crate::signal::kill_cgroup(&*cg, libc::SIGKILL);
            if let Err(e) = cg.destroy() {
                log::warn(&format!("cleaning up after a failed create: {e}"));
            }
        }
        if self.dir {
            let _ = self.store.remove(self.id);
        }
    }
}
