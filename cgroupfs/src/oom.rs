//! Noticing OOM kills in a cgroup. cgroup v1: an eventfd the kernel signals on every OOM in
//! the memory cgroup ([`OomEventFd`]). cgroup v2: no notification of its own; memory.events
//! changes (watch it with inotify) and its `oom_kill` count says whether a kill happened
//! ([`v2_oom_kills`]).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::{file, Error};

/// The `oom_kill` count of a v1 memory cgroup (memory.oom_control; kernels since 4.13).
/// `None` when the file cannot be read (the cgroup is gone) or has no such count.
pub fn v1_oom_kills(memory_dir: &Path) -> Option<u64> {
    oom_kill_count(memory_dir, "memory.oom_control")
}

/// The `oom_kill` count of a v2 cgroup (memory.events), `None` as for v1.
pub fn v2_oom_kills(dir: &Path) -> Option<u64> {
    oom_kill_count(dir, "memory.events")
}

fn oom_kill_count(dir: &Path, file: &str) -> Option<u64> {
    file::text(dir, file).and_then(|t| crate::parse::flat_keyed(&t).get("oom_kill").copied())
}

/// A v1 OOM notification: an eventfd (close-on-exec, non-blocking) registered on
/// `memory.oom_control` through `cgroup.event_control`. It becomes readable on each OOM in
/// the cgroup, and when the cgroup is removed.
#[derive(Debug)]
pub struct OomEventFd {
    fd: EventFd,
}

impl OomEventFd {
    pub fn register(memory_dir: &Path) -> Result<OomEventFd, Error> {
        let ctl = memory_dir.join("memory.oom_control");
        let control = File::open(&ctl).map_err(|e| Error::Io { path: ctl.clone(), op: "open", source: e })?;
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| Error::Io { path: ctl, op: "eventfd", source: e.into() })?;
        let reg = memory_dir.join("cgroup.event_control");
        // One write(2) to the existing file: no O_CREAT, and the kernel parses the line at once.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&reg)
            .and_then(|mut f| f.write_all(format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()).as_bytes()))
            .map_err(|e| Error::Io { path: reg, op: "register OOM notification", source: e })?;
        // The kernel holds its own reference to memory.oom_control now.
        Ok(OomEventFd { fd })
    }

    /// Reads and resets the count of notifications since the last call (0 if none).
    pub fn take(&self) -> u64 {
        self.fd.read().unwrap_or(0)
    }
}

impl AsFd for OomEventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counts() {
        let d = tempfile::tempdir().unwrap();
        let write = |f: &str, t: &str| std::fs::write(d.path().join(f), t).unwrap();
        assert_eq!(v2_oom_kills(d.path()), None);
        write("memory.events", "low 0\nhigh 0\nmax 37\noom 1\noom_kill 1\n");
        assert_eq!(v2_oom_kills(d.path()), Some(1));
        write("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
        assert_eq!(v1_oom_kills(d.path()), None);
        write("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
        assert_eq!(v1_oom_kills(d.path()), Some(4));
    }
}
