//! The cgroup a container's record names, reopened for the commands that act on a created
//! container (kill, delete, pause, exec, ps, events, update, checkpoint), and the checks
//! that decide whether berth may signal or remove what is in it: state.json is only a file,
//! and one rewritten to name another cgroup must not turn `kill --all` or `delete` against
//! the host.

use std::path::PathBuf;

use crate::cgroups::{self, CgroupState, Manager};
use crate::error::{Error, Result};
use crate::state::Record;

/// The record's cgroup, if it can be trusted with signals and removal. `init_pinned`: the
/// record's init is alive (and pinned by the caller), so the cgroup must hold it; a state
/// file rewritten to name another cgroup then fails. Without a live init (or once it has
/// died) only the shape is checked (see `sane`).
pub(crate) fn trusted(rec: &Record, init_pinned: bool) -> Result<Box<dyn Manager>> {
    let cg = rec.cgroup_manager();
    let st = cg.state();
    let refuse =
        |why: String| Error::Init { id: rec.id.clone(), msg: format!("the recorded cgroup {why}: refusing to use it") };
    if !sane(&st) {
        return Err(refuse("is a hierarchy's root, holds berth itself, or lists directories outside it".into()));
    }
    // An init that died since the caller pinned it (a container whose process exits as it
    // is deleted) may be reaped already: its /proc entry is gone, and its cgroup is then
    // judged as a stopped container's is, by its shape. One still exiting (checked after
    // the cgroups were read, so it was exiting then or is gone now) shows the root of every
    // v1 hierarchy in /proc/<pid>/cgroup: it is judged the same way.
    if init_pinned
        && !holds(&st, rec.pid)
        && crate::sys::process_alive(rec.pid, rec.init_start_time)
        && !crate::sys::process_exiting(rec.pid, rec.init_start_time)
    {
        return Err(refuse(format!("does not hold the container's init (pid {})", rec.pid)));
    }
    Ok(cg)
}

/// The cgroup berth makes for `id` when the config names none, as far as it exists (its
/// directories are then the container's to remove).
pub(crate) fn default_for(id: &str) -> Option<Box<dyn Manager>> {
    let mut st = cgroups::open(id, None, false).ok()?.state();
    st.created = st.hierarchies.iter().map(|h| h.dir.clone()).filter(|d| d.is_dir()).collect();
    Some(cgroups::from_state(&st))
}

/// The cgroup's shape is one berth makes: every directory strictly below its hierarchy's
/// mount point, none an ancestor of (or equal to) berth's own cgroup, and every directory
/// `destroy` removes on the way to one of them.
pub(crate) fn sane(st: &CgroupState) -> bool {
    let own = cgroups_of(std::process::id() as i32, st);
    st.hierarchies.iter().zip(&own).all(|(h, own)| {
        h.dir.starts_with(&h.mount_point)
            && h.dir != h.mount_point
            && !h.dir.components().any(|c| matches!(c, std::path::Component::ParentDir))
            && !own.as_ref().is_some_and(|o| o.starts_with(&h.dir))
    }) && st.created.iter().all(|c| {
        st.hierarchies.iter().any(|h| h.dir.starts_with(c) && c.starts_with(&h.mount_point) && *c != h.mount_point)
    })
}

/// Whether `pid` sits in every hierarchy's directory (or below: a container that manages
/// its own cgroup may move its init down).
pub(crate) fn holds(st: &CgroupState, pid: i32) -> bool {
    cgroups_of(pid, st).iter().zip(&st.hierarchies).all(|(c, h)| c.as_ref().is_some_and(|c| c.starts_with(&h.dir)))
}

/// The host directory of `pid`'s cgroup in each of the state's hierarchies (from
/// /proc/<pid>/cgroup; berth runs in the host's cgroup namespace).
fn cgroups_of(pid: i32, st: &CgroupState) -> Vec<Option<PathBuf>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let lines = cgroupfs::hierarchy::parse_proc_cgroup(&text);
    st.hierarchies
        .iter()
        .map(|h| {
            let path = lines.iter().find_map(|l| {
                let mut a: Vec<&str> = l.controllers.iter().map(String::as_str).collect();
                let mut b: Vec<&str> = h.subsystems.iter().map(String::as_str).collect();
                a.sort_unstable();
                b.sort_unstable();
                (a == b).then_some(l.path.as_str())
            })?;
            Some(h.mount_point.join(path.trim_start_matches('/')))
        })
        .collect()
}
