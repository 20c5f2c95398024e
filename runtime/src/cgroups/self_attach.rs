//! How a freshly cloned child gets into its cgroup on cgroup v1 (and a hybrid host): it
//! moves itself, by writing "0" into each v1 hierarchy's `tasks` file, which berth opened
//! for it before the clone; the hybrid host's cgroup2 directory it is cloned into.
//!
//! Why not the parent writing the child's pid into `cgroup.procs`, as runc and crun do: a
//! pid written to `cgroup.procs` migrates a whole thread group, under the kernel's global
//! threadgroup lock taken for writing, and taking it waits for an RCU grace period unless
//! another writer took it within the last one. That wait was 8–15 ms on this project's
//! test machine: the largest single cost of `berth run` on v1. A thread moving itself
//! (pid 0 in `tasks`) needs no threadgroup stability, and current kernels skip that lock
//! for it (measured on 6.18: 0.1 ms for three hierarchies against 8–11 ms). The child is
//! single-threaded (clone3 without CLONE_THREAD), so its only thread is the process.
//! Older kernels take the lock either way: the move is then as slow as the parent's write,
//! never wrong. The cgroup2 hierarchy of a hybrid host has no `tasks` file and its
//! `cgroup.procs` takes the same lock; CLONE_INTO_CGROUP puts the child there without it.
//!
//! The kernel checks the permission to move against the credentials of the file's opener
//! (berth), not the writer's, so the child may have dropped nothing yet or everything.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::CgroupError;

/// The open `tasks` files of a child's v1 cgroups, and its cgroup2 directory on a hybrid
/// host.
pub struct SelfAttach {
    tasks: Vec<(PathBuf, File)>,
    unified: Option<OwnedFd>,
}

impl SelfAttach {
    /// Opens the way into `dirs` (from [`super::Manager::join_dirs`]): each v1 directory's
    /// `tasks` for writing; a directory without one is the cgroup2 hierarchy's.
    pub fn open(dirs: &[PathBuf]) -> Result<Self, CgroupError> {
        let mut tasks = Vec::with_capacity(dirs.len());
        let mut unified = None;
        for d in dirs {
            let p = d.join("tasks");
            match std::fs::OpenOptions::new().write(true).open(&p) {
                Ok(f) => tasks.push((p, f)),
                Err(e) if e.kind() == ErrorKind::NotFound && unified.is_none() => {
                    let fd = nix::fcntl::open(
                        d,
                        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(|e| CgroupError::Io {
                        path: d.clone(),
                        op: "open",
                        source: e.into(),
                    })?;
                    unified = Some(fd);
                }
                Err(e) => return Err(CgroupError::Io { path: p, op: "open", source: e }),
            }
        }
        Ok(SelfAttach { tasks, unified })
    }

    /// The cgroup2 directory to clone the child into (hybrid hosts).
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.unified.as_ref().map(|f| f.as_fd())
    }

    /// In the child, single-threaded: moves this process into every v1 cgroup.
    pub fn join(&self) -> Result<(), CgroupError> {
        for (p, f) in &self.tasks {
            (&*f).write_all(b"0").map_err(|e| CgroupError::Write {
                field: "tasks".into(),
                path: p.clone(),
                value: "0".into(),
                source: e,
            })?;
        }
        Ok(())
    }
}
