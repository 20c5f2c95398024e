//! Forking a child into a container's namespaces and cgroup, guarded from the clone on.
//!
//! clone3 makes the child with the namespaces it creates. A pid namespace that exists
//! already (create: `linux.namespaces` by path; exec: the init's) is entered by pointing
//! berth's own `pid_for_children` at it just around the clone, the only way into a pid
//! namespace; only the parent goes back (the child cannot: the host's pid namespace is not
//! below its own). On cgroup v2 the child is born in its cgroup (CLONE_INTO_CGROUP); on v1
//! it moves itself into every hierarchy first thing, before it waits for `Go`
//! ([`crate::cgroups::SelfAttach`] says why not the parent). The child is born on the CPU
//! the parent runs on ([`pin_here`]). Then the parent sets `oom_score_adj`. Whatever fails
//! after the clone takes the child with it: it is a [`GuardedChild`] until the operation
//! completes.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::{CloneFlags, CpuSet};

use super::Op;
use crate::cgroups::{Manager, SelfAttach};
use crate::error::{Error, Result};
use crate::process::channel::{Channel, Msg};
use crate::sys::{self, Forked};
use crate::{failpoint, kernel_attrs, log, namespaces};

/// The pid namespace the child is born in.
pub enum PidNs<'a> {
    /// Ours, or a new one (CLONE_NEWPID among the target's namespaces).
    Ours,
    /// The one at this path (create: a pid entry of `linux.namespaces` with a path).
    Path(&'a Path),
    /// The one of the process behind `pidfd` (exec: the container's init) of container `id`.
    Of { pidfd: BorrowedFd<'a>, id: &'a str },
}

impl PidNs<'_> {
    /// Points this process's `pid_for_children` at the namespace, returning the one to go
    /// back to.
    fn enter(&self) -> Result<Option<OwnedFd>> {
        match self {
            PidNs::Ours => Ok(None),
            PidNs::Path(p) => {
                namespaces::enter_pid_for_children(p).map(Some).map_err(Error::namespace("linux.namespaces (pid)"))
            }
            PidNs::Of { pidfd, id } => {
                let previous: OwnedFd = std::fs::File::open("/proc/self/ns/pid_for_children")
                    .map_err(|e| Error::io("opening /proc/self/ns/pid_for_children", e))?
                    .into();
                nix::sched::setns(pidfd, CloneFlags::CLONE_NEWPID)
                    .map_err(|e| Error::io(format!("container \"{id}\": joining its pid namespace"), e.into()))?;
                Ok(Some(previous))
            }
        }
    }
}

/// The cgroup the child is born in.
pub enum Placement<'a> {
    /// cgroup v2: the directory (O_PATH), for clone3's CLONE_INTO_CGROUP.
    Into(OwnedFd),
    /// cgroup v1 and hybrid: the child moves itself into the v1 hierarchies (and is
    /// cloned into a hybrid host's cgroup2 one).
    Attach(SelfAttach),
    /// A cgroup that only comes into being with the child in it (the systemd driver starts
    /// its unit with the child's pid): the driver places the child after the clone, before
    /// it goes on.
    Start(&'a dyn Manager),
}

impl<'a> Placement<'a> {
    /// Where a new container's init goes: its cgroup, made now by the driver if it only
    /// comes into being with the init ([`Manager::starts_with_init`]).
    pub fn for_init(cgroup: &'a dyn Manager) -> Result<Placement<'a>> {
        if cgroup.starts_with_init() {
            return Ok(Placement::Start(cgroup));
        }
        Placement::of(cgroup, &[])
    }

    /// The container's cgroup, or with `sub` (`exec --cgroup`) a sub-cgroup of it.
    pub fn of(cgroup: &dyn Manager, sub: &[String]) -> Result<Placement<'a>> {
        let dirs = cgroup.join_dirs(sub)?;
        // On cgroup v2 no directory means rootless without a cgroup the user may write (no
        // delegation): the child stays in berth's own, as runc's does.
        let Some(dir) = dirs.first().filter(|_| cgroup.is_v2()) else {
            return Ok(Placement::Attach(SelfAttach::open(&dirs)?));
        };
        let fd = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::io(format!("opening cgroup {}", dir.display()), e.into()))?;
        Ok(Placement::Into(fd))
    }
}

/// Where and how the child is born.
pub struct Target<'a> {
    /// The namespaces clone3 makes (CLONE_NEW*).
    pub new_namespaces: CloneFlags,
    pub pid_ns: PidNs<'a>,
    pub cgroup: Placement<'a>,
    /// `process.execCPUAffinity.initial`: the CPUs the child starts on, before it is in its
    /// cgroup (this process is pinned to them around the clone).
    pub initial_cpus: Option<&'a str>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
}

pub enum Spawned {
    /// This is the child: it sets itself up and never returns.
    Child,
    /// This is the parent, with the child in its namespaces and cgroup.
    Parent(GuardedChild),
}

/// Forks the child `target` describes. Only from a single-threaded process: the child runs
/// on a copy of the caller's stack and memory, as after fork(2). `report` is the child's
/// end of its channel, for a failure of the child before it goes on.
pub fn spawn(target: Target, op: &Op, report: &Channel) -> Result<Spawned> {
    let saved_pidns = target.pid_ns.enter()?;
    let forked = pin_cpus(target.initial_cpus).and_then(|pin| {
        let into = match &target.cgroup {
            Placement::Into(dir) => Some(dir.as_fd()),
            Placement::Attach(a) => a.clone_into(),
            Placement::Start(_) => None,
        };
        let forked = sys::clone3_fork(target.new_namespaces.bits() as u64, into);
        // The parent goes back in every case; the child keeps an `initial` affinity, and
        // drops the pin that only chose where it is born before it does anything else.
        let child = matches!(forked, Ok(Forked::Child));
        if let (Pin::Here(saved), _) | (Pin::Initial(saved), false) = (&pin, child) {
            let _ = kernel_attrs::set_affinity(saved);
        }
        forked.map_err(|e| Error::io("clone3", e))
    });
    if let (Some(previous), Ok(Forked::Parent { .. }) | Err(_)) = (saved_pidns, &forked) {
        // The child exists (or not); either way this process must leave the container's pid
        // namespace, for its own hooks' sake.
        if let Err(m) = namespaces::restore_pid_for_children(previous) {
            log::warn(&m.to_string());
        }
    }
    let rootless = crate::rootless::active();
    let (pid, pidfd) = match forked? {
        Forked::Child => {
            if let Placement::Attach(a) = &target.cgroup {
                if let Err(e) = a.join() {
                    // Before `Go`: the parent reads this instead of the child's next message.
                    let _ = report.send(&Msg::Error(e.to_string()));
                    sys::exit_now(1);
                }
            }
            if let Some(adj) = target.oom_score_adj.filter(|_| rootless) {
                // Rootless: the parent may not open the file of a child that made itself
                // non-dumpable (/proc gives it to the host's root), so the child writes its
                // own while it still is dumpable; the parent checks the result below.
                let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
            }
            return Ok(Spawned::Child);
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let child = GuardedChild::new(pid, pidfd)?;
    log::debug(&format!("nsexec container setup: {} {pid} cloned into the container's namespaces", op.child));
    failpoint::hit(op.cloned);
    match &target.cgroup {
        Placement::Into(_) | Placement::Attach(_) => {}
        Placement::Start(cgroup) => cgroup.add_pid(pid)?,
    }
    failpoint::hit(op.in_cgroup);
    match target.oom_score_adj {
        Some(adj) if rootless => wait_oom_score_adj(pid, adj)?,
        Some(adj) => std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| Error::io(format!("process.oomScoreAdj {adj}"), e))?,
        None => {}
    }
    Ok(Spawned::Parent(child))
}

/// Waits (briefly) until the rootless child has set its own oom_score_adj to `adj`; the
/// file stays readable to everyone when the child is no longer dumpable.
fn wait_oom_score_adj(pid: i32, adj: i32) -> Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let now = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("process.oomScoreAdj {adj}"), e))?;
        if now.trim() == adj.to_string() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "process.oomScoreAdj {adj}: rootless: the container's process could not set it (it is {})",
                now.trim()
            )));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// How this process is pinned around the clone, with the affinity to go back to.
enum Pin {
    None,
    /// To `process.execCPUAffinity.initial`, which the child keeps.
    Initial(CpuSet),
    /// To the CPU this process runs on, only for the child to be born there ([`pin_here`]).
    Here(CpuSet),
}

/// Pins this process to the CPUs of `list` (so the child is cloned onto them); without a
/// list, to the CPU it runs on.
fn pin_cpus(list: Option<&str>) -> Result<Pin> {
    let Some(list) = list else { return Ok(pin_here().map_or(Pin::None, Pin::Here)) };
    let field = "process.execCPUAffinity.initial";
    let set = kernel_attrs::cpu_set(list).map_err(|m| Error::Usage(format!("{field}: {m}")))?;
    let saved = kernel_attrs::current_affinity().map_err(|e| Error::io(field, e))?;
    kernel_attrs::set_affinity(&set).map_err(|e| Error::io(field, e))?;
    log::debug(&format!("nsexec: affinity: {} ({field} {list:?}) for the clone", kernel_attrs::mask_hex(&set)));
    Ok(Pin::Initial(saved))
}

/// Pins this process to the CPU it runs on, so that the child is born there, and returns the
/// affinity both go back to right after the clone (None: nothing was changed). The parent
/// only hands the child its work and waits for it, so the two run in turn; a child the
/// scheduler starts on an idle CPU is woken across CPUs at every exchange with its parent
/// (in a VM, an interrupt between virtual CPUs), and starts away from the caches its copy
/// of the parent's memory is warm in. Best effort: without the CPU, the child is placed by
/// the scheduler, as before.
fn pin_here() -> Option<CpuSet> {
    let here = nix::sched::sched_getcpu().ok()?;
    let saved = kernel_attrs::current_affinity().ok()?;
    let mut one = CpuSet::new();
    one.set(here).ok()?;
    kernel_attrs::set_affinity(&one).ok()?;
    Some(saved)
}

/// A child of ours that is killed and reaped if dropped before [`GuardedChild::release`].
pub struct GuardedChild {
    pid: i32,
    pidfd: OwnedFd,
    guard: KillOnDrop,
}

/// Its own copy of the pidfd, so that `release` can hand the child's out.
struct KillOnDrop(Option<OwnedFd>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pidfd) = self.0.take() {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::pidfd_wait_exit(pidfd.as_fd(), 5000);
            reap(pidfd.as_fd());
        }
    }
}

/// Reaps our child behind a pidfd.
fn reap(pidfd: BorrowedFd<'_>) {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let _ = waitid(Id::PIDFd(pidfd), WaitPidFlag::WEXITED);
}

impl GuardedChild {
    /// Guards our child `pid` behind `pidfd`.
    pub fn new(pid: i32, pidfd: OwnedFd) -> Result<Self> {
        let guard = KillOnDrop(Some(pidfd.try_clone().map_err(|e| Error::io("dup pidfd", e))?));
        Ok(GuardedChild { pid, pidfd, guard })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The first child of a two-step init has forked the init, `init`, with CLONE_PARENT
    /// and exits. It is reaped, and the init, our child too (so its pid cannot be reused
    /// before we reap it), is guarded in its place.
    pub fn hand_over(&mut self, init: i32) -> Result<()> {
        let _ = sys::pidfd_wait_exit(self.pidfd.as_fd(), 5000);
        reap(self.pidfd.as_fd());
        // Reaped: nothing of it is left to kill.
        self.guard.0 = None;
        let pidfd = sys::pidfd_open(init).map_err(|e| Error::io("pidfd_open of the init", e))?;
        *self = GuardedChild::new(init, pidfd)?;
        Ok(())
    }

    /// The operation completed: the child lives on.
    pub fn release(self) -> (i32, OwnedFd) {
        let GuardedChild { pid, pidfd, mut guard } = self;
        guard.0 = None;
        (pid, pidfd)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    fn mask(set: &CpuSet) -> u64 {
        (0..64).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).fold(0, |m, cpu| m | 1 << cpu)
    }

    /// The child is born on its parent's CPU (`pin_here`) and keeps nothing of the pin: it
    /// goes on with the affinity the parent had, which is what the init's createContainer
    /// hooks inherit before the process's own affinity is set. The parent gets its own back.
    #[test]
    fn a_child_keeps_the_parents_affinity_not_the_pin_it_is_born_under() {
        let before = mask(&kernel_attrs::current_affinity().unwrap());
        assert!(before.count_ones() >= 2, "needs two CPUs to tell the pin from no pin: {before:#x}");
        let (_parent_ch, child_ch) = crate::process::channel::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let target = Target {
            new_namespaces: CloneFlags::empty(),
            pid_ns: PidNs::Ours,
            cgroup: Placement::Attach(SelfAttach::open(&[]).unwrap()),
            initial_cpus: None,
            oom_score_adj: None,
        };
        match spawn(target, &crate::process::EXEC, &child_ch).unwrap() {
            Spawned::Child => {
                // Nothing that allocates: the test process has other threads.
                let seen = kernel_attrs::current_affinity().map(|s| mask(&s)).unwrap_or(0);
                let _ = nix::unistd::write(&w, &seen.to_ne_bytes());
                sys::exit_now(0)
            }
            Spawned::Parent(child) => {
                drop(w);
                let mut buf = [0u8; 8];
                assert_eq!(nix::unistd::read(r.as_fd(), &mut buf).unwrap(), 8, "the child's report");
                assert_eq!(u64::from_ne_bytes(buf), before, "the child's affinity");
                drop(child);
            }
        }
        assert_eq!(mask(&kernel_attrs::current_affinity().unwrap()), before, "the parent's affinity");
    }
}
