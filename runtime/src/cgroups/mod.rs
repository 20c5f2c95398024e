//! The container's cgroup: where it lives on each hierarchy, creating it,
//! applying `linux.resources`, placing processes, listing and removing it.
//!
//! Both cgroup v1 (including the hybrid layout with a cgroup2 "unified"
//! mount next to the v1 controllers) and pure cgroup v2 are handled; the
//! layout is read once from /proc/self/mountinfo and /proc/self/cgroup.
//! Only the cgroupfs driver exists; with `--systemd-cgroup` a "slice:prefix:name"
//! path is converted to the directory systemd would use (systemd.rs).
//!
//! How the runtime uses it (create):
//! 1. `Manager::new(id, linux.cgroupsPath, --systemd-cgroup)` then `validate(resources)`,
//!    before anything is made, so a bad config changes nothing.
//! 2. `plan()`, then save `state()` in state.json, then `create()`: the state names
//!    every directory this container is about to make before any exists (a runtime
//!    killed in between leaves a record `delete --force` can act on), and only those
//!    are removed. Empty cpuset values are filled in every level on the way down.
//! 3. `apply(resources)`. On error, `destroy()` (nothing half-applied stays).
//! 4. Pure v2: clone3(CLONE_INTO_CGROUP) with `open_v2_dir()`; otherwise
//!    `add_pid(child)`, which must happen before the child unshares its
//!    cgroup namespace (the namespace root is the cgroup it is in then).
//!
//! Later commands reopen it with `Manager::from_state`: `pids()` for
//! `kill --all` and `ps`, `set_frozen` for pause/resume, `destroy()` for
//! delete once the processes are gone (it waits briefly for dying ones).

mod bpf;
mod convert;
mod devices;
mod fsutil;
mod mountinfo;
mod oom;
mod stats;
mod systemd;
mod v1;
mod v2;
mod validate;

#[cfg(test)]
mod tests;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_spec::runtime::LinuxResources;

pub use oom::OomWatch;
pub use stats::Stats;

/// The host mounts cgroup v2 alone at /sys/fs/cgroup (runc's IsCgroup2UnifiedMode), not
/// v1 or the hybrid layout.
pub fn host_is_unified() -> bool {
    fsutil::is_cgroup2_fs(Path::new("/sys/fs/cgroup"))
}

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

/// One hierarchy the container has a directory in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HierarchyState {
    /// "memory", "cpu,cpuacct", "systemd", "unified" on v1; "" on v2.
    pub name: String,
    /// v1 controllers of the hierarchy ("name=systemd" included); empty on cgroup2.
    pub subsystems: Vec<String>,
    pub mount_point: PathBuf,
    /// The container's cgroup directory (absolute).
    pub dir: PathBuf,
}

/// What `state.json` must keep to reopen the manager (kill --all, delete).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupState {
    pub version: CgroupVersion,
    pub hierarchies: Vec<HierarchyState>,
    /// Directories `create` made, parents before children; `destroy`
    /// removes only these.
    #[serde(default)]
    pub created: Vec<PathBuf>,
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

#[derive(Debug)]
pub struct Manager {
    version: CgroupVersion,
    hier: Vec<HierarchyState>,
    // create() takes &self (the caller may share the manager); the record of
    // what it made is the only state that changes.
    created: Mutex<Vec<PathBuf>>,
}

impl Manager {
    /// Resolves where the container's cgroup is on this host. No fs change.
    /// With `systemd`, `cgroups_path` is systemd's "slice:prefix:name" (see systemd.rs).
    pub fn new(id: &str, cgroups_path: Option<&str>, systemd: bool) -> Result<Manager, CgroupError> {
        let expanded;
        let cgroups_path = if systemd {
            expanded = systemd::to_path(id, cgroups_path)?;
            Some(expanded.as_str())
        } else {
            cgroups_path
        };
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map_err(|e| CgroupError::Io { path: PathBuf::from(p), op: "read", source: e })
        };
        let mountinfo = read("/proc/self/mountinfo")?;
        let own = read("/proc/self/cgroup")?;
        let pure_v2 = fsutil::is_cgroup2_fs(Path::new("/sys/fs/cgroup"));
        Self::from_sources(id, cgroups_path, &mountinfo, &own, pure_v2)
    }

    /// `new` with the host described by text, for tests and for callers that
    /// already read these files.
    pub fn from_sources(
        id: &str,
        cgroups_path: Option<&str>,
        mountinfo: &str,
        proc_self_cgroup: &str,
        pure_v2: bool,
    ) -> Result<Manager, CgroupError> {
        let hs = mountinfo::discover(mountinfo, proc_self_cgroup, pure_v2)?;
        let mut hier = Vec::with_capacity(hs.len());
        for h in hs {
            let rel = mountinfo::resolve_rel(&h.own_path, id, cgroups_path)?;
            let dir = h.mount_point.join(rel.trim_start_matches('/'));
            hier.push(HierarchyState { name: h.name, subsystems: h.subsystems, mount_point: h.mount_point, dir });
        }
        Ok(Manager {
            version: if pure_v2 { CgroupVersion::V2 } else { CgroupVersion::V1 },
            hier,
            created: Mutex::new(Vec::new()),
        })
    }

    pub fn from_state(state: &CgroupState) -> Manager {
        Manager {
            version: state.version,
            hier: state.hierarchies.clone(),
            created: Mutex::new(state.created.clone()),
        }
    }

    pub fn state(&self) -> CgroupState {
        CgroupState { version: self.version, hierarchies: self.hier.clone(), created: self.created_list() }
    }

    pub fn is_v2(&self) -> bool {
        self.version == CgroupVersion::V2
    }

    fn created_list(&self) -> Vec<PathBuf> {
        match self.created.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_created(&self, v: Vec<PathBuf>) {
        match self.created.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// The directory of the hierarchy carrying `controller` (v1), or the
    /// single v2 directory.
    pub(crate) fn dir_for(&self, controller: &str) -> Option<&Path> {
        if self.is_v2() {
            return self.hier.first().map(|h| h.dir.as_path());
        }
        self.hier.iter().find(|h| h.subsystems.iter().any(|s| s == controller)).map(|h| h.dir.as_path())
    }

    /// Pure check of `resources` against what this module and this host's
    /// cgroup version implement. No fs change.
    pub fn validate(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate::validate(resources, self.is_v2())
    }

    /// Decides which directories `create` will make (those missing now) and adds them to
    /// the record of what this container owns, without touching the host. The caller saves
    /// [`Manager::state`] after this and before `create`, so a runtime killed while making
    /// them leaves a state that names every one of them for `delete --force`. Refuses a
    /// non-empty or frozen existing cgroup (B15). Calling it again adds nothing new.
    pub fn plan(&self) -> Result<(), CgroupError> {
        // B15 first, before anything is made, so a refusal changes nothing.
        for h in &self.hier {
            if h.dir.is_dir() {
                self.check_reusable(h)?;
            }
        }
        let mut all = self.created_list();
        for h in &self.hier {
            let mut cur = h.mount_point.clone();
            for comp in Self::rel_of(h)?.components() {
                cur.push(comp);
                if !cur.is_dir() && !all.contains(&cur) {
                    all.push(cur.clone());
                }
            }
        }
        self.set_created(all);
        Ok(())
    }

    fn rel_of(h: &HierarchyState) -> Result<&Path, CgroupError> {
        h.dir.strip_prefix(&h.mount_point).map_err(|_| CgroupError::InvalidPath {
            path: h.dir.display().to_string(),
            reason: format!("not under the hierarchy mount {}", h.mount_point.display()),
        })
    }

    /// Makes the container's directory in every hierarchy ([`Manager::plan`] first, if the
    /// caller has not). On failure, removes what it made.
    pub fn create(&self) -> Result<(), CgroupError> {
        self.plan()?;
        let mut made = Vec::new();
        if let Err(e) = self.create_dirs(&mut made) {
            // Leave the host as if create were never attempted.
            let _ = self.remove_created(&made);
            return Err(e);
        }
        Ok(())
    }

    fn create_dirs(&self, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
        for h in &self.hier {
            let rel = Self::rel_of(h)?;
            // A shared parent can vanish between our EEXIST and the next
            // mkdir when another container's destroy removes it: walk again.
            let mut attempt = 0;
            while let Err(e) = Self::mkdir_walk(h, rel, created) {
                attempt += 1;
                let vanished = matches!(&e, CgroupError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
                if !vanished || attempt > 2 {
                    return Err(e);
                }
            }
            if self.is_v2() {
                v2::enable_controllers(&h.mount_point, &h.dir);
            }
        }
        Ok(())
    }

    fn mkdir_walk(h: &HierarchyState, rel: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
        let cpuset = h.subsystems.iter().any(|s| s == "cpuset");
        let mut cur = h.mount_point.clone();
        for comp in rel.components() {
            let parent = cur.clone();
            cur.push(comp);
            match std::fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::Io { path: cur, op: "mkdir", source: e }),
            }
            // Every level, not only the ones made here: a pre-existing ancestor with empty
            // cpus or mems (made by hand, or by a runtime killed before it filled them)
            // would make joining the container's cgroup fail with ENOSPC. runc fills them
            // the same way on the way down.
            if cpuset {
                v1::cpuset_copy_down(&parent, &cur)?;
            }
        }
        Ok(())
    }

    /// Removes `created`: the container's own directories with retries
    /// (their processes may still be exiting), then the parents we made,
    /// once each, leaving a parent that another cgroup now lives in (it is
    /// shared, e.g. "/docker"). Returns what is left and the first error.
    fn remove_created(&self, created: &[PathBuf]) -> (Vec<PathBuf>, Option<CgroupError>) {
        let is_leaf = |d: &PathBuf| self.hier.iter().any(|h| &h.dir == d);
        let leaves: Vec<PathBuf> = created.iter().filter(|d| is_leaf(d)).cloned().collect();
        let parents: Vec<PathBuf> = created.iter().rev().filter(|d| !is_leaf(d)).cloned().collect();
        let (mut left, errs) = fsutil::rmdir_all(&leaves);
        let mut first = errs.into_iter().next();
        if !left.is_empty() {
            left.extend(parents.into_iter().rev());
            return (left, first);
        }
        for p in parents.into_iter() {
            match std::fs::remove_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {}
                Err(e) => {
                    left.push(p.clone());
                    first.get_or_insert(CgroupError::Io { path: p, op: "rmdir", source: e });
                }
            }
        }
        (left, first)
    }

    fn check_reusable(&self, h: &HierarchyState) -> Result<(), CgroupError> {
        let count = fsutil::all_pids(&h.dir)?.len();
        if count > 0 {
            return Err(CgroupError::NotEmpty { path: h.dir.clone(), count });
        }
        let frozen = if self.is_v2() {
            fsutil::read_trim(&h.dir.join("cgroup.freeze")).is_ok_and(|v| v == "1")
        } else if h.subsystems.iter().any(|s| s == "freezer") {
            fsutil::read_trim(&h.dir.join("freezer.state")).is_ok_and(|v| v != "THAWED")
        } else {
            false
        };
        if frozen {
            return Err(CgroupError::Frozen { path: h.dir.clone() });
        }
        Ok(())
    }

    /// Writes `resources` into the container's cgroup. Validates first, so
    /// a rejected configuration writes nothing.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.validate(resources)?;
        if self.is_v2() {
            v2::apply(self, resources)
        } else {
            v1::apply(self, resources)
        }
    }

    /// Moves `pid` into the container's cgroup on every hierarchy (on v1
    /// including name=systemd and the hybrid unified one, as runc does).
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let dirs: Vec<PathBuf> = self.hier.iter().map(|h| h.dir.clone()).collect();
        Self::add_pid_to(&dirs, pid)
    }

    /// Where a process joining the container goes, per hierarchy: the container's cgroup,
    /// or a sub-cgroup of it (`exec --cgroup`: `path` for every hierarchy, or
    /// `controller[,controller]:path` on v1). The sub-cgroup must exist already.
    pub fn join_dirs(&self, sub: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
        let mut dirs: Vec<PathBuf> = self.hier.iter().map(|h| h.dir.clone()).collect();
        for arg in sub {
            let (controllers, rel) = match arg.split_once(':') {
                Some((c, r)) => (c.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(), r),
                None => (Vec::new(), arg.as_str()),
            };
            // The reasons carry runc's phrases (" .. is not a sub cgroup path", "adding pid
            // ... cgroup.procs: no such file", "unknown controller "), which its tests grep.
            let bad = |reason: &str| CgroupError::invalid(format!("--cgroup {arg:?}"), reason);
            let rel_path = Path::new(rel.trim_start_matches('/'));
            if rel.is_empty() || rel_path.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(bad(&format!(
                    "{rel} is not a sub cgroup path: it must be a path below the container's cgroup, without \"..\""
                )));
            }
            if self.is_v2() && !controllers.is_empty() {
                return Err(bad("controllers can only be named on cgroup v1"));
            }
            if let Some(c) = controllers.iter().find(|c| !self.hier.iter().any(|h| h.subsystems.iter().any(|s| s == *c))) {
                return Err(bad(&format!("unknown controller {c:?}: no mounted hierarchy has it")));
            }
            for (h, dir) in self.hier.iter().zip(dirs.iter_mut()) {
                if controllers.is_empty() || controllers.iter().any(|c| h.subsystems.iter().any(|s| s == c)) {
                    let d = h.dir.join(rel_path);
                    if !d.is_dir() {
                        return Err(bad(&format!(
                            "the sub-cgroup does not exist: adding pid to {}: no such file or directory",
                            d.join("cgroup.procs").display()
                        )));
                    }
                    *dir = d;
                }
            }
        }
        Ok(dirs)
    }

    /// Moves `pid` into the given directories (from [`Manager::join_dirs`]).
    pub fn add_pid_to(dirs: &[PathBuf], pid: i32) -> Result<(), CgroupError> {
        for d in dirs {
            let p = d.join("cgroup.procs");
            fsutil::write_file(&p, &pid.to_string())
                .map_err(|e| CgroupError::Write { field: "cgroup.procs".into(), path: p, value: pid.to_string(), source: e })?;
        }
        Ok(())
    }

    /// Pure v2 only: an O_PATH fd of the container's cgroup for
    /// clone3(CLONE_INTO_CGROUP).
    pub fn open_v2_dir(&self) -> Option<OwnedFd> {
        if !self.is_v2() {
            return None;
        }
        let h = self.hier.first()?;
        nix::fcntl::open(
            &h.dir,
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    }

    /// Pure v2 only: hands the container's cgroup to `uid`/`gid` (its root in a user
    /// namespace) so it can manage sub-cgroups of its own: the directory and the files the
    /// kernel lists in /sys/kernel/cgroup/delegate, as runc does for a container with its
    /// own user and cgroup namespaces and a writable cgroup mount.
    pub fn delegate(&self, uid: u32, gid: u32) -> Result<(), CgroupError> {
        let Some(h) = self.hier.first().filter(|_| self.is_v2()) else { return Ok(()) };
        let listed = std::fs::read_to_string("/sys/kernel/cgroup/delegate")
            .unwrap_or_else(|_| "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\n".into());
        let chown = |p: &Path| {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid))
                .map_err(|e| CgroupError::Io { path: p.to_path_buf(), op: "chown to the container's root", source: e })
        };
        chown(&h.dir)?;
        for name in listed.lines().map(str::trim).filter(|n| !n.is_empty()) {
            let p = h.dir.join(name);
            if p.exists() {
                chown(&p)?;
            }
        }
        Ok(())
    }

    /// Every process in the container's cgroup and its sub-cgroups.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = if self.is_v2() {
            self.hier.first().map(|h| h.dir.as_path())
        } else {
            ["pids", "freezer", "memory", "devices"]
                .iter()
                .find_map(|c| self.dir_for(c))
                .or_else(|| self.hier.first().map(|h| h.dir.as_path()))
        };
        match dir {
            Some(d) => fsutil::all_pids(d),
            None => Ok(Vec::new()),
        }
    }

    /// Removes the container's cgroup and what `create` made, children first.
    /// Sub-cgroups the container made inside its own cgroup go too. The container's
    /// own directory goes even when it existed before create (runc removes it too),
    /// but only once no process is left in it; parents go only if create made them.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let created = self.created_list();
        let mut first_err = None;
        for h in &self.hier {
            if created.iter().any(|c| c == &h.dir) {
                if let Err(e) = fsutil::remove_children(&h.dir) {
                    first_err.get_or_insert(e);
                }
            }
        }
        let (left, err) = self.remove_created(&created);
        if let Some(e) = err {
            first_err.get_or_insert(e);
        }
        self.set_created(left);
        if let Err(e) = self.remove_adopted(&created) {
            first_err.get_or_insert(e);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The container's directories that existed before create (not in `created`):
    /// removed with their sub-cgroups when nothing runs in them any more. One with a
    /// process left (someone else's) stays, as does a hierarchy's root.
    fn remove_adopted(&self, created: &[PathBuf]) -> Result<(), CgroupError> {
        let mut first_err = None;
        for h in &self.hier {
            if created.contains(&h.dir) || h.dir == h.mount_point || !h.dir.is_dir() {
                continue;
            }
            match fsutil::all_pids(&h.dir) {
                Ok(pids) if pids.is_empty() => {}
                Ok(_) => continue,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            }
            let res = fsutil::remove_children(&h.dir).and_then(|()| {
                let (_, errs) = fsutil::rmdir_all(std::slice::from_ref(&h.dir));
                errs.into_iter().next().map_or(Ok(()), Err)
            });
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Freezes or thaws every process of the container (pause/resume, and
    /// a race-free `kill --all`: freeze, signal, thaw). Returns once the
    /// kernel reports the new state.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
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

    /// Whether the container's cgroup is (completely) frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let (dir, _, _) = self.freezer(true)?;
        if self.is_v2() {
            let p = dir.join("cgroup.events");
            let t = std::fs::read_to_string(&p).map_err(|e| CgroupError::Io { path: p, op: "read", source: e })?;
            Ok(t.lines().any(|l| l.trim() == "frozen 1"))
        } else {
            let p = dir.join("freezer.state");
            let t = fsutil::read_trim(&p).map_err(|e| CgroupError::Io { path: p, op: "read", source: e })?;
            Ok(t == "FROZEN")
        }
    }

    fn freezer(&self, frozen: bool) -> Result<(PathBuf, &'static str, &'static str), CgroupError> {
        if self.is_v2() {
            let d = self.dir_for("").ok_or_else(|| CgroupError::Discovery("no cgroup2 directory".into()))?;
            return Ok((d.to_path_buf(), "cgroup.freeze", if frozen { "1" } else { "0" }));
        }
        let d = self
            .dir_for("freezer")
            .ok_or_else(|| CgroupError::Discovery("no cgroup v1 freezer hierarchy is mounted".into()))?;
        Ok((d.to_path_buf(), "freezer.state", if frozen { "FROZEN" } else { "THAWED" }))
    }

    pub fn mounts(&self) -> Vec<CgroupMount> {
        // v1 hierarchies go by their mount data ("cpu,cpuacct", "name=systemd"): the rootfs
        // code mounts them by it and derives the directory name from it.
        self.hier
            .iter()
            .map(|h| CgroupMount {
                name: if h.subsystems.is_empty() { h.name.clone() } else { h.subsystems.join(",") },
                host_path: h.dir.clone(),
            })
            .collect()
    }
}
