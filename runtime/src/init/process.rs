//! The process attributes every container process gets, in the same order whether it is
//! the container's init (`create`) or a process joining it (`exec`): rlimits → scheduler,
//! I/O priority, final CPU affinity → seccomp (without no_new_privs) → capability
//! bounding set → uid/gid/groups → capability sets → no_new_privs → cwd (checked to be
//! inside the container's root) → executable lookup and HOME → fds above the preserved
//! range made close-on-exec → seccomp (with no_new_privs). The caller runs inside the
//! container's namespaces and root.

use std::os::fd::{AsFd, RawFd};

use oci_spec::runtime::Process;

use super::exec::{self, Prepared};
use super::user;
use crate::process::channel::{Channel, Msg};
use crate::seccomp::Filter;

/// Applies `process` to the calling process and returns what to execve. `preserve_fds`
/// fds from 3 up are passed on; every other fd above 2 is closed by the execve. A seccomp
/// filter's notify listener goes to the parent over `channel`.
/// `command`, when given, is what execve gets instead of the process's args and env.
pub fn apply(
    process: &Process,
    command: Option<&exec::Command>,
    preserve_fds: u32,
    seccomp: Option<&Filter>,
    channel: &Channel,
) -> Result<Prepared, String> {
    user::set_rlimits(process)?;
    // Before the uid switch, while we still hold CAP_SYS_NICE for real-time policies and
    // I/O classes; and before seccomp, whose profile need not allow these syscalls.
    if let Some(s) = process.scheduler() {
        crate::process_attrs::apply_scheduler(s)?;
    }
    crate::process_attrs::apply_io_priority(process)?;
    crate::process_attrs::apply_final_affinity(process)?;
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it.
    if !no_new_privs {
        load_seccomp(seccomp, channel)?;
    }
    crate::capabilities::apply_bounding(process.capabilities().as_ref())
        .map_err(|e| e.to_string())?;
    user::switch_user(process)?;
    let warnings = crate::capabilities::apply_sets(process.capabilities().as_ref())
        .map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("berth: warning: {w}");
    }
    if no_new_privs {
        crate::sys::set_no_new_privs().map_err(|e| format!("process.noNewPrivileges: {e}"))?;
    }
    exec::enter_cwd(process.cwd())?;
    let prepared = exec::prepare(process, command)?;

    // Nothing the caller leaked reaches the container (CVE-2024-21626); --preserve-fds are
    // passed on. The CLI made sure berth's own fds are above that range.
    let first = 3 + preserve_fds;
    crate::sys::cloexec_from(first).map_err(|e| format!("close_range: {e}"))?;
    for fd in 3..first {
        let _ = crate::sys::clear_cloexec(fd as RawFd);
    }
    // With no_new_privs, as late as possible, so the profile sees as few of berth's own
    // syscalls as can be (runc's rule). What remains: send Ready, (the init) accept
    // `start`, read, startContainer hooks, then signal resets and execve.
    if no_new_privs {
        load_seccomp(seccomp, channel)?;
    }
    Ok(prepared)
}

/// Loads the filter and passes a notify listener to the parent. The parent, not this
/// process, hands it to the agent: `listenerPath` is a host path, which only means what the
/// user meant in the host's mount namespace where the parent still is (this process is in
/// the container's root), and so nothing in the container ever holds a connection to a
/// host socket. The parent also knows the process's host pid, which the process state
/// carries. Our copy of the listener is closed here; the parent's is in flight.
fn load_seccomp(seccomp: Option<&Filter>, channel: &Channel) -> Result<(), String> {
    let Some(filter) = seccomp else { return Ok(()) };
    if let Some(listener) = filter.load().map_err(|e| e.to_string())? {
        channel
            .send_with_fd(&Msg::SeccompListener, listener.as_fd())
            .map_err(|e| format!("sending the seccomp listener to the parent: {e}"))?;
    }
    Ok(())
}
