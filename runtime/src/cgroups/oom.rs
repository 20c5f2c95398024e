//! Noticing OOM kills in the container's cgroup, for `events`: on v1 the eventfd the
//! `cgroupfs` crate registers on memory.oom_control, on v2 an inotify watch on memory.events
//! whose `oom_kill` count grows.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use cgroupfs::oom::{v2_oom_kills, OomEventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::CgroupError;

/// A readable fd becomes ready when the cgroup may have seen an OOM kill;
/// `take` then says how many happened.
pub struct OomWatch {
    kind: Kind,
}

enum Kind {
    /// The eventfd counts notifications itself.
    V1(OomEventFd),
    /// An inotify watch on memory.events of `dir`, and the oom_kill count last seen.
    V2 { inotify: Inotify, dir: PathBuf, seen: u64 },
}

pub(crate) fn no_memory_cgroup() -> CgroupError {
    CgroupError::Discovery("no memory cgroup to watch for OOM kills".into())
}

pub(crate) fn watch_v1(dir: &Path) -> Result<OomWatch, CgroupError> {
    Ok(OomWatch { kind: Kind::V1(OomEventFd::register(dir)?) })
}

pub(crate) fn watch_v2(dir: &Path) -> Result<OomWatch, CgroupError> {
    let events = dir.join("memory.events");
    let os_err = |op, e: nix::errno::Errno| CgroupError::Io { path: events.clone(), op, source: e.into() };
    let inotify =
        Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(|e| os_err("inotify_init1", e))?;
    let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
        .map_err(|_| CgroupError::Discovery("NUL in cgroup path".into()))?;
    inotify.add_watch(c.as_c_str(), AddWatchFlags::IN_MODIFY).map_err(|e| os_err("inotify_add_watch", e))?;
    let seen = v2_oom_kills(dir).unwrap_or(0);
    Ok(OomWatch { kind: Kind::V2 { inotify, dir: dir.to_path_buf(), seen } })
}

impl OomWatch {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1(efd) => efd.as_fd(),
            Kind::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// Drains the fd and returns the number of new OOM kills.
    pub fn take(&mut self) -> u64 {
        match &mut self.kind {
            Kind::V1(efd) => efd.take(),
            Kind::V2 { inotify, dir, seen } => {
                while inotify.read_events().is_ok_and(|evs| !evs.is_empty()) {}
                let now = v2_oom_kills(dir).unwrap_or(0);
                let new = now.saturating_sub(*seen);
                *seen = now;
                new
            }
        }
    }
}
