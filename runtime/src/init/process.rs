//! The process attributes every container process gets, in the same order whether it is
//! the container's init (`create`) or a process joining it (`exec`): rlimits → scheduler,
//! I/O priority, final CPU affinity → capability
//! bounding set → uid/gid/groups → capability sets → no_new_privs → cwd (checked to be
//! inside the container's root) → executable lookup and HOME → fds above the preserved
//! range made close-on-exec. The caller runs inside the container's namespaces and root.

use std::os::fd::RawFd;

use oci_spec::runtime::Process;

use super::exec::{self, Prepared};
use super::user;

/// Applies `process` to the calling process and returns what to execve. `preserve_fds`
/// fds from 3 up are passed on; every other fd above 2 is closed by the execve.
pub fn apply(process: &Process, preserve_fds: u32) -> Result<Prepared, String> {
    user::set_rlimits(process)?;
    // Before the uid switch, while we still hold CAP_SYS_NICE for real-time policies and
    // I/O classes.
    if let Some(s) = process.scheduler() {
        crate::process_attrs::apply_scheduler(s)?;
    }
    crate::process_attrs::apply_io_priority(process)?;
    crate::process_attrs::apply_final_affinity(process)?;
    crate::capabilities::apply_bounding(process.capabilities().as_ref())
        .map_err(|e| e.to_string())?;
    user::switch_user(process)?;
    let warnings = crate::capabilities::apply_sets(process.capabilities().as_ref())
        .map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("berth: warning: {w}");
    }
    if process.no_new_privileges().unwrap_or(false) {
        crate::sys::set_no_new_privs().map_err(|e| format!("process.noNewPrivileges: {e}"))?;
    }
    exec::enter_cwd(process.cwd())?;
    let prepared = exec::prepare(process)?;

    // Nothing the caller leaked reaches the container (CVE-2024-21626); --preserve-fds are
    // passed on. The CLI made sure berth's own fds are above that range.
    let first = 3 + preserve_fds;
    crate::sys::cloexec_from(first).map_err(|e| format!("close_range: {e}"))?;
    for fd in 3..first {
        let _ = crate::sys::clear_cloexec(fd as RawFd);
    }
    Ok(prepared)
}
