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
//!
//! criu runs as a service worker (criu.rs, rpc.rs). A container with a terminal is dumped
//! with `orphan_pts_master` (its pty's master is outside, with whoever holds the console);
//! at restore criu makes a new master, sends it to berth in the `orphan-pts-master`
//! notification, and berth passes it on to `--console-socket`, as runc does.

pub mod criu;
pub mod rpc;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::cgroups::Manager;
use crate::error::{Error, Result};
use crate::process::spawn::GuardedChild;
use crate::rollback::Rollback;
use crate::state::{Status, Store};
use crate::{hooks, log, namespaces, rootfs, spec, sys};

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
    /// A connected console socket: the restored terminal's new master goes there
    /// (required when process.terminal is true, refused otherwise).
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
    /// The paths those fds had (`/dev/null`, a FIFO's path; empty for pipes and
    /// sockets); absent from checkpoints of older berths.
    #[serde(default)]
    stdio_paths: Vec<String>,
}

const NET_KEY: &str = "berth-netns";
const PID_KEY: &str = "berth-pidns";

fn manage_cgroups(mode: Option<&str>) -> Result<rpc::CgMode> {
    let mode = mode.unwrap_or("soft");
    rpc::CgMode::parse(mode).ok_or_else(|| {
        Error::Usage(format!("--manage-cgroups-mode {mode:?}: must be one of soft, full, strict, ignore"))
    })
}

fn mkdir_private(path: &Path, what: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(format!("{what} {}", path.display()), e))
}

/// The options common to dump and restore (criu's flags of the same names; the
/// directories' fds are filled in by criu::run).
fn common_opts(o: &CriuOpts, log: &str, terminal: bool) -> Result<rpc::Opts> {
    Ok(rpc::Opts {
        log_file: log.into(),
        log_level: 4,
        manage_cgroups: true,
        manage_cgroups_mode: Some(manage_cgroups(o.manage_cgroups_mode.as_deref())?),
        tcp_established: o.tcp_established,
        file_locks: o.file_locks,
        ext_unix_sk: o.ext_unix_sk,
        shell_job: o.shell_job,
        // Every notification comes to us and is answered (criu.rs); none needs a script.
        notify_scripts: true,
        orphan_pts_master: terminal,
        ..rpc::Opts::default()
    })
}

/// A path as criu's RPC takes it: protobuf strings are UTF-8, and a lossy conversion
/// would name another file.
fn rpc_path(p: &Path, what: &str) -> Result<String> {
    p.to_str()
        .map(String::from)
        .ok_or_else(|| Error::Usage(format!("{what} {}: criu's RPC takes UTF-8 paths only", p.display())))
}

fn has_terminal(spec: &Spec) -> bool {
    spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false)
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

/// `--parent-path` names the images of an earlier pre-dump relative to `--image-path`
/// (criu's --prev-images-dir); it must exist there as a directory. The two are joined
/// lexically, as runc joins them: `../pre` beside an image directory not made yet is fine.
fn check_parent_path(image: &Path, parent: Option<&Path>) -> Result<()> {
    let Some(p) = parent else { return Ok(()) };
    if p.is_absolute() {
        return Err(Error::Usage(format!("--parent-path {}: must be relative to --image-path", p.display())));
    }
    let full = lexical_join(image, p);
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            Err(Error::Usage(format!("--parent-path {}: invalid: {} is not a directory", p.display(), full.display())))
        }
        Err(e) => Err(Error::Usage(format!("--parent-path {}: invalid: {}: {e}", p.display(), full.display()))),
    }
}

/// `base` joined with `rel`, each `..` taking away the component before it (never above
/// the root), `.` dropped: no lookup, so the directories need not exist.
fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in base.components().chain(rel.components()) {
        match c {
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

pub fn checkpoint(store: &Store, id: &str, opts: &CheckpointOpts) -> Result<()> {
    crate::id::validate(id)?;
    manage_cgroups(opts.criu.manage_cgroups_mode.as_deref())?;
    let lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    // A paused container too, as runc: containerd pauses a task around its checkpoint.
    if status != Status::Running && status != Status::Paused {
        return Err(Error::WrongState { id: id.into(), status, msg: "only a running container can be checkpointed" });
    }
    // Before anything about the container itself, as runc does.
    check_parent_path(&opts.criu.image_path, opts.parent_path.as_deref())?;
    let criu = criu::locate(opts.criu.criu.as_deref())?;
    let loaded = spec::load(&rec.bundle)?;
    let spec = loaded.spec;
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
    let stdio: Vec<String> = (0..3).map(|fd| stdio_key(rec.pid, fd)).collect();
    let stdio_paths: Vec<String> = (0..3)
        .map(|fd| {
            let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", rec.pid)).unwrap_or_default();
            let text = link.display().to_string();
            if text.starts_with('/') {
                text
            } else {
                String::new()
            }
        })
        .collect();
    let descriptor = Descriptor {
        id: id.into(),
        config: serde_json::to_value(&spec).map_err(|e| Error::io("encoding the config", e.into()))?,
        bind_mounts: binds.iter().map(|(d, _)| d.clone()).collect(),
        cgroup_binds: cgroup_binds.iter().map(|(d, _)| d.clone()).collect(),
        stdio,
        stdio_paths,
    };
    let text = serde_json::to_vec_pretty(&descriptor).map_err(|e| Error::io("encoding the descriptor", e.into()))?;
    std::fs::write(image.join(DESCRIPTOR), text).map_err(|e| Error::io(format!("writing {DESCRIPTOR}"), e))?;

    let (action, typ) = if opts.pre_dump { ("pre-dump", rpc::ReqType::PreDump) } else { ("dump", rpc::ReqType::Dump) };
    let log_name = format!("{action}.log");
    let mut o = common_opts(&opts.criu, &log_name, has_terminal(&spec))?;
    o.pid = Some(rec.pid);
    o.root = Some(rpc_path(&rec.rootfs, "root.path")?);
    for dest in descriptor.bind_mounts.iter().chain(&descriptor.cgroup_binds) {
        let d = rpc_path(dest, "mounts: destination")?;
        o.external.push(format!("mnt[{d}]:{d}"));
    }
    for key in descriptor.stdio.iter().filter(|k| k.starts_with("file[")) {
        o.external.push(key.clone());
    }
    for (t, key, _) in &externals {
        let link = std::fs::read_link(format!("/proc/{}/ns/{}", rec.pid, namespaces::proc_name(*t))).map_err(|e| {
            Error::io(format!("container \"{id}\": reading its {} namespace", namespaces::proc_name(*t)), e)
        })?;
        // "net:[4026531992]" → the inode.
        let ino = link.to_string_lossy().rsplit('[').next().unwrap_or("").trim_end_matches(']').to_string();
        o.external.push(format!("{}[{ino}]:{key}", namespaces::proc_name(*t)));
    }
    if status == Status::Paused {
        // Frozen tasks cannot be seized by ptrace: criu takes them through the freezer (and
        // leaves the cgroup frozen after a leave-running dump, as it found it).
        let (dir, _, _) = cg.freezer(true)?;
        o.freeze_cgroup = Some(rpc_path(&dir, "the container's freezer")?);
    }
    o.leave_running = opts.leave_running && !opts.pre_dump;
    o.track_mem = opts.pre_dump || opts.parent_path.is_some();
    o.parent_img = opts.parent_path.as_deref().map(|p| rpc_path(p, "--parent-path")).transpose()?;
    log::debug(&format!("checkpoint {id}: {} swrk {action} {o:?}", criu.display()));
    let req = rpc::Req::new(typ, o);
    let mut on_notify = |n: &rpc::Notify, _fd: Option<OwnedFd>| -> io::Result<()> {
        // pre-dump, network-lock, post-dump, …: nothing for berth to do but go on.
        log::debug(&format!("checkpoint {id}: criu notifies {:?}", n.script));
        Ok(())
    };
    let dirs = criu::Dirs { images: &image, work: &work };
    criu::run(&criu, id, action, req, &dirs, &work.join(&log_name), None, criu::Stdio3::Capture, &mut on_notify)?;
    log::debug(&format!("checkpoint {id}: images in {}", image.display()));
    if !opts.leave_running && !opts.pre_dump {
        // criu killed the tree: as runc (1.1 to 1.3) does, the container is then destroyed,
        // cgroup, state and poststop hooks included, so that `restore` can take its id again
        // (containerd's shims take "does not exist" from the delete that follows as done).
        drop(lock);
        crate::container::delete(store, id, true)?;
    }
    Ok(())
}

/// The rel path of the container's cgroup per hierarchy, as criu's `--cgroup-root` takes
/// it: (controllers, path), no controllers for cgroup v2's single hierarchy.
fn cgroup_roots(cg: &dyn Manager) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for h in cg.state().hierarchies {
        let rel = h.dir.strip_prefix(&h.mount_point).map(|r| Path::new("/").join(r)).unwrap_or_else(|_| h.dir.clone());
        let ctrl = (!h.subsystems.is_empty()).then(|| h.subsystems.join(","));
        out.push((ctrl, rel.display().to_string()));
    }
    out
}

/// What the init's stdio fd `fd` is, as criu names it: `pipe:[N]` (criu takes a pipe to the
/// outside as external by itself), `socket:[N]`, or, for anything opened by path (the FIFOs
/// containerd gives a shim, /dev/null, a log file), `file[<mnt_id>:<inode>]` in hex: such a
/// file lies outside the container's mounts, where criu cannot dump it ("Can't lookup
/// mount"), so it is dumped as external under that key and supplied again at restore.
/// A pty slave (`/dev/pts/N`, a terminal container's stdio) is left to criu, which dumps it
/// as a tty with its master orphaned (`orphan_pts_master`); as an external file its restore
/// trips criu's tty code (criu 4.2: "BUG at criu/tty.c:519").
fn stdio_key(pid: i32, fd: i32) -> String {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).map(|l| l.display().to_string()).unwrap_or_default();
    if !link.starts_with('/') || link.starts_with("/dev/pts/") {
        return link;
    }
    let mnt_id = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("mnt_id:")).and_then(|v| v.trim().parse::<u64>().ok()));
    let ino = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    match (mnt_id, ino) {
        (Some(m), Ok(i)) => format!("file[{m:x}:{i:x}]"),
        _ => link,
    }
}

/// /dev/null for criu to reopen (inherited: no CLOEXEC), checked to be the null device.
fn open_dev_null() -> Result<OwnedFd> {
    use std::os::unix::fs::FileTypeExt;
    let f =
        std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
    let m = f.metadata().map_err(|e| Error::io("/dev/null", e))?;
    if !m.file_type().is_char_device() || std::os::unix::fs::MetadataExt::rdev(&m) != nix::sys::stat::makedev(1, 3) {
        return Err(Error::io("/dev/null", io::Error::other("not the null device (1:3)")));
    }
    let fd = OwnedFd::from(f);
    sys::clear_cloexec(fd.as_raw_fd()).map_err(|e| Error::io("passing /dev/null to criu", e))?;
    Ok(fd)
}

/// The prestart and createRuntime hooks of a container being restored, run at criu's
/// `setup-namespaces` notification (the restored tree's namespaces exist, nothing of it
/// runs yet) with the state of a container being created and the restored init's pid, as
/// runc runs them; a failing hook fails the restore.
fn restore_hooks(hooks: Option<&oci_spec::runtime::Hooks>, state: &str, bundle: &Path) -> io::Result<()> {
    for kind in [hooks::Kind::Prestart, hooks::Kind::CreateRuntime] {
        hooks::run_all(hooks, kind, state.as_bytes(), Some(bundle), None).map_err(io::Error::other)?;
    }
    Ok(())
}

/// berth's own cgroup directory (pure cgroup v2, the systemd driver's only kind).
fn own_v2_cgroup() -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("reading /proc/self/cgroup", e))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| Error::io("/proc/self/cgroup", std::io::Error::other("no cgroup v2 entry")))?;
    Ok(Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')))
}

/// Moves berth back into `dir` (where it was before it started the container's unit).
fn leave_to(dir: &Path) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(|e| Error::io(format!("moving berth back to {}", procs.display()), e))
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
    let terminal = has_terminal(spec);
    match (terminal, &opts.console) {
        (false, Some(_)) => {
            return Err(Error::Usage(
                "--console-socket: cannot use a console socket if process.terminal is false".into(),
            ))
        }
        (true, None) => {
            return Err(Error::Usage(
                "process.terminal: --console-socket is required: the restored terminal's master is sent there".into(),
            ))
        }
        _ => {}
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

    store.create_dir(id)?;
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
    let cgroup_roots = cgroup_roots(&*cgroup);
    guard.cgroup = Some(cgroup);
    if let Some(cg) = &guard.cgroup {
        cg.create()?;
        cg.apply(&resources)?;
    }

    let log_name = "restore.log";
    let mut o = common_opts(&opts.criu, log_name, terminal)?;
    o.root = Some(rpc_path(&rootfs_path, "root.path")?);
    // The restored init becomes our child (the pidfd and the foreground wait need that);
    // a swrk restore is always detached from criu.
    o.rst_sibling = true;
    o.cg_root = cgroup_roots;
    for (dest, source) in &mount_map {
        o.external.push(format!(
            "mnt[{}]:{}",
            rpc_path(dest, "mounts: destination")?,
            rpc_path(source, "mounts: source")?
        ));
    }
    for (key, fd) in &ns_files {
        sys::clear_cloexec(fd.as_raw_fd()).map_err(|e| Error::io("passing a namespace to criu", e))?;
        o.inherit_fd.push((key.clone(), fd.as_raw_fd()));
    }
    // The init's stdio pipes and files lead outside the container: criu connects them to
    // its own stdio, which is ours. A file criu reopens through /proc/self/fd/<n> with the
    // flags it was dumped with, so what was /dev/null is /dev/null again: reopening the
    // FIFO a shim gives restore in its place (`ctr c restore --live` of a task that ran
    // with --null-io) for reading blocks until some writer opens it, and the restore with
    // it.
    let mut seen = Vec::new();
    let mut null = None;
    for (fd, what) in descriptor.stdio.iter().enumerate() {
        if !(what.starts_with("pipe:") || what.starts_with("file[")) || seen.contains(what) {
            continue;
        }
        seen.push(what.clone());
        let was_null = descriptor.stdio_paths.get(fd).is_some_and(|p| p == "/dev/null");
        if was_null && what.starts_with("file[") {
            let n = match &null {
                Some(n) => n,
                None => null.insert(open_dev_null()?),
            };
            o.inherit_fd.push((what.clone(), n.as_raw_fd()));
        } else {
            o.inherit_fd.push((what.clone(), fd as i32));
        }
    }
    log::debug(&format!("restore {id}: {} swrk restore {o:?}", criu.display()));
    let req = rpc::Req::new(rpc::ReqType::Restore, o);
    let console = opts.console.as_ref().map(|c| c.as_fd());
    let mut pts_sent = false;
    let mut on_notify = |n: &rpc::Notify, fd: Option<OwnedFd>| -> io::Result<()> {
        log::debug(&format!("restore {id}: criu notifies {:?} (pid {:?})", n.script, n.pid));
        match n.script.as_str() {
            "orphan-pts-master" => {
                pts_sent = true;
                send_pts_master(console, fd)
            }
            "setup-namespaces" => {
                let pid = n.pid.filter(|p| *p > 0).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "criu named no restored init for the hooks")
                })?;
                let state = hooks::state(id, Status::Creating, pid, &loaded.dir, &record.annotations);
                restore_hooks(spec.hooks().as_ref(), &state, &loaded.dir)
            }
            _ => Ok(()),
        }
    };
    let mounts = criu::RestoreMounts { rootfs: rootfs_path.clone() };
    // A systemd unit starts only with a process in it, and criu restores into an existing
    // cgroup (cg_root): as runc starts the unit with criu in it, berth starts it with
    // itself, so criu, its child, runs there; berth leaves as soon as criu is done.
    let mut unit_entered = None;
    if let Some(cg) = guard.cgroup.as_ref().filter(|cg| cg.starts_with_init()) {
        let own = own_v2_cgroup()?;
        cg.add_pid(std::process::id() as i32)?;
        unit_entered = Some(own);
    }
    let restored = criu::run(
        &criu,
        id,
        "restore",
        req,
        &criu::Dirs { images: &image, work: &work },
        &work.join(log_name),
        Some(&mounts),
        criu::Stdio3::Inherit,
        &mut on_notify,
    );
    if let Some(own) = &unit_entered {
        // Out of the unit before anything else: a rollback stops it, with all in it.
        leave_to(own)?;
    }
    let resp = restored?;
    drop(ns_files);
    drop(null);
    if terminal && !pts_sent {
        log::debug(&format!("restore {id}: criu restored no orphan pty: nothing sent to --console-socket"));
    }

    let pid: i32 = resp
        .restored_pid
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Init { id: id.into(), msg: "criu's restore answer has no pid".into() })?;
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

/// `orphan-pts-master`: the restored terminal's new master, passed on to the console
/// socket the way create sends one (runc names it after the notification too).
fn send_pts_master(console: Option<std::os::fd::BorrowedFd<'_>>, fd: Option<OwnedFd>) -> io::Result<()> {
    let master = fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "criu sent no pty master"))?;
    let socket = console.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no --console-socket"))?;
    crate::console::send_fd(socket, master.as_fd(), "orphan-pts-master")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_path_is_joined_lexically() {
        assert_eq!(lexical_join(Path::new("/r/img3"), Path::new("../pre")), Path::new("/r/pre"));
        assert_eq!(lexical_join(Path::new("/r/img"), Path::new("./a/../b")), Path::new("/r/img/b"));
        assert_eq!(lexical_join(Path::new("/"), Path::new("../../x")), Path::new("/x"));
        assert_eq!(lexical_join(Path::new("img"), Path::new("../../x")), Path::new("../x"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pre")).unwrap();
        // The image directory does not exist yet: a dump makes it.
        check_parent_path(&dir.path().join("img3"), Some(Path::new("../pre"))).unwrap();
        assert!(check_parent_path(&dir.path().join("img3"), Some(Path::new("../none"))).is_err());
    }

    #[test]
    fn manage_cgroups_mode_is_checked() {
        assert_eq!(manage_cgroups(None).unwrap(), rpc::CgMode::Soft);
        assert_eq!(manage_cgroups(Some("full")).unwrap(), rpc::CgMode::Full);
        let e = manage_cgroups(Some("bogus")).unwrap_err().to_string();
        assert!(e.contains("--manage-cgroups-mode") && e.contains("bogus"), "{e}");
    }
}
