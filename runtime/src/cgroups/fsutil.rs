//! Small cgroupfs helpers shared by the v1 and v2 drivers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CgroupError;

pub(crate) fn read_trim(p: &Path) -> std::io::Result<String> {
    Ok(crate::sys::small_file::read_to_string(p)?.trim().to_string())
}

/// One write(2) of `value` to an existing file: cgroupfs files are never
/// created by us (O_CREAT would turn a missing controller into EACCES
/// instead of a telling ENOENT) and a value must arrive in one write.
pub(crate) fn write_file(p: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(p)?;
    f.write_all(value.as_bytes())
}

/// Writes a resource value, with the config field in the error.
pub(crate) fn set(field: &str, dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let p = dir.join(file);
    write_file(&p, value).map_err(|e| CgroupError::Write {
        field: field.to_string(),
        path: p,
        value: value.to_string(),
        source: e,
    })
}

/// Writes `(file, value)` pairs in order, one write(2) each, like [`set`] for every pair,
/// but through one open file for consecutive pairs that name the same file (the device
/// rules of v1, a dozen lines into `devices.allow`: each write is one rule).
pub(crate) fn set_each(field: &str, dir: &Path, writes: &[(&str, String)]) -> Result<(), CgroupError> {
    let mut open: Option<(&str, std::fs::File)> = None;
    for (file, value) in writes {
        let err = |source| CgroupError::Write {
            field: field.to_string(),
            path: dir.join(file),
            value: value.clone(),
            source,
        };
        let f = match &mut open {
            Some((name, f)) if name == file => f,
            _ => {
                let f = std::fs::OpenOptions::new().write(true).open(dir.join(file)).map_err(err)?;
                &mut open.insert((*file, f)).1
            }
        };
        f.write_all(value.as_bytes()).map_err(err)?;
    }
    Ok(())
}

pub(crate) fn parse_pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// cgroup.procs of `dir` and every cgroup below it. A missing `dir` has no
/// processes.
pub(crate) fn all_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        match std::fs::read_to_string(&procs) {
            Ok(t) => out.extend(parse_pids(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CgroupError::Io { path: procs, op: "read", source: e }),
        }
        for sub in subdirs(&d)? {
            stack.push(sub);
        }
    }
    Ok(out)
}

fn subdirs(d: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match std::fs::read_dir(d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CgroupError::Io { path: d.to_path_buf(), op: "readdir", source: e }),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// One rmdir of `d`: whether it is gone now (removed, or not there).
pub(crate) fn rmdir_once(d: &Path) -> bool {
    match std::fs::remove_dir(d) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// rmdir, waiting a little for processes that were just killed to leave
/// (the cgroup stays busy until they are reaped). Gone already is fine.
pub(crate) fn rmdir_retry(d: &Path) -> Result<(), CgroupError> {
    let (_, errs) = rmdir_all(&[d.to_path_buf()]);
    match errs.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Removes `dirs` in the given order (children before parents), retrying
/// the busy ones together, so that N busy cgroups cost one wait rather
/// than N. Returns the dirs that could not be removed and their errors.
pub(crate) fn rmdir_all(dirs: &[PathBuf]) -> (Vec<PathBuf>, Vec<CgroupError>) {
    const BUDGET: Duration = Duration::from_millis(1500);
    let mut pending: Vec<PathBuf> = dirs.to_vec();
    let mut delay = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        let mut busy = Vec::new();
        let mut errs = Vec::new();
        for d in &pending {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        busy.push(d.clone());
                    }
                    errs.push((d.clone(), e));
                }
            }
        }
        let only_busy = busy.len() == errs.len();
        if errs.is_empty() || !only_busy || waited >= BUDGET {
            let left = errs.iter().map(|(d, _)| d.clone()).collect();
            let errs = errs.into_iter().map(|(path, source)| CgroupError::Io { path, op: "rmdir", source }).collect();
            return (left, errs);
        }
        pending = busy;
        std::thread::sleep(delay);
        waited += delay;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Removes every cgroup below `d` (deepest first), leaving `d` itself.
pub(crate) fn remove_children(d: &Path) -> Result<(), CgroupError> {
    for sub in subdirs(d)? {
        remove_children(&sub)?;
        rmdir_retry(&sub)?;
    }
    Ok(())
}

/// Whether this process may make `dir` (or, if it exists, move processes into it): the
/// nearest existing directory on the way is writable for it (access(2): the real ids, which
/// are the effective ones for berth).
pub(crate) fn user_may_create(dir: &Path) -> bool {
    let Some(existing) = dir.ancestors().find(|a| a.exists()) else { return false };
    let target = if existing == dir { dir.join("cgroup.procs") } else { existing.to_path_buf() };
    nix::unistd::access(&target, nix::unistd::AccessFlags::W_OK).is_ok()
}
