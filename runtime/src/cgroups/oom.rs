//! Noticing OOM kills in the container's cgroup, for `events`: on v1 an
//! eventfd registered on memory.oom_control through cgroup.event_control,
//! on v2 an inotify watch on memory.events whose `oom_kill` count grows.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::fsutil::write_file;
use super::stats::key_values;
use super::{CgroupError, Manager};

/// A readable fd becomes ready when the cgroup may have seen an OOM kill;
/// `take` then says how many happened.
pub struct OomWatch {
    fd: OwnedFd,
    kind: Kind,
}

enum Kind {
    /// The eventfd counts notifications itself.
    V1,
    /// memory.events and the oom_kill count last seen.
    V2 { events: PathBuf, seen: u64 },
}

fn os_err(path: PathBuf, op: &'static str, e: nix::errno::Errno) -> CgroupError {
    CgroupError::Io { path, op, source: e.into() }
}

fn oom_kills(events: &std::path::Path) -> u64 {
    std::fs::read_to_string(events).map(|t| key_values(&t).get("oom_kill").copied().unwrap_or(0)).unwrap_or(0)
}

impl Manager {
    pub fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        let dir = self
            .dir_for("memory")
            .ok_or_else(|| CgroupError::Discovery("no memory cgroup to watch for OOM kills".into()))?;
        if self.is_v2() {
            let events = dir.join("memory.events");
            use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
            let ino = match Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) {
                Ok(i) => i,
                Err(e) => return Err(os_err(events, "inotify_init1", e)),
            };
            let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
                .map_err(|_| CgroupError::Discovery("NUL in cgroup path".into()))?;
            if let Err(e) = ino.add_watch(c.as_c_str(), AddWatchFlags::IN_MODIFY) {
                return Err(os_err(events, "inotify_add_watch", e));
            }
            let fd = OwnedFd::from(ino);
            let seen = oom_kills(&events);
            return Ok(OomWatch { fd, kind: Kind::V2 { events, seen } });
        }
        let ctl = dir.join("memory.oom_control");
        let control = File::open(&ctl).map_err(|e| CgroupError::Io { path: ctl.clone(), op: "open", source: e })?;
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let fd = match EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK) {
            Ok(efd) => OwnedFd::from(efd),
            Err(e) => return Err(os_err(ctl, "eventfd", e)),
        };
        let reg = dir.join("cgroup.event_control");
        write_file(&reg, &format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()))
            .map_err(|e| CgroupError::Io { path: reg, op: "register OOM notification", source: e })?;
        // The kernel holds its own reference to memory.oom_control now.
        Ok(OomWatch { fd, kind: Kind::V1 })
    }
}

impl OomWatch {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Drains the fd and returns the number of new OOM kills.
    pub fn take(&mut self) -> u64 {
        let mut buf = [0u8; 4096];
        match &mut self.kind {
            Kind::V1 => match nix::unistd::read(&self.fd, &mut buf) {
                Ok(8) => u64::from_ne_bytes(buf[..8].try_into().unwrap_or([0; 8])),
                _ => 0,
            },
            Kind::V2 { events, seen } => {
                while nix::unistd::read(&self.fd, &mut buf).is_ok_and(|n| n > 0) {}
                let now = oom_kills(events);
                let new = now.saturating_sub(*seen);
                *seen = now;
                new
            }
        }
    }
}
