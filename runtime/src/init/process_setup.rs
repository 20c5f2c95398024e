//! The process attributes every container process gets, in the same order whether it is
//! the container's init (`create`) or a process joining it (`exec`): cwd (entered as
//! root and checked to be inside the container's root) → stdio chowned to the process's uid
//! → rlimits → scheduler, I/O priority, final CPU affinity → executable lookup and HOME → fds above the preserved range made
//! close-on-exec → capability bounding set → groups and gid → AppArmor profile and SELinux
//! label for the execve → seccomp (without no_new_privs) → uid → capability sets → (cwd
//! again, if root was refused it) → no_new_privs → seccomp (with no_new_privs). The caller
//! runs inside the container's namespaces and root.
//!
//! The LSM writes come before any filter (they open and write /proc files a profile need
//! not allow) and while the process is still root without no_new_privs, as in runc's
//! init; they take effect only at the execve.
//!
//! Nothing berth does after loading the filter may need the profile to allow it (a profile
//! need not allow close_range, getcwd, fcntl, ...). Without no_new_privs the filter needs
//! CAP_SYS_ADMIN to load, so it goes in before the uid switch drops it, and only what
//! cannot precede that follows: setresuid and PR_SET_KEEPCAPS, capset and the ambient
//! prctls (runc has these and more after its filter). With no_new_privs it is the last
//! step. What follows `apply` is the caller's: the `Ready` message, for the init the wait
//! for `start` and the startContainer hooks, the signal resets (errors ignored) and execve.

use std::os::fd::{AsFd, RawFd};

use oci_spec::runtime::{ExecCPUAffinity, Process};

use super::error::{applying, doing, InitError};
use super::execve::{self, Cwd, Prepared};
use super::user;
use crate::process::channel::{Channel, Msg};
use crate::seccomp::Filter;

/// Applies `process` to the calling process and returns what to execve. `preserve_fds`
/// fds from 3 up are passed on; every other fd above 2 is closed by the execve.
/// `exec_affinity` is the `execCPUAffinity` of a process that joins the container (`None`
/// for the init, to which it does not apply). A seccomp
/// filter's notify listener goes to the parent over `channel`.
/// `command`, when given, is what execve gets instead of the process's args and env.
pub fn apply(
    process: &Process,
    command: Option<&execve::Command>,
    preserve_fds: u32,
    exec_affinity: Option<&ExecCPUAffinity>,
    seccomp: Option<&Filter>,
    channel: &Channel,
) -> Result<Prepared, InitError> {
    // While still privileged and before any filter (runc's order): the first chdir, and the
    // stdio (a terminal included) handed to the process's user.
    let cwd = execve::enter_cwd_privileged(process.cwd())?;
    // With `terminal`, fds 0-2 are the pty the caller (init, exec) made for this process.
    user::chown_stdio(process.user().uid(), process.terminal().unwrap_or(false))?;
    user::set_rlimits(process)?;
    // Before the uid switch, while we still hold CAP_SYS_NICE for real-time policies and
    // I/O classes.
    if let Some(s) = process.scheduler() {
        crate::kernel_attrs::apply_scheduler(s)?;
    }
    crate::kernel_attrs::apply_io_priority(process)?;
    crate::kernel_attrs::apply_final_affinity(exec_affinity)?;
    let prepared = execve::prepare(process, command)?;

    // Nothing the caller leaked reaches the container (CVE-2024-21626); --preserve-fds are
    // passed on. The CLI made sure berth's own fds are above that range.
    let first = 3 + preserve_fds;
    crate::sys::cloexec_from(first).map_err(doing(format!("marking fds from {first} close-on-exec")).io())?;
    for fd in 3..first {
        let _ = crate::sys::clear_cloexec(fd as RawFd);
    }
    let caps = process.capabilities().as_ref();
    for w in crate::capabilities::ambient_warnings(caps) {
        eprintln!("berth: warning: {w}");
    }
    crate::capabilities::apply_bounding(caps)?;
    user::switch_groups(process)?;

    apply_lsm(process)?;

    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it.
    if !no_new_privs {
        load_seccomp(seccomp, channel)?;
    }
    user::switch_uid(process)?;
    crate::capabilities::apply_sets(caps)?;
    if cwd == Cwd::Retry {
        execve::enter_cwd(process.cwd())?;
    }
    if no_new_privs {
        crate::sys::set_no_new_privs().map_err(applying("process.noNewPrivileges").io())?;
        // As late as possible, so the profile sees none of berth's own syscalls (runc's
        // rule).
        load_seccomp(seccomp, channel)?;
    }
    Ok(prepared)
}

/// The AppArmor profile and SELinux label the execve enters. Validation refused either
/// where its module is not enabled.
fn apply_lsm(process: &Process) -> Result<(), InitError> {
    if let Some(profile) = process.apparmor_profile().as_deref().filter(|p| !p.is_empty()) {
        crate::lsm::apparmor_exec(profile)
            .map_err(applying(format!("process.apparmorProfile {profile:?}")).doing("write attr/apparmor/exec").io())?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        crate::lsm::selinux_exec(label)
            .map_err(applying(format!("process.selinuxLabel {label:?}")).doing("write attr/exec").io())?;
    }
    Ok(())
}

/// Loads the filter and passes a notify listener to the parent. The parent, not this
/// process, hands it to the agent: `listenerPath` is a host path, which only means what the
/// user meant in the host's mount namespace where the parent still is (this process is in
/// the container's root), and so nothing in the container ever holds a connection to a
/// host socket. The parent also knows the process's host pid, which the process state
/// carries. Our copy of the listener is closed here; the parent's is in flight.
fn load_seccomp(seccomp: Option<&Filter>, channel: &Channel) -> Result<(), InitError> {
    let Some(filter) = seccomp else { return Ok(()) };
    if let Some(listener) = filter.load()? {
        channel
            .send_with_fd(&Msg::SeccompListener, listener.as_fd())
            .map_err(doing("sending the seccomp listener to the parent").io())?;
    }
    Ok(())
}
