//! Paying the first cgroup v1 attach's wait early, beside the rest of the set-up.
//!
//! Every write to a v1 `cgroup.procs` takes the global `cgroup_threadgroup_rwsem` for
//! writing, with `cgroup_mutex` held. When no writer took the rwsem lately, the kernel
//! first waits for an RCU grace period (rcu_sync) so that forks and exits take its slow
//! path: ~5–8 ms on this VM, the largest single step of `berth run` on a v1 host (see
//! docs/performance.md). A writer that comes within about one grace period after goes
//! straight in (0.05–0.1 ms).
//!
//! So once the container's cgroup directories exist (a mkdir needs `cgroup_mutex` too),
//! `create` starts a write of "0" (this process) into `cgroup.procs` of the cgroup berth is
//! already in: a move to where it is, which changes nothing but starts the wait. It runs in
//! a bare thread (berth_sys::background_write) while berth writes the limits, clones the
//! init and the init sets up; the init's own attach comes after it and finds the path
//! warm. `exec` does the same from its start. runc and crun start the wait only at their
//! attach, with nothing else going on.
//!
//! Best effort: where the write fails (no v1 hierarchy of ours, a read-only cgroupfs), the
//! attach just waits as it would have. Rootless berth does not attach on v1 and skips it.

use berth_sys::background_write::BackgroundWrite;

/// The warm-up write, if one was started. Dropping it waits for the write as
/// [`AttachWarmup::finish`] does.
pub struct AttachWarmup(Option<BackgroundWrite>);

impl AttachWarmup {
    /// Starts the write on a host with cgroup v1 hierarchies when berth may move processes
    /// there (not rootless); otherwise does nothing.
    pub fn start() -> AttachWarmup {
        if crate::rootless::active() || super::host_is_unified() {
            return AttachWarmup(None);
        }
        AttachWarmup(own_procs_file().and_then(|f| BackgroundWrite::start(f, b"0").ok()))
    }

    /// Waits for the write; says whether it went through (the wait is over and the path
    /// warm for about a grace period).
    pub fn finish(mut self) -> bool {
        self.0.take().is_some_and(|w| w.finish().is_ok())
    }
}

/// `cgroup.procs` of this process's own cgroup on its first v1 hierarchy, open for writing.
fn own_procs_file() -> Option<std::os::fd::OwnedFd> {
    let hierarchies = cgroupfs::hierarchy::of_process(None).ok()?;
    let own = hierarchies.iter().find(|h| h.is_v1())?;
    let f = std::fs::OpenOptions::new().write(true).open(own.dir().join("cgroup.procs")).ok()?;
    Some(f.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warmup_writes_on_a_v1_host_and_moves_nothing() {
        let cgroups_before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let v1_root = !crate::rootless::active() && !super::super::host_is_unified();
        assert_eq!(AttachWarmup::start().finish(), v1_root, "the write went through only where berth attaches on v1");
        assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), cgroups_before);
    }
}
