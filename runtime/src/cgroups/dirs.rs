//! The container's directory on each hierarchy, whatever the driver: planning which ones
//! create makes (and recording them), making them, sub-cgroups for `exec --cgroup`, listing
//! the processes, and removing only what is the container's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{fsutil, CgroupError, CgroupMount, CgroupState, CgroupVersion, HierarchyState};

#[derive(Debug)]
pub struct Dirs {
    hier: Vec<HierarchyState>,
    // create() takes &self (the caller may share the manager); the record of
    // what it made is the only state that changes.
    created: Mutex<Vec<PathBuf>>,
}

impl Dirs {
    pub(crate) fn new(hier: Vec<HierarchyState>, created: Vec<PathBuf>) -> Dirs {
        Dirs { hier, created: Mutex::new(created) }
    }

    pub(crate) fn hierarchies(&self) -> &[HierarchyState] {
        &self.hier
    }

    pub(crate) fn state(&self, version: CgroupVersion) -> CgroupState {
        CgroupState { version, hierarchies: self.hier.clone(), created: self.created_list(), systemd: None }
    }

    /// The container's own directory on every hierarchy.
    pub(crate) fn leaves(&self) -> Vec<PathBuf> {
        self.hier.iter().map(|h| h.dir.clone()).collect()
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

    /// See [`super::Manager::plan`]; `left_frozen` tells a frozen existing directory.
    pub(crate) fn plan(&self, left_frozen: &dyn Fn(&HierarchyState) -> bool) -> Result<(), CgroupError> {
        // B15 first, before anything is made, so a refusal changes nothing.
        let mut exists = Vec::with_capacity(self.hier.len());
        for h in &self.hier {
            let is_dir = h.dir.is_dir();
            if is_dir {
                Self::check_reusable(h, left_frozen)?;
            }
            exists.push(is_dir);
        }
        let mut all = self.created_list();
        for (h, exists) in self.hier.iter().zip(exists) {
            let rel = Self::rel_of(h)?;
            if exists {
                continue;
            }
            // Every level from the mount point down, the leaf last. The leaf is missing,
            // and so is each level above it up to the first that exists: one stat each,
            // from the bottom up.
            let levels: Vec<PathBuf> = rel
                .components()
                .scan(h.mount_point.clone(), |p, c| {
                    p.push(c);
                    Some(p.clone())
                })
                .collect();
            let mut first_missing = levels.len().saturating_sub(1);
            while first_missing > 0 && !levels[first_missing - 1].is_dir() {
                first_missing -= 1;
            }
            for dir in levels.into_iter().skip(first_missing) {
                if !all.contains(&dir) {
                    all.push(dir);
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

    /// Makes the container's directory in every hierarchy (plans first). `each_level(h,
    /// parent, dir)` runs at every level on the way down, made now or before. On failure,
    /// removes what it made.
    pub(crate) fn create(
        &self,
        left_frozen: &dyn Fn(&HierarchyState) -> bool,
        each_level: &dyn Fn(&HierarchyState, &Path, &Path) -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        self.plan(left_frozen)?;
        let mut made = Vec::new();
        if let Err(e) = self.create_dirs(&mut made, each_level) {
            // Leave the host as if create were never attempted.
            let _ = self.remove_created(&made);
            return Err(e);
        }
        Ok(())
    }

    fn create_dirs(
        &self,
        created: &mut Vec<PathBuf>,
        each_level: &dyn Fn(&HierarchyState, &Path, &Path) -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        for h in &self.hier {
            let rel = Self::rel_of(h)?;
            // A shared parent can vanish between our EEXIST and the next
            // mkdir when another container's destroy removes it: walk again.
            let mut attempt = 0;
            while let Err(e) = Self::mkdir_walk(h, rel, created, each_level) {
                attempt += 1;
                let vanished =
                    matches!(&e, CgroupError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
                if !vanished || attempt > 2 {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn mkdir_walk(
        h: &HierarchyState,
        rel: &Path,
        created: &mut Vec<PathBuf>,
        each_level: &dyn Fn(&HierarchyState, &Path, &Path) -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        let mut cur = h.mount_point.clone();
        for comp in rel.components() {
            let parent = cur.clone();
            cur.push(comp);
            match std::fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::Io { path: cur, op: "mkdir", source: e }),
            }
            each_level(h, &parent, &cur)?;
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

    fn check_reusable(h: &HierarchyState, left_frozen: &dyn Fn(&HierarchyState) -> bool) -> Result<(), CgroupError> {
        let count = fsutil::all_pids(&h.dir)?.len();
        if count > 0 {
            return Err(CgroupError::NotEmpty { path: h.dir.clone(), count });
        }
        if left_frozen(h) {
            return Err(CgroupError::Frozen { path: h.dir.clone() });
        }
        Ok(())
    }

    /// See [`super::Manager::join_dirs`]; `named_controllers` is whether the driver's
    /// hierarchies are per controller (v1).
    pub(crate) fn join_dirs(&self, sub: &[String], named_controllers: bool) -> Result<Vec<PathBuf>, CgroupError> {
        let mut dirs = self.leaves();
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
            if !named_controllers && !controllers.is_empty() {
                return Err(bad("controllers can only be named on cgroup v1"));
            }
            if let Some(c) = controllers.iter().find(|c| !self.hier.iter().any(|h| h.has(c))) {
                return Err(bad(&format!("unknown controller {c:?}: no mounted hierarchy has it")));
            }
            for (h, dir) in self.hier.iter().zip(dirs.iter_mut()) {
                if controllers.is_empty() || controllers.iter().any(|c| h.has(c)) {
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

    /// Every process in `dir` (one of ours, or none) and its sub-cgroups.
    pub(crate) fn pids_in(dir: Option<&Path>) -> Result<Vec<i32>, CgroupError> {
        match dir {
            Some(d) => fsutil::all_pids(d),
            None => Ok(Vec::new()),
        }
    }

    /// See [`super::Manager::destroy`].
    pub(crate) fn destroy(&self) -> Result<(), CgroupError> {
        let created = self.created_list();
        let mut first_err = None;
        let mut removed = Vec::new();
        for h in &self.hier {
            if created.iter().any(|c| c == &h.dir) {
                // The kernel refuses to remove a cgroup with a process or a sub-cgroup in
                // it (EBUSY), so a leaf that one rmdir removes had neither: no need to
                // read its directory for sub-cgroups first.
                if fsutil::rmdir_once(&h.dir) {
                    removed.push(h.dir.clone());
                } else if let Err(e) = fsutil::remove_children(&h.dir) {
                    first_err.get_or_insert(e);
                }
            }
        }
        let pending: Vec<PathBuf> = created.iter().filter(|c| !removed.contains(c)).cloned().collect();
        let (left, err) = self.remove_created(&pending);
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

    pub(crate) fn mounts(&self) -> Vec<CgroupMount> {
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
