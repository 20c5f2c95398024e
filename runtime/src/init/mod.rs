//! The container's init, from clone to execve. It runs in the child of `berth create`,
//! single-threaded, and reports every failure to the parent over the channel before exiting.
//!
//! Order (runc's, where the spec leaves it open): wait for the parent to place us in our
//! cgroup → join namespaces by path (with a user or time namespace: `stage` first) → new
//! cgroup namespace → session keyring → setsid →
//! hostname → sysctls → rootfs mounts → prestart/createRuntime hooks (parent) →
//! createContainer hooks → terminal → pivot_root → masked/read-only paths → memory policy,
//! personality → the process attributes (`process_setup::apply`, which loads the seccomp filter
//! and says what follows it) → ready → wait for start → startContainer hooks → execve.
//! Before all of it the init closes every fd it inherited but stdio, --preserve-fds and
//! its own.

pub mod error;
pub(crate) mod execve;
pub(crate) mod process_setup;
mod stage;
pub(crate) mod terminal;
mod user;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;

use self::error::{applying, doing, InitError};
use crate::hooks::{self, Kind};
use crate::namespaces::Plan;
use crate::process::channel::{Channel, Msg};
use crate::rootfs::source::HostOpenError;
use crate::{kernel_attrs, rootfs};

pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub id: &'a str,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub channel: Channel,
    pub plan: &'a Plan,
    /// Connected --console-socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub start_listener: OwnedFd,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub cgroup_mounts: Vec<rootfs::CgroupMount>,
    /// The compiled `linux.seccomp` filter, built by the parent before the clone.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
}

/// Never returns: the process either becomes the container's process or exits.
pub fn run(args: InitArgs) -> ! {
    let report = report_panics(&args.channel, "the container's init");
    let err = match setup(&args, report) {
        Ok((prepared, idle)) => wait_and_exec(&args, prepared, &idle),
        Err(e) => e,
    };
    // Set-up failed before `Ready`: `create` is waiting and reports it.
    let _ = args.channel.send(&Msg::Error(err.to_string()));
    // _exit skips atexit handlers and destructors that belong to the parent's copy.
    crate::sys::exit_now(1)
}

/// Makes a panic in this forked child (the init, or the process of `exec`) end it at once,
/// reported to the parent as `who` panicked. The child shares the parent's stack: a panic
/// must never unwind into create() or exec(), whose cleanup guards would then tear down
/// the container from inside it. The hook runs before the unwinding (debug builds) or
/// the abort (the release profile's `panic = "abort"`) alike. It sends over its own copy
/// of the channel, whose fd is returned for the caller to keep open (None: no copy, a
/// panic then ends the child unreported and the parent sees its end of the channel close).
pub(crate) fn report_panics(channel: &Channel, who: &'static str) -> Option<std::os::fd::RawFd> {
    let copy = channel.try_clone().ok();
    let fd = copy.as_ref().map(|c| c.as_fd().as_raw_fd());
    std::panic::set_hook(Box::new(move |info| {
        if let Some(channel) = &copy {
            let what = info.payload_as_str().unwrap_or("(no message)");
            let place = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
            let _ = channel.send(&Msg::Error(format!("{who} panicked{place}: {what}")));
        }
        crate::sys::exit_now(1)
    }));
    fd
}

type Res<T> = Result<T, InitError>;

impl InitArgs<'_> {
    /// The fds of berth's that the init uses; every other one it inherited is closed.
    fn own_fds(&self) -> Vec<std::os::fd::RawFd> {
        let mut fds = vec![self.channel.as_fd().as_raw_fd(), self.start_listener.as_raw_fd()];
        fds.extend(self.console.as_ref().map(|c| c.as_raw_fd()));
        fds
    }
}

/// What `setup` leaves for the wait: the prepared execve, and the binary's clean file
/// mappings and the stack's bounds (read before the seccomp filter, which need not allow
/// reading /proc).
type SetUp = (execve::Prepared, crate::sys::mem::Idle);

fn setup(a: &InitArgs, panic_report: Option<std::os::fd::RawFd>) -> Res<SetUp> {
    let spec = a.spec;
    crate::sys::set_non_dumpable().map_err(doing("prctl(PR_SET_DUMPABLE)").io())?;
    // The init lives on until `start`: it holds none of the caller's fds (a host directory
    // among them would be reachable through /proc/1/fd from the container, CVE-2024-21626)
    // and none of berth's own but those it needs. Stdio and --preserve-fds stay.
    let mut own = a.own_fds();
    own.extend(panic_report);
    crate::sys::close_from_except(3 + a.preserve_fds, &own).map_err(doing("closing inherited fds").io())?;
    let state = recv_go(&a.channel)?;
    let state = if a.plan.staged {
        stage::enter(spec, a.plan, &a.channel)?;
        // The parent knows our pid now and sends the state again, with it.
        recv_go(&a.channel)?
    } else {
        crate::namespaces::join(a.plan)?;
        state
    };
    if a.plan.new_cgroupns {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(doing("unshare cgroup namespace").errno())?;
    }
    if !a.no_new_keyring {
        let process = spec.process().as_ref().ok_or_else(|| InitError::invalid("process", "missing"))?;
        join_session_keyring(a.id, process)?;
    }
    nix::unistd::setsid().map_err(doing("setsid").errno())?;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(applying(format!("hostname {h:?}")).errno())?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        crate::sys::set_domainname(d).map_err(applying(format!("domainname {d:?}")).io())?;
    }
    if (a.plan.clone_flags | a.plan.unshare_flags).contains(CloneFlags::CLONE_NEWNET) {
        crate::netdev::loopback_up().map_err(doing("setting the network namespace's loopback up").io())?;
    }
    let linux = spec.linux().as_ref().ok_or_else(|| InitError::invalid("linux", "missing"))?;
    // Written through the host's /proc before any container mount exists, so the container
    // cannot redirect the writes (CVE-2025-52881); /proc/sys/net and the IPC sysctls follow
    // the namespaces this process is already in.
    if let Some(sysctl) = linux.sysctl() {
        let mut keys: Vec<&String> = sysctl.keys().collect();
        keys.sort();
        for key in keys {
            write_sysctl(key, &sysctl[key])?;
        }
    }

    // The parent opens a bind source out of our reach in a user namespace, and maps each
    // id-mapped one.
    let host_open = |index: usize| -> Result<OwnedFd, HostOpenError> {
        a.channel.send(&Msg::MountSourcePending { index }).map_err(HostOpenError::Sync)?;
        match a.channel.recv_with_fd() {
            Ok(Some((Msg::MountSource, Some(fd)))) => Ok(fd),
            Ok(Some((Msg::Error(m), _))) => Err(HostOpenError::Parent(m)),
            _ => unsafe_exit(1),
        }
    };
    let cfg = rootfs::RootfsConfig {
        spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        cgroup_mounts: a.cgroup_mounts.clone(),
        cgroupns: a.plan.new_cgroupns,
        shares_mount_ns: a.plan.shares_mount_ns(),
        in_user_ns: a.plan.in_user_ns(),
        host_open: Some(&host_open as rootfs::source::HostOpen),
    };
    let root = rootfs::prepare(&cfg)?;

    let hooks = spec.hooks().as_ref();
    #[allow(deprecated)]
    let parent_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if parent_hooks {
        a.channel.send(&Msg::HooksPending).map_err(InitError::sync_failed)?;
        match a.channel.recv() {
            Ok(Some(Msg::HooksDone)) => {}
            _ => unsafe_exit(1),
        }
    }
    // In the container's root, with its mounts in place, as runc runs them.
    hooks::run_all(hooks, Kind::CreateContainer, state.as_bytes(), Some(a.rootfs), None)?;

    let process = spec.process().as_ref().ok_or_else(|| InitError::invalid("process", "missing"))?;
    let tty = match (&a.console, process.terminal().unwrap_or(false)) {
        (Some(sock), true) => {
            let master = root.open_ptmx()?;
            let peer = terminal::hand_over(master, process, sock.as_fd(), false)?;
            root.mount_console(peer.as_fd())?;
            Some(peer)
        }
        _ => None,
    };

    root.enter(a.no_pivot)?;
    rootfs::finalize(spec)?;

    if let Some(peer) = tty {
        terminal::make_stdio(peer)?;
    }

    execve::ensure_cwd(process.cwd())?;
    // The container-wide attributes; the per-process ones are in process_setup::apply.
    if let Some(p) = linux.memory_policy() {
        kernel_attrs::apply_memory_policy(p)?;
    }
    if let Some(p) = linux.personality() {
        kernel_attrs::apply_personality(p)?;
    }
    // The signals a client sends to stop a process end the waiting init too (see
    // `exit_on`); set before the seccomp filter, which need not allow rt_sigaction.
    {
        use nix::sys::signal::Signal::*;
        crate::sys::exit_on(&[SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2])
            .map_err(doing("setting the init's signal handlers").errno())?;
    }
    // Before the seccomp filter, which need not allow what these call: the heap's free
    // memory goes back to the kernel now, and the binary's clean mappings and the stack
    // are listed for `wait_and_exec` to release right before the wait.
    crate::sys::mem::trim_heap();
    let idle = crate::sys::mem::idle().unwrap_or_default();
    // runtime-spec: execCPUAffinity is not applied to the init.
    let prepared = process_setup::apply(process, None, a.preserve_fds, None, a.seccomp, &a.channel)?;
    dumpable_while_created(a)?;

    a.channel.send(&Msg::Ready).map_err(InitError::sync_failed)?;
    Ok((prepared, idle))
}

/// Rootless, `berth exec` into the created container opens this process's namespaces
/// through /proc, which gives a non-dumpable process's files to the host's root alone (its
/// memory belongs to the host's user namespace until the exec). runc's init stays
/// dumpable when it joins no namespace by path, and so does this one, rootless only: the
/// process already has the container process's credentials, capabilities and seccomp
/// filter, and holds nothing of the host's but the start socket and the channel to the
/// runtime (SECURITY.md, T7). Joining a namespace by path, it stays non-dumpable, as
/// runc's does; so does it where the filter may refuse the prctl.
fn dumpable_while_created(a: &InitArgs) -> Res<()> {
    if !crate::rootless::active() || a.plan.joins_by_path() {
        return Ok(());
    }
    let args = [libc::PR_SET_DUMPABLE as u64, 1, 0, 0, 0, 0];
    if a.seccomp.is_some_and(|f| !f.allows(libc::SYS_prctl, args)) {
        return Ok(());
    }
    crate::sys::set_dumpable().map_err(doing("prctl(PR_SET_DUMPABLE) while created").io())
}

/// After `Ready`: the parent has gone; a startContainer hook's failure goes back to `berth start`,
/// a failed execve is the process's own (`exec_or_exit`).
fn wait_and_exec(a: &InitArgs, prepared: execve::Prepared, idle: &crate::sys::mem::Idle) -> ! {
    // The init may wait for `start` for as long as its client likes: the pages of berth's
    // binary that setting up touched go back to the page cache (a created init then holds
    // ~0.6 MiB instead of ~3 MiB), and so does the stack the set-up dirtied below this
    // frame (~0.1 MiB). The container's seccomp filter is loaded already, so each madvise
    // is made only if the filter certainly allows it.
    let allowed = |args: [u64; 6]| a.seccomp.is_none_or(|f| f.allows(libc::SYS_madvise, args));
    for m in &idle.clean {
        let args = [m.start as u64, m.len as u64, libc::MADV_DONTNEED as u64, 0, 0, 0];
        if allowed(args) {
            let _ = crate::sys::mem::release(m);
        }
    }
    if let Some(stack) = &idle.stack {
        let _ = crate::sys::mem::release_dead_stack(stack, allowed);
    }
    let (mut conn, state) = match crate::process::start::accept(&a.start_listener) {
        Ok(c) => c,
        Err(_) => unsafe_exit(1),
    };
    // runc's: a startContainer hook without env of its own gets the container process's.
    let env = Some(prepared.env());
    if let Err(e) = hooks::run_all(a.spec.hooks().as_ref(), Kind::StartContainer, &state, None, env) {
        // runtime.md: a failing startContainer hook is an error of `start`.
        let _ = conn.write_all(e.to_string().as_bytes());
        unsafe_exit(127)
    }
    // The start has happened: from here a failed execve is the process's own (execve.rs).
    // `conn` stays open until the execve (close-on-exec) or the exit: `start` runs the
    // poststart hooks only once the process is past it.
    prepared.exec_or_exit(a.seccomp)
}

/// The parent's go-ahead and the state it carries. A failure to read it is reported (the
/// parent is waiting for our answer); a parent that died or gave up gets no report.
pub(crate) fn recv_go(channel: &Channel) -> Res<String> {
    match channel.recv() {
        Ok(Some(Msg::Go { state })) => Ok(state),
        Ok(None) => unsafe_exit(1),
        Ok(Some(other)) => Err(InitError::Unexpected { expected: "the go-ahead", got: format!("{other:?}") }),
        Err(e) => Err(InitError::sync("receiving the container's state")(e)),
    }
}

/// A new session keyring named after the container, created under the process's SELinux
/// label when it has one (runc's order: keycreate, join, keycreate reset). Like runc, a
/// kernel without keyrings (or a seccomp'd host) is not fatal; a label that cannot be
/// set is.
pub(crate) fn join_session_keyring(id: &str, process: &oci_spec::runtime::Process) -> Res<()> {
    let label = process.selinux_label().as_deref().filter(|l| !l.is_empty());
    if let Some(l) = label {
        crate::lsm::selinux_keycreate(l)
            .map_err(applying(format!("process.selinuxLabel {l:?}")).doing("write attr/keycreate").io())?;
    }
    let _ = crate::sys::join_session_keyring(id);
    if label.is_some() {
        crate::lsm::selinux_keycreate("")
            .map_err(applying("process.selinuxLabel").doing("reset attr/keycreate").io())?;
    }
    Ok(())
}

fn unsafe_exit(code: i32) -> ! {
    // _exit ends the process without running the parent's destructors.
    crate::sys::exit_now(code)
}

fn write_sysctl(key: &str, value: &str) -> Res<()> {
    let rel = format!("sys/{}", key.replace('.', "/"));
    let fd =
        rootfs::resolve::open_proc_beneath(Path::new(&rel), nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(applying(format!("linux.sysctl[{key:?}]")).errno())?;
    let mut f = std::fs::File::from(fd);
    f.write_all(value.as_bytes()).map_err(applying(format!("linux.sysctl[{key:?}] = {value:?}")).io())
}
