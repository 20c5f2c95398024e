//! `checkpoint` and `restore`: a running container's process tree dumped to images by
//! criu, and a container recreated from them.
//!
//! criu restores what was inside the container (processes, the mount namespace's own
//! mounts, tmpfs contents, pid/ipc/uts/cgroup namespaces). What came from outside is
//! marked external at dump and supplied again at restore: bind mounts (keyed by their
//! destination, mapped to the restoring bundle's sources), cgroup binds of a container
//! without a cgroup namespace, namespaces joined by path, and the stdio pipes the init
//! inherited. Next to the images, `berth-checkpoint.json` records those keys and the
//! config the container ran with.

pub mod criu;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::cgroups::Manager;
use crate::error::{Error, Result};
use crate::process::spawn::GuardedChild;
use crate::rollback::Rollback;
use crate::state::{Status, Store};
use crate::{log, namespaces, rootfs, spec, sys};

/// The file berth writes next to criu's images.
pub const DESCRIPTOR: &str = "berth-checkpoint.json";

/// Options both directions share (runc's flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct CriuOpts {
    /// `--criu`, as given.
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    /// Where criu writes its log (`dump.log`, `restore.log`); the image path by default.
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub file_locks: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    /// soft (default), full, strict or ignore.
    pub manage_cgroups_mode: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CheckpointOpts {
    pub criu: CriuOpts,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// Images of a previous (pre-)dump, relative to the image path as criu takes it.
    pub parent_path: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct RestoreOpts {
    pub criu: CriuOpts,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// A connected console socket; refused (terminals cannot be restored yet).
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    /// `--systemd-cgroup`: linux.cgroupsPath in systemd's slice:prefix:name form.
    pub systemd_cgroup: bool,
}

/// What a restore needs besides criu's images.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    id: String,
    /// The config the container was created with.
    config: serde_json::Value,
    /// Destinations of bind mounts, each dumped as external with itself as key.
    bind_mounts: Vec<PathBuf>,
    /// Destinations of cgroup hierarchies bound from the host (no cgroup namespace).
    cgroup_binds: Vec<PathBuf>,
    /// What the init's fds 0, 1 and 2 were (`pipe:[N]` ones are re-supplied at restore).
    stdio: Vec<String>,
}

const NET_KEY: &str = "berth-netns";
const PID_KEY: &str = "berth-pidns";

fn manage_cgroups(mode: Option<&str>) -> Result<String> {
    let mode = mode.unwrap_or("soft");
    match mode {
        "soft" | "full" | "strict" | "ignore" => Ok(format!("--manage-cgroups={mode}")),
        other => {
            Err(Error::Usage(format!("--manage-cgroups-mode {other:?}: must be one of soft, full, strict, ignore")))
        }
    }
}

fn mkdir_private(path: &Path, what: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(format!("{what} {}", path.display()), e))
}

/// The flags common to dump and restore.
fn common_args(o: &CriuOpts, work: &Path, log: &str) -> Result<Vec<OsString>> {
    let mut a: Vec<OsString> = vec!["--images-dir".into(), o.image_path.clone().into()];
    a.extend(["--work-dir".into(), work.into(), "--log-file".into(), log.into(), "-v4".into()]);
    a.push(manage_cgroups(o.manage_cgroups_mode.as_deref())?.into());
    for (on, flag) in [
        (o.tcp_established, "--tcp-established"),
        (o.file_locks, "--file-locks"),
        (o.ext_unix_sk, "--ext-unix-sk"),
        (o.shell_job, "--shell-job"),
    ] {
        if on {
            a.push(flag.into());
        }
    }
    Ok(a)
}

/// Destinations of the hierarchies a container without a cgroup namespace sees bound
/// from the host, with the host directories.
fn cgroup_binds(spec: &Spec, cg: &dyn Manager) -> Vec<(PathBuf, PathBuf)> {
    if spec::namespace_types(spec).contains(&LinuxNamespaceType::Cgroup) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten().filter(|m| m.typ().as_deref() == Some("cgroup")) {
        let dest = rootfs::resolve::clean_container_path(m.destination());
        for cm in cg.mounts() {
            if cg.is_v2() {
                out.push((dest.clone(), cm.host_path.clone()));
            } else {
                let dir = cm.name.strip_prefix("name=").unwrap_or(&cm.name);
                out.push((dest.join(dir), cm.host_path.clone()));
            }
        }
    }
    out
}

/// Namespaces joined by path, which criu must leave to the restorer: (type, key, path).
fn external_namespaces(spec: &Spec) -> Result<Vec<(LinuxNamespaceType, &'static str, PathBuf)>> {
    let mut out = Vec::new();
    for ns in spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default() {
        let Some(path) = ns.path() else { continue };
        match ns.typ() {
            LinuxNamespaceType::Network => out.push((ns.typ(), NET_KEY, path.clone())),
            LinuxNamespaceType::Pid => out.push((ns.typ(), PID_KEY, path.clone())),
            t => {
                return Err(Error::Usage(format!(
                    "linux.namespaces ({}): criu cannot checkpoint a container that joined an existing {} namespace",
                    namespaces::proc_name(t),
                    namespaces::proc_name(t)
                )))
            }
        }
    }
    Ok(out)
}

fn refuse_terminal(spec: &Spec) -> Result<()> {
    if spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false) {
        return Err(Error::Usage(
            "process.terminal: checkpoint/restore of a container with a terminal is not supported by berth yet".into(),
        ));
    }
    Ok(())
}

/// `--parent-path` names the images of an earlier pre-dump relative to `--image-path`
/// (criu's --prev-images-dir); it must exist there as a directory.
fn check_parent_path(image: &Path, parent: Option<&Path>) -> Result<()> {
    let Some(p) = parent else { return Ok(()) };
    if p.is_absolute() {
        return Err(Error::Usage(format!("--parent-path {}: must be relative to --image-path", p.display())));
    }
    let full = image.join(p);
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            Err(Error::Usage(format!("--parent-path {}: invalid: {} is not a directory", p.display(), full.display())))
        }
        Err(e) => Err(Error::Usage(format!("--parent-path {}: invalid: {}: {e}", p.display(), full.display()))),
    }
}

pub fn checkpoint(store: &Store, id: &str, opts: &CheckpointOpts) -> Result<()> {
    crate::id::validate(id)?;
    manage_cgroups(opts.criu.manage_cgroups_mode.as_deref())?;
    let _lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status != Status::Running {
        return Err(Error::WrongState { id: id.into(), status, msg: "only a running container can be checkpointed" });
    }
    // Before anything about the container itself, as runc does.
    check_parent_path(&opts.criu.image_path, opts.parent_path.as_deref())?;
    let criu = criu::locate(opts.criu.criu.as_deref())?;
    let loaded = spec::load(&rec.bundle)?;
    let spec = loaded.spec;
    refuse_terminal(&spec)?;
    let externals = external_namespaces(&spec)?;
    let cg = rec.cgroup_manager();

    let image = std::path::absolute(&opts.criu.image_path).map_err(|e| Error::io("--image-path", e))?;
    let work = match &opts.criu.work_path {
        Some(w) => std::path::absolute(w).map_err(|e| Error::io("--work-path", e))?,
        None => image.clone(),
    };
    mkdir_private(&image, "--image-path")?;
    mkdir_private(&work, "--work-path")?;

    let binds = rootfs::bind_mounts(&spec, &rec.bundle);
    let cgroup_binds = cgroup_binds(&spec, &*cg);
    let stdio = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{}/fd/{fd}", rec.pid))
                .map(|l| l.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    let descriptor = Descriptor {
        id: id.into(),
        config: serde_json::to_value(&spec).map_err(|e| Error::io("encoding the config", e.into()))?,
        bind_mounts: binds.iter().map(|(d, _)| d.clone()).collect(),
        cgroup_binds: cgroup_binds.iter().map(|(d, _)| d.clone()).collect(),
        stdio,
    };
    let text = serde_json::to_vec_pretty(&descriptor).map_err(|e| Error::io("encoding the descriptor", e.into()))?;
    std::fs::write(image.join(DESCRIPTOR), text).map_err(|e| Error::io(format!("writing {DESCRIPTOR}"), e))?;

    let action = if opts.pre_dump { "pre-dump" } else { "dump" };
    let log_name = format!("{action}.log");
    let o = CriuOpts { image_path: image.clone(), ..opts.criu.clone() };
    let mut args: Vec<OsString> = vec![action.into(), "--tree".into(), rec.pid.to_string().into()];
    args.extend(common_args(&o, &work, &log_name)?);
    args.extend(["--root".into(), rec.rootfs.clone().into_os_string()]);
    for dest in descriptor.bind_mounts.iter().chain(&descriptor.cgroup_binds) {
        args.push("--external".into());
        args.push(format!("mnt[{}]:{}", dest.display(), dest.display()).into());
    }
    for (t, key, _) in &externals {
        let link = std::fs::read_link(format!("/proc/{}/ns/{}", rec.pid, namespaces::proc_name(*t))).map_err(|e| {
            Error::io(format!("container \"{id}\": reading its {} namespace", namespaces::proc_name(*t)), e)
        })?;
        // "net:[4026531992]" → the inode.
        let ino = link.to_string_lossy().rsplit('[').next().unwrap_or("").trim_end_matches(']').to_string();
        args.push("--external".into());
        args.push(format!("{}[{ino}]:{key}", namespaces::proc_name(*t)).into());
    }
    if opts.leave_running && !opts.pre_dump {
        args.push("--leave-running".into());
    }
    if opts.pre_dump || opts.parent_path.is_some() {
        args.push("--track-mem".into());
    }
    if let Some(p) = &opts.parent_path {
        args.extend(["--prev-images-dir".into(), p.clone().into_os_string()]);
    }
    log::debug(&format!("checkpoint {id}: {} {:?}", criu.display(), args));
    criu::run(&criu, id, action, &args, &work.join(&log_name), None)?;
    log::debug(&format!("checkpoint {id}: images in {}", image.display()));
    Ok(())
}

/// The rel path of the container's cgroup per hierarchy, as criu's `--cgroup-root` takes it.
fn cgroup_root_args(cg: &dyn Manager) -> Vec<OsString> {
    let mut out = Vec::new();
    for h in cg.state().hierarchies {
        let rel = h.dir.strip_prefix(&h.mount_point).map(|r| Path::new("/").join(r)).unwrap_or_else(|_| h.dir.clone());
        out.push("--cgroup-root".into());
        if h.subsystems.is_empty() {
            out.push(rel.into_os_string());
        } else {
            let mut s = OsString::from(format!("{}:", h.subsystems.join(",")));
            s.push(rel);
            out.push(s);
        }
    }
    out
}

/// A restored container, as the restoring process sees it.
pub struct Restored {
    pub pid: i32,
    /// A pidfd of the init, which is our child (criu restored it as its sibling).
    pub pidfd: OwnedFd,
}

pub fn restore(store: &Store, opts: RestoreOpts) -> Result<Restored> {
    let id = opts.id.as_str();
    crate::id::validate(id)?;
    manage_cgroups(opts.criu.manage_cgroups_mode.as_deref())?;
    let image = std::path::absolute(&opts.criu.image_path).map_err(|e| Error::io("--image-path", e))?;
    let descriptor_path = image.join(DESCRIPTOR);
    let text = std::fs::read(&descriptor_path).map_err(|e| {
        Error::Usage(format!("--image-path {}: not a berth checkpoint ({DESCRIPTOR}: {e})", image.display()))
    })?;
    let descriptor: Descriptor =
        serde_json::from_slice(&text).map_err(|e| Error::Usage(format!("{}: {e}", descriptor_path.display())))?;
    let work = match &opts.criu.work_path {
        Some(w) => std::path::absolute(w).map_err(|e| Error::io("--work-path", e))?,
        None => image.clone(),
    };
    let criu = criu::locate(opts.criu.criu.as_deref())?;

    let (loaded, cgroup) = crate::bundle::load(id, &opts.bundle, opts.no_pivot, opts.systemd_cgroup)?;
    let (spec, rootfs_path, resources) = (&loaded.spec, loaded.rootfs.clone(), loaded.resources.clone());
    if cgroup.starts_with_init() {
        // criu restores into an existing cgroup (--cgroup-root); a systemd unit only starts
        // with a process in it.
        return Err(Error::Usage("--systemd-cgroup: restore with the systemd cgroup driver is not supported".into()));
    }
    refuse_terminal(spec)?;
    if opts.console.is_some() {
        return Err(Error::Usage("--console-socket: cannot use a console socket if process.terminal is false".into()));
    }
    let externals = external_namespaces(spec)?;
    let binds = rootfs::bind_mounts(spec, &loaded.dir);
    let mut mount_map: Vec<(PathBuf, PathBuf)> = Vec::new();
    for dest in &descriptor.bind_mounts {
        let Some((_, source)) = binds.iter().find(|(d, _)| d == dest) else {
            return Err(Error::Usage(format!(
                "mounts: the checkpoint has a bind mount on {} but the bundle's config.json has none",
                dest.display()
            )));
        };
        mount_map.push((dest.clone(), source.clone()));
    }
    let ns_files: Vec<(String, OwnedFd)> = externals
        .iter()
        .map(|(t, key, path)| {
            namespaces::open_checked(*t, path)
                .map(|fd| (key.to_string(), fd))
                .map_err(Error::namespace(format!("linux.namespaces ({})", namespaces::proc_name(*t))))
        })
        .collect::<Result<_>>()?;

    let dir = store.create_dir(id)?;
    let mut guard = Rollback::new(store, id);
    mkdir_private(&work, "--work-path")?;
    // As in create: the record names every cgroup directory before it exists.
    cgroup.plan()?;
    let mut record = loaded.initial_record(id, &*cgroup)?;
    store.save(&record)?;
    for (dest, host) in cgroup_binds(spec, &*cgroup) {
        if descriptor.cgroup_binds.contains(&dest) {
            mount_map.push((dest, host));
        }
    }
    let cgroup_roots = cgroup_root_args(&*cgroup);
    guard.cgroup = Some(cgroup);
    if let Some(cg) = &guard.cgroup {
        cg.create()?;
        cg.apply(&resources)?;
    }

    let pidfile = dir.join("restore.pid");
    let log_name = "restore.log";
    let o = CriuOpts { image_path: image.clone(), ..opts.criu.clone() };
    let mut args: Vec<OsString> = vec!["restore".into()];
    args.extend(common_args(&o, &work, log_name)?);
    args.extend(["--root".into(), rootfs_path.clone().into_os_string()]);
    args.extend(["--restore-detached".into(), "--restore-sibling".into(), "--pidfile".into(), pidfile.clone().into()]);
    args.extend(cgroup_roots);
    for (dest, source) in &mount_map {
        args.push("--external".into());
        args.push(format!("mnt[{}]:{}", dest.display(), source.display()).into());
    }
    for (key, fd) in &ns_files {
        sys::clear_cloexec(fd.as_raw_fd()).map_err(|e| Error::io("passing a namespace to criu", e))?;
        args.push("--inherit-fd".into());
        args.push(format!("fd[{}]:{key}", fd.as_raw_fd()).into());
    }
    // The init's stdio pipes lead outside the container: criu connects them to ours.
    let mut seen = Vec::new();
    for (fd, what) in descriptor.stdio.iter().enumerate() {
        if what.starts_with("pipe:") && !seen.contains(what) {
            seen.push(what.clone());
            args.push("--inherit-fd".into());
            args.push(format!("fd[{fd}]:{what}").into());
        }
    }
    log::debug(&format!("restore {id}: {} {:?}", criu.display(), args));
    let mounts = criu::RestoreMounts { rootfs: rootfs_path.clone() };
    criu::run(&criu, id, "restore", &args, &work.join(log_name), Some(&mounts))?;
    drop(ns_files);

    let pid: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Init { id: id.into(), msg: format!("criu wrote no pid to {}", pidfile.display()) })?;
    let _ = std::fs::remove_file(&pidfile);
    let pidfd = sys::pidfd_open(pid)
        .map_err(|e| Error::io(format!("container \"{id}\": pidfd_open of the restored init"), e))?;
    // Declared after the rollback guard, so dropped before it: the init dies first.
    let child = GuardedChild::new(pid, pidfd)?;
    record.pid = pid;
    record.init_start_time = sys::process_start_time(pid).unwrap_or(0);
    store.save(&record)?;
    if let Some(p) = &opts.pid_file {
        crate::pid_file::write(p, pid)?;
    }
    log::debug(&format!("restore {id}: init {pid} runs again"));
    let (pid, pidfd) = child.release();
    guard.disarm();
    Ok(Restored { pid, pidfd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_cgroups_mode_is_checked() {
        assert_eq!(manage_cgroups(None).unwrap(), "--manage-cgroups=soft");
        assert_eq!(manage_cgroups(Some("full")).unwrap(), "--manage-cgroups=full");
        let e = manage_cgroups(Some("bogus")).unwrap_err().to_string();
        assert!(e.contains("--manage-cgroups-mode") && e.contains("bogus"), "{e}");
    }
}
