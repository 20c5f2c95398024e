//! The container's cgroup: where it lives on each hierarchy, creating it,
//! applying `linux.resources`, placing processes, listing and removing it.
//!
//! [`Manager`] is the trait; the driver is chosen once, when the cgroup is resolved
//! ([`open`]) or reopened from state.json ([`from_state`]): `v1.rs` for cgroup v1 (including
//! the hybrid layout with a cgroup2 "unified" mount next to the v1 controllers), `v2.rs` for
//! pure cgroup v2. What both share (the container's directories on each hierarchy: planning,
//! making, removing them, placing processes) is `dirs.rs`. The layout is read once from
//! /proc/self/mountinfo and /proc/self/cgroup by the `cgroupfs` crate, which also reads the
//! stats (`stats.rs` maps them to runc's `events` JSON) and gives the OOM primitives
//! (`oom.rs`). With `--systemd-cgroup` the cgroup is a transient systemd unit
//! ("slice:prefix:name"): `systemd/`, a third driver for cgroup v2, which asks systemd over
//! D-Bus for the unit and leaves the rest to the v2 driver's code.
//!
//! How the runtime uses it (create):
//! 1. `open(id, linux.cgroupsPath, --systemd-cgroup)` then `validate(resources)`,
//!    before anything is made, so a bad config changes nothing.
//! 2. `plan()`, then save `state()` in state.json, then `create()`: the state names
//!    every directory this container is about to make before any exists (a runtime
//!    killed in between leaves a record `delete --force` can act on), and only those
//!    are removed. Empty cpuset values are filled in every level on the way down.
//! 3. `apply(resources)`. On error, `destroy()` (nothing half-applied stays).
//! 4. Pure v2: clone3(CLONE_INTO_CGROUP) with `open_v2_dir()`; otherwise
//!    `add_pid(child)`, which must happen before the child unshares its
//!    cgroup namespace (the namespace root is the cgroup it is in then). The systemd
//!    driver ([`Manager::starts_with_init`]) starts its unit there, with the child's pid.
//!
//! Later commands reopen it with `from_state`: `pids()` for
//! `kill --all` and `ps`, `set_frozen` for pause/resume, `destroy()` for
//! delete once the processes are gone (it waits briefly for dying ones).

mod bpf;
mod convert;
mod devices;
mod dirs;
mod fsutil;
mod oom;
mod path;
mod recorded_freezer;
mod self_attach;
mod stats;
mod systemd;
mod v1;
mod v2;
mod validate;

#[cfg(test)]
mod tests;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

pub use cgroupfs::hierarchy::host_is_unified;
pub use dirs::Dirs;
pub use oom::OomWatch;
pub use recorded_freezer::RecordedFreezer;
pub use self_attach::SelfAttach;
pub use stats::Stats;
pub(crate) use systemd::decode_bus_messages;
pub use systemd::{DbusError, UnitState};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "linux.cgroupsPath {0:?}: the systemd form \"slice:prefix:name\" needs --systemd-cgroup; \
         without it use a cgroupfs path (absolute or relative)"
    )]
    SystemdPathUnsupported(String),
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("cgroup discovery: {0}")]
    Discovery(String),
    /// A configuration value this module rejects, named by its field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: writing {value:?} to {}: {source}", path.display())]
    Write { field: String, path: PathBuf, value: String, source: std::io::Error },
    #[error("{}: {op}: {source}", path.display())]
    Io { path: PathBuf, op: &'static str, source: std::io::Error },
    #[error("container's cgroup is not empty: {count} process(es) found in {}", path.display())]
    NotEmpty { path: PathBuf, count: usize },
    // "container's cgroup unexpectedly frozen" is runc's phrase, kept for scripts that grep it.
    #[error("container's cgroup unexpectedly frozen: {}; refusing to use it", path.display())]
    Frozen { path: PathBuf },
    #[error("linux.resources.devices: eBPF device filter: {op}: {source}")]
    Bpf { op: String, source: std::io::Error },
    /// `--systemd-cgroup` where the systemd driver cannot work.
    #[error("--systemd-cgroup: {0}")]
    NoSystemd(String),
    #[error("--systemd-cgroup: systemd: {0}")]
    Systemd(#[from] DbusError),
}

impl From<cgroupfs::Error> for CgroupError {
    fn from(e: cgroupfs::Error) -> Self {
        match e {
            cgroupfs::Error::Io { path, op, source } => CgroupError::Io { path, op, source },
            cgroupfs::Error::Discovery(msg) => CgroupError::Discovery(msg),
        }
    }
}

impl CgroupError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Invalid { field: field.into(), reason: reason.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

// The fields of the two structs below are in alphabetical order: state.json has had them
// so since it kept this record as a serde_json::Value (whose maps are sorted), and a state
// file written now is byte for byte what an older berth wrote.

/// One hierarchy the container has a directory in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HierarchyState {
    /// The container's cgroup directory (absolute).
    pub dir: PathBuf,
    pub mount_point: PathBuf,
    /// "memory", "cpu,cpuacct", "systemd", "unified" on v1; "" on v2.
    pub name: String,
    /// v1 controllers of the hierarchy ("name=systemd" included); empty on cgroup2.
    pub subsystems: Vec<String>,
}

impl HierarchyState {
    pub(crate) fn has(&self, controller: &str) -> bool {
        self.subsystems.iter().any(|s| s == controller)
    }
}

/// What `state.json` must keep to reopen the manager (kill --all, delete).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupState {
    /// Directories `create` made, parents before children; `destroy`
    /// removes only these.
    #[serde(default)]
    pub created: Vec<PathBuf>,
    pub hierarchies: Vec<HierarchyState>,
    /// The systemd unit the cgroup is (`--systemd-cgroup`); absent for cgroupfs, and in
    /// records of an older berth, which then load as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<UnitState>,
    pub version: CgroupVersion,
}

/// One hierarchy to show under a `type: "cgroup"` mount.
///
/// v1: one entry per hierarchy, `name` being its mount data ("memory", "cpu,cpuacct",
/// "name=systemd"; the directory under the mount drops the "name=") or "unified" for the
/// hybrid cgroup2. v2: a single entry with an empty `name`. `host_path` is the container's
/// own cgroup directory in that hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub name: String,
    pub host_path: PathBuf,
}

/// The container's cgroup, through the driver of this host's cgroup version. What differs
/// between drivers is required; what only depends on the directories is provided, on top of
/// [`Manager::dirs`].
pub trait Manager: std::fmt::Debug {
    fn version(&self) -> CgroupVersion;

    /// The container's directory on each hierarchy, and those `create` made.
    fn dirs(&self) -> &Dirs;

    /// The directory of the hierarchy carrying `controller` (v1), or the single v2 directory.
    fn dir_for(&self, controller: &str) -> Option<&Path>;

    /// Pure check of `resources` against what this driver and this host implement. No fs change.
    fn validate(&self, resources: &LinuxResources) -> Result<(), CgroupError>;

    /// Makes the container's directory in every hierarchy ([`Manager::plan`] first, if the
    /// caller has not). On failure, removes what it made.
    fn create(&self) -> Result<(), CgroupError>;

    /// Writes `resources` into the container's cgroup. Validates first, so a rejected
    /// configuration writes nothing.
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;

    /// Where a process joining the container goes, per hierarchy: the container's cgroup,
    /// or a sub-cgroup of it (`exec --cgroup`: `path` for every hierarchy, or
    /// `controller[,controller]:path` on v1). The sub-cgroup must exist already.
    fn join_dirs(&self, sub: &[String]) -> Result<Vec<PathBuf>, CgroupError>;

    /// Every process in the container's cgroup and its sub-cgroups.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;

    /// Whether the container's cgroup is (completely) frozen.
    fn is_frozen(&self) -> Result<bool, CgroupError>;

    /// The directory, file and value that freeze (or thaw) the container.
    fn freezer(&self, frozen: bool) -> Result<(PathBuf, &'static str, &'static str), CgroupError>;

    /// An existing directory `h.dir` that a new container may not take over, being frozen.
    fn left_frozen(&self, h: &HierarchyState) -> bool;

    /// The container's current resource usage.
    fn stats(&self) -> Result<Stats, CgroupError>;

    fn oom_watch(&self) -> Result<OomWatch, CgroupError>;

    /// Pure v2 only: an O_PATH fd of the container's cgroup for clone3(CLONE_INTO_CGROUP).
    fn open_v2_dir(&self) -> Option<OwnedFd> {
        None
    }

    /// Whether the cgroup only comes into being with the init in it (systemd: a scope needs
    /// a process to start). The init is then cloned outside it and placed by `add_pid`
    /// before it goes on, instead of being cloned into the directory.
    fn starts_with_init(&self) -> bool {
        false
    }

    /// Pure v2 only: hands the container's cgroup to `uid`/`gid` (its root in a user
    /// namespace) so it can manage sub-cgroups of its own.
    fn delegate(&self, _uid: u32, _gid: u32) -> Result<(), CgroupError> {
        Ok(())
    }

    fn is_v2(&self) -> bool {
        self.version() == CgroupVersion::V2
    }

    fn state(&self) -> CgroupState {
        self.dirs().state(self.version())
    }

    /// Decides which directories `create` will make (those missing now) and adds them to
    /// the record of what this container owns, without touching the host. The caller saves
    /// [`Manager::state`] after this and before `create`, so a runtime killed while making
    /// them leaves a state that names every one of them for `delete --force`. Refuses a
    /// non-empty or frozen existing cgroup (B15). Calling it again adds nothing new.
    fn plan(&self) -> Result<(), CgroupError> {
        self.dirs().plan(&|h| self.left_frozen(h))
    }

    /// Moves `pid` into the container's cgroup on every hierarchy (on v1
    /// including name=systemd and the hybrid unified one, as runc does).
    fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        add_pid_to(&self.dirs().leaves(), pid)
    }

    /// Removes the container's cgroup and what `create` made, children first.
    /// Sub-cgroups the container made inside its own cgroup go too. The container's
    /// own directory goes even when it existed before create (runc removes it too),
    /// but only once no process is left in it; parents go only if create made them.
    fn destroy(&self) -> Result<(), CgroupError> {
        self.dirs().destroy()
    }

    /// Freezes or thaws every process of the container (pause/resume, and
    /// a race-free `kill --all`: freeze, signal, thaw). Returns once the
    /// kernel reports the new state.
    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, file, value) = self.freezer(frozen)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut delay = std::time::Duration::from_micros(100);
        loop {
            // v1 may stay in FREEZING while a task is in an uninterruptible
            // sleep; writing FROZEN again retries the freeze.
            fsutil::set("freezer", &dir, file, value)?;
            if self.is_frozen()? == frozen {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(CgroupError::Io {
                    path: dir.join(file),
                    op: if frozen { "freeze (timed out)" } else { "thaw (timed out)" },
                    source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(std::time::Duration::from_millis(50));
        }
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        self.dirs().mounts()
    }
}

/// Resolves where the container's cgroup is on this host and picks the driver. No fs change.
/// With `systemd`, `cgroups_path` is systemd's "slice:prefix:name" (see systemd/), and a host
/// without systemd, a system bus or pure cgroup v2 is refused here, before anything is made.
pub fn open(id: &str, cgroups_path: Option<&str>, systemd: bool) -> Result<Box<dyn Manager>, CgroupError> {
    if systemd {
        return open_systemd(id, cgroups_path);
    }
    let hs = cgroupfs::hierarchy::of_process(None)?;
    let m = for_hierarchies(id, cgroups_path, hs)?;
    if !crate::rootless::active() {
        return Ok(m);
    }
    // Rootless: only the hierarchies where this user may make (or use) the container's
    // directory; on a cgroup v1 host that is usually none, and the container runs without
    // cgroups (as runc and podman do there). Limits then fail by name (rootless.rs).
    let mut st = m.state();
    let (usable, refused): (Vec<_>, Vec<_>) = st.hierarchies.into_iter().partition(|h| fsutil::user_may_create(&h.dir));
    // A cgroupsPath asks for that cgroup: as with runc, rootless without the permission to
    // make it fails, rather than running the container without it.
    if let (Some(path), Some(h)) = (cgroups_path.filter(|p| !p.is_empty()), refused.first()) {
        return Err(CgroupError::InvalidPath {
            path: path.to_string(),
            reason: format!(
                "rootless (uid {}): unable to apply cgroup configuration: permission denied to make {} \
                 (without a cgroupsPath the container runs without a cgroup of its own)",
                nix::unistd::geteuid(),
                h.dir.display()
            ),
        });
    }
    st.hierarchies = usable;
    Ok(from_state(&st))
}

/// What a `type: "cgroup"` mount shows the container: its own directory in each hierarchy
/// the driver uses and, rootless, berth's own cgroup in each hierarchy where the user could
/// not make one, since the init stays there (runc's rootless mounts show the same). Without
/// that, a rootless container on a host with no delegation (every v1 host) could not mount
/// cgroups at all, and podman's rootless configs always ask for the mount.
pub fn container_mounts(m: &dyn Manager) -> Result<Vec<CgroupMount>, CgroupError> {
    let used = m.mounts();
    if !crate::rootless::active() || m.state().systemd.is_some() {
        return Ok(used);
    }
    let own = cgroupfs::hierarchy::of_process(None)?;
    Ok(own
        .iter()
        .map(|h| {
            let name = if h.subsystems.is_empty() { h.name.clone() } else { h.subsystems.join(",") };
            used.iter().find(|u| u.name == name).cloned().unwrap_or_else(|| CgroupMount { name, host_path: h.dir() })
        })
        .collect())
}

fn open_systemd(id: &str, cgroups_path: Option<&str>) -> Result<Box<dyn Manager>, CgroupError> {
    let unit = systemd::parse(id, cgroups_path)?;
    systemd::check_host()?;
    let hs = cgroupfs::hierarchy::of_process(None)?;
    let [h] = &hs[..] else {
        return Err(CgroupError::NoSystemd(
            "berth's systemd driver needs a pure cgroup v2 host; this one has cgroup v1 hierarchies".into(),
        ));
    };
    if h.is_v1() {
        return Err(CgroupError::NoSystemd("berth's systemd driver needs cgroup v2; this host has cgroup v1".into()));
    }
    // Rootless, the unit is the user manager's: its cgroup is below that manager's.
    let manager = if crate::rootless::active() {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| CgroupError::Io {
            path: "/proc/self/cgroup".into(),
            op: "read",
            source: e,
        })?;
        let manager = systemd::user_manager_cgroup(&own, systemd::host_uid());
        if !h.mount_point.join(manager.trim_start_matches('/')).is_dir() {
            return Err(CgroupError::NoSystemd(format!(
                "rootless: no cgroup of the user's systemd instance at {manager}: is the user's \
                 systemd running (a login session, or loginctl enable-linger)?"
            )));
        }
        manager
    } else {
        String::new()
    };
    let dir = h.mount_point.join(manager.trim_start_matches('/')).join(unit.cgroup.trim_start_matches('/'));
    let state = HierarchyState {
        name: h.name.clone(),
        subsystems: h.subsystems.clone(),
        mount_point: h.mount_point.clone(),
        dir,
    };
    Ok(Box::new(systemd::Systemd::new(id, &unit, manager, state)))
}

/// `open` with the host described by text, for tests and for callers that already read
/// these files.
pub fn from_sources(
    id: &str,
    cgroups_path: Option<&str>,
    mountinfo: &str,
    proc_self_cgroup: &str,
    pure_v2: bool,
) -> Result<Box<dyn Manager>, CgroupError> {
    let hs = cgroupfs::hierarchy::discover(mountinfo, proc_self_cgroup, pure_v2)?;
    for_hierarchies(id, cgroups_path, hs)
}

/// The container's directory on each of our own hierarchies. Discovery gives pure v2 as its
/// one cgroup2 hierarchy, and v1 (hybrid included) with at least one v1 hierarchy.
fn for_hierarchies(
    id: &str,
    cgroups_path: Option<&str>,
    hs: Vec<cgroupfs::hierarchy::Hierarchy>,
) -> Result<Box<dyn Manager>, CgroupError> {
    let version = if hs.iter().any(|h| h.is_v1()) { CgroupVersion::V1 } else { CgroupVersion::V2 };
    let mut hier = Vec::with_capacity(hs.len());
    for h in hs {
        let rel = path::resolve_rel(&h.own_path, id, cgroups_path)?;
        let dir = h.mount_point.join(rel.trim_start_matches('/'));
        hier.push(HierarchyState { name: h.name, subsystems: h.subsystems, mount_point: h.mount_point, dir });
    }
    Ok(from_state(&CgroupState { version, hierarchies: hier, created: Vec::new(), systemd: None }))
}

/// Reopens the manager of a recorded cgroup.
pub fn from_state(state: &CgroupState) -> Box<dyn Manager> {
    let dirs = Dirs::new(state.hierarchies.clone(), state.created.clone());
    match (state.version, &state.systemd) {
        (_, Some(unit)) => Box::new(systemd::Systemd::reopen(unit, dirs)),
        (CgroupVersion::V1, None) => Box::new(v1::V1::new(dirs)),
        (CgroupVersion::V2, None) => Box::new(v2::V2::new(dirs)),
    }
}

/// Moves `pid` into the given directories (from [`Manager::join_dirs`]).
pub fn add_pid_to(dirs: &[PathBuf], pid: i32) -> Result<(), CgroupError> {
    for d in dirs {
        let p = d.join("cgroup.procs");
        fsutil::write_file(&p, &pid.to_string()).map_err(|e| CgroupError::Write {
            field: "cgroup.procs".into(),
            path: p,
            value: pid.to_string(),
            source: e,
        })?;
    }
    Ok(())
}
