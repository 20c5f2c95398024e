//! The lifecycle, as runtime-spec's operations: create, start, kill, delete, state, list,
//! and run (create + start + wait). A failed create leaves nothing behind: every resource
//! it made is held by a guard that undoes it unless the create completes.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::json;

use crate::cgroups::{self, Manager};
use crate::error::{Error, Result};
use crate::hooks::{self, Kind};
use crate::process::channel::{self, Msg};
use crate::state::{Record, Status, Store, START_SOCKET};
use crate::sys::{self, Forked};
use crate::{failpoint, log, namespaces, rootfs, spec};

pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// A connected socket that receives the terminal's master (from --console-socket, or
    /// `run`'s own socketpair).
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: linux.cgroupsPath is "slice:prefix:name".
    pub systemd_cgroup: bool,
}

/// A created container, as the creating process sees it.
pub struct Created {
    pub pid: i32,
    /// A pidfd of the init, which is our child.
    pub pidfd: OwnedFd,
}

/// Undoes a partial create when dropped, unless disarmed.
pub(crate) struct Guard<'a> {
    pub(crate) store: &'a Store,
    pub(crate) id: &'a str,
    pub(crate) dir: bool,
    pub(crate) cgroup: Option<Box<dyn Manager>>,
    pub(crate) child: Option<OwnedFd>,
    /// Without a mount namespace: the rootfs and the id of the mount on top of it before
    /// the init started, to detach what the init mounted there.
    pub(crate) shared_rootfs: Option<(PathBuf, u64)>,
}

impl Guard<'_> {
    pub(crate) fn disarm(mut self) {
        self.dir = false;
        self.cgroup = None;
        self.child = None;
        self.shared_rootfs = None;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(pidfd) = self.child.take() {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::pidfd_wait_exit(pidfd.as_fd(), 5000);
            reap(&pidfd);
        }
        if let Some((rootfs, before)) = self.shared_rootfs.take() {
            if let Err(e) = rootfs::shared_ns::detach(&rootfs, Some(before), None) {
                log::warn(&format!("cleaning up after a failed create: {e}"));
            }
        }
        if let Some(cg) = self.cgroup.take() {
            kill_cgroup(&*cg, libc::SIGKILL);
            if let Err(e) = cg.destroy() {
                log::warn(&format!("cleaning up after a failed create: {e}"));
            }
        }
        if self.dir {
            let _ = self.store.remove(self.id);
        }
    }
}

/// Reaps our child behind a pidfd, returning its wait status as an exit code.
fn reap(pidfd: &OwnedFd) -> Option<i32> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Signals every process in the cgroup. The cgroup is frozen meanwhile (as runc does), so
/// a process that forks cannot escape between reading the pid list and signalling it.
pub(crate) fn kill_cgroup(cg: &dyn Manager, sig: i32) {
    let was_frozen = cg.is_frozen().unwrap_or(false);
    let froze = !was_frozen && cg.set_frozen(true).is_ok();
    if let Ok(pids) = cg.pids() {
        for pid in pids {
            let _ = crate::sys::kill_pid(pid, sig);
        }
    }
    // A paused container that is SIGKILLed is thawed too: on cgroup v1 frozen tasks only
    // act on the signal once they run again.
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = cg.set_frozen(false);
    }
}

/// The state JSON handed to hooks.
pub fn hook_state(id: &str, status: Status, pid: i32, bundle: &Path, annotations: &HashMap<String, String>) -> String {
    json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": id,
        "status": status.to_string(),
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
    .to_string()
}

pub(crate) fn owner() -> String {
    let uid = nix::unistd::getuid().as_raw();
    if uid == 0 {
        "root".into()
    } else {
        uid.to_string()
    }
}

/// A bundle checked for everything that can be checked before the system is touched.
pub(crate) struct Bundle {
    pub(crate) dir: PathBuf,
    pub(crate) spec: Spec,
    pub(crate) rootfs: PathBuf,
    pub(crate) resources: oci_spec::runtime::LinuxResources,
}

/// Loads and validates the bundle of a new container `id` (create and restore), and
/// resolves where its cgroup goes.
pub(crate) fn load_bundle(id: &str, bundle: &Path, no_pivot: bool, systemd_cgroup: bool) -> Result<(Bundle, Box<dyn Manager>)> {
    crate::id::validate(id)?;
    let dir = std::fs::canonicalize(bundle).map_err(|e| Error::Usage(format!("bundle {}: {e}", bundle.display())))?;
    let loaded = spec::load(&dir)?;
    for w in &loaded.warnings {
        log::warn(w);
    }
    let spec: Spec = loaded.spec;
    let validated = spec::validate(&spec, &dir)?;
    rootfs::validate(&spec, &dir)?;
    if no_pivot {
        rootfs::validate_no_pivot(&spec)?;
    }
    let linux = spec.linux().as_ref().ok_or_else(|| Error::Usage("linux: missing".into()))?;
    let cgroups_path = linux.cgroups_path().as_ref().map(|p| p.to_string_lossy().into_owned());
    let cgroup = cgroups::open(id, cgroups_path.as_deref(), systemd_cgroup)?;
    let resources = spec::cgroup_resources(&spec);
    cgroup.validate(&resources)?;
    Ok((Bundle { dir, spec, rootfs: validated.rootfs, resources }, cgroup))
}

/// The record of a container whose cgroup exists but which has no init yet.
pub(crate) fn initial_record(id: &str, b: &Bundle, cgroup: &dyn Manager) -> Result<Record> {
    let (bundle, rootfs, spec) = (&b.dir, &b.rootfs, &b.spec);
    Ok(Record {
        id: id.to_string(),
        pid: 0,
        init_start_time: 0,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        created: crate::state::now_rfc3339(),
        owner: owner(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: cgroup.state(),
        hooks: spec.hooks().clone(),
        resources: Some({
            let mut r = b.resources.clone();
            r.set_devices(None);
            r
        }),
        rootfs_mount: None,
        process: spec.process().clone(),
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
    })
}

pub fn create(store: &Store, opts: CreateOpts, foreground_tty: bool) -> Result<Created> {
    let (loaded, cgroup) = load_bundle(&opts.id, &opts.bundle, opts.no_pivot, opts.systemd_cgroup)?;
    let (bundle, spec, rootfs_path, resources) =
        (loaded.dir.clone(), loaded.spec.clone(), loaded.rootfs.clone(), loaded.resources.clone());
    let linux = spec.linux().as_ref().ok_or_else(|| Error::Usage("linux: missing".into()))?;
    let process = spec.process().as_ref().ok_or_else(|| Error::Usage("process: missing".into()))?;
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, opts.console.is_some()) {
        (true, false) => {
            return Err(Error::Usage(
                "process.terminal: cannot allocate a tty if berth will detach without setting --console-socket".into(),
            ))
        }
        (false, true) if !foreground_tty => {
            return Err(Error::Usage("--console-socket: cannot use a console socket if process.terminal is false".into()))
        }
        _ => {}
    }
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::Filter::build).transpose()?;
    let plan = namespaces::plan(&spec);
    let annotations: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();

    log::debug(&format!("create {}: bundle {}, rootfs {}", opts.id, bundle.display(), rootfs_path.display()));
    let dir = store.create_dir(&opts.id)?;
    let mut guard = Guard { store, id: &opts.id, dir: true, cgroup: None, child: None, shared_rootfs: None };
    failpoint::hit("create:state-dir-made");
    let listener = crate::process::start::listen(&dir, START_SOCKET).map_err(|e| Error::io("creating the start socket", e))?;

    // Recorded before any cgroup directory exists, with no init yet, naming every
    // directory create is about to make: if this process is killed from here on (the guard
    // would not run), `delete --force` finds and removes them all.
    cgroup.plan()?;
    let mut record = initial_record(&opts.id, &loaded, &*cgroup)?;
    store.save(&record)?;
    failpoint::hit("create:state-planned");
    let cgroup_mounts = cgroup.mounts();
    guard.cgroup = Some(cgroup);
    let cgroup = guard.cgroup.as_ref().ok_or_else(|| Error::Usage("cgroup".into()))?;
    cgroup.create()?;
    failpoint::hit("create:cgroup-dirs-made");
    cgroup.apply(&resources)?;
    failpoint::hit("create:cgroup-applied");
    if let Some(root) = delegated_root(&spec, &plan) {
        cgroup.delegate(root.0, root.1)?;
    }

    let idmapped = rootfs::idmapped::prepare(&spec, &bundle)?;
    if plan.shares_mount_ns() {
        let before = rootfs::shared_ns::top_mount_id(&rootfs_path)
            .map_err(|e| Error::io(format!("root.path {}: reading its mount", rootfs_path.display()), e))?;
        guard.shared_rootfs = Some((rootfs_path.clone(), before));
    }
    let (parent_ch, child_ch) = channel::pair().map_err(|e| Error::io("socketpair", e))?;
    // When staged the first child joins the pid namespace itself.
    let saved_pidns = match &plan.pid_path {
        Some(p) => Some(namespaces::enter_pid_for_children(p).map_err(|m| Error::Usage(format!("linux.namespaces (pid): {m}")))?),
        None => None,
    };
    let v2_dir = cgroup.open_v2_dir();
    // execCPUAffinity.initial: the init starts on those CPUs, before it is in the cgroup.
    let saved_affinity = initial_affinity(process)?;
    let forked = sys::clone3_fork(plan.clone_flags.bits() as u64, v2_dir.as_ref().map(|f| f.as_fd()));
    if let Some(set) = &saved_affinity {
        if matches!(forked, Ok(Forked::Parent { .. }) | Err(_)) {
            let _ = crate::process_attrs::set_affinity(set);
        }
    }
    if let (Some(prev), Ok(Forked::Parent { .. }) | Err(_)) = (saved_pidns, &forked) {
        // The child exists (or not); either way this process must leave the container's pid
        // namespace for its own hooks' sake. The child cannot (the host's pid namespace is
        // not below its own) and need not.
        if let Err(m) = namespaces::restore_pid_for_children(prev) {
            log::warn(&m);
        }
    }
    let (mut pid, mut pidfd) = match forked.map_err(|e| Error::io("clone3", e))? {
        Forked::Child => {
            drop(parent_ch);
            crate::init::run(crate::init::InitArgs {
                spec: &spec,
                id: &opts.id,
                rootfs: &rootfs_path,
                bundle: &bundle,
                channel: child_ch,
                plan: &plan,
                console: opts.console,
                start_listener: listener,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                cgroup_mounts,
                seccomp: seccomp.as_ref(),
                idmapped,
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_ch);
    drop(idmapped);
    drop(listener);
    drop(opts.console);
    guard.child = Some(pidfd.try_clone().map_err(|e| Error::io("dup pidfd", e))?);
    // The debug lines at the steps of the handshake carry runc's words for the same steps
    // (nsexec, init(), the completion pipe): scripts and runc's own tests look for them.
    log::debug(&format!("nsexec container setup: init {pid} cloned into the container's namespaces"));
    failpoint::hit("create:cloned");

    if v2_dir.is_none() {
        cgroup.add_pid(pid)?;
    }
    failpoint::hit("create:init-in-cgroup");
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| Error::Usage(format!("process.oomScoreAdj {adj}: {e}")))?;
    }
    let init_err = |msg: String| Error::Init { id: opts.id.clone(), msg };
    let net_devices = linux.net_devices().as_ref().filter(|d| !d.is_empty());
    if let (Some(devices), false) = (net_devices, plan.staged) {
        crate::netdev::move_all(devices, pid).map_err(Error::Usage)?;
    }
    let mut state = hook_state(&opts.id, Status::Creating, pid, &bundle, &annotations);
    parent_ch.send(&Msg::Go { state: state.clone() }).map_err(|e| init_err(send_failed(&parent_ch, e)))?;
    failpoint::hit("create:go-sent");
    log::debug(&format!("child process in init(): init {pid} sets up the container"));
    loop {
        let (msg, fd) = match parent_ch.recv_with_fd().map_err(|e| init_err(format!("sync with init: {e}")))? {
            Some((msg, fd)) => (Some(msg), fd),
            None => (None, None),
        };
        match msg {
            Some(Msg::SeccompListener) => {
                let listener = fd.ok_or_else(|| init_err("the seccomp listener message came without its fd".into()))?;
                send_seccomp_listener(linux.seccomp().as_ref(), listener.as_fd(), pid, &state)?;
            }
            Some(Msg::MapsPending) if plan.new_user => {
                let none = Vec::new();
                let uid = linux.uid_mappings().as_ref().unwrap_or(&none);
                let gid = linux.gid_mappings().as_ref().unwrap_or(&none);
                crate::idmap::write(pid, uid, gid).map_err(init_err)?;
                failpoint::hit("create:maps-written");
                parent_ch.send(&Msg::MapsDone).map_err(|e| init_err(send_failed(&parent_ch, e)))?;
            }
            Some(Msg::Child { pid: init_pid }) if plan.staged => {
                // The first child has done its part and exits; the init is our child too
                // (CLONE_PARENT), so its pid cannot be reused before we reap it.
                let _ = sys::pidfd_wait_exit(pidfd.as_fd(), 5000);
                reap(&pidfd);
                pid = init_pid;
                pidfd = sys::pidfd_open(pid).map_err(|e| Error::io("pidfd_open of the init", e))?;
                guard.child = Some(pidfd.try_clone().map_err(|e| Error::io("dup pidfd", e))?);
                if let Some(devices) = net_devices {
                    crate::netdev::move_all(devices, pid).map_err(Error::Usage)?;
                }
                state = hook_state(&opts.id, Status::Creating, pid, &bundle, &annotations);
                parent_ch.send(&Msg::Go { state: state.clone() }).map_err(|e| init_err(send_failed(&parent_ch, e)))?;
            }
            Some(Msg::MountSourcePending { index }) if plan.in_user_ns() => {
                let sent = match rootfs::source::open_for_init(pidfd.as_fd(), &spec, &bundle, index) {
                    Ok(fd) => parent_ch.send_with_fd(&Msg::MountSource, fd.as_fd()),
                    Err(m) => parent_ch.send(&Msg::Error(m)),
                };
                sent.map_err(|e| init_err(format!("sync with init: {e}")))?;
            }
            Some(Msg::HooksPending) => {
                // In the bundle, where runc runs them (it chdirs there to create).
                hooks::run_all(spec.hooks().as_ref(), Kind::Prestart, state.as_bytes(), Some(&bundle))?;
                hooks::run_all(spec.hooks().as_ref(), Kind::CreateRuntime, state.as_bytes(), Some(&bundle))?;
                failpoint::hit("create:hooks-run");
                parent_ch.send(&Msg::HooksDone).map_err(|e| init_err(send_failed(&parent_ch, e)))?;
            }
            Some(Msg::Ready) => {
                log::debug(&format!("init: closing the pipe to signal completion: init {pid} is set up"));
                failpoint::hit("create:ready-received");
                break;
            }
            Some(Msg::Error(m)) => return Err(init_err(m)),
            Some(other) => return Err(init_err(format!("unexpected message from init: {other:?}"))),
            None => return Err(init_err("the container's init exited during set-up".into())),
        }
    }

    record.pid = pid;
    record.init_start_time = sys::process_start_time(pid).unwrap_or(0);
    if let Some((rootfs, before)) = &guard.shared_rootfs {
        let top = rootfs::shared_ns::top_mount_id(rootfs)
            .map_err(|e| Error::io(format!("root.path {}: reading its mount", rootfs.display()), e))?;
        record.rootfs_mount = (top != *before).then_some(top);
    }
    store.save(&record)?;
    failpoint::hit("create:state-saved");
    log::debug(&format!("create {}: init {pid} is waiting for start", opts.id));
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    failpoint::hit("create:pid-file-written");
    guard.disarm();
    Ok(Created { pid, pidfd })
}

/// Why a message could not reach the init: when it has gone (EPIPE), its own report of
/// the failure if it sent one before exiting, else the error.
fn send_failed(ch: &channel::Channel, e: std::io::Error) -> String {
    if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) {
        // The peer closed its end: this reads what it left, then EOF; it cannot block.
        if let Ok(Some(Msg::Error(m))) = ch.recv() {
            return m;
        }
    }
    format!("sync with init: {e}")
}

/// Hands the init's notify listener to the agent at `linux.seccomp.listenerPath`, with the
/// container process state (the state as of now: creating).
pub(crate) fn send_seccomp_listener(
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    listener: std::os::fd::BorrowedFd<'_>,
    pid: i32,
    state: &str,
) -> Result<()> {
    let path = seccomp.and_then(|s| s.listener_path().as_ref()).ok_or_else(|| {
        Error::Usage("linux.seccomp.listenerPath: must be set for SCMP_ACT_NOTIFY".into())
    })?;
    let state: serde_json::Value =
        serde_json::from_str(state).map_err(|e| Error::io("encoding the container process state", e.into()))?;
    let metadata = seccomp.and_then(|s| s.listener_metadata().as_deref());
    let process_state = crate::seccomp::process_state(pid, metadata, state);
    log::debug(&format!("sending the seccomp listener to {}", path.display()));
    crate::seccomp::send_to_listener(path, listener, &process_state)?;
    Ok(())
}

/// The host uid/gid of the container's root when its cgroup is to be handed to it: a new
/// user namespace and a new cgroup namespace, and a `cgroup` mount that is not read-only
/// (runc's rule; it only takes effect on cgroup v2).
fn delegated_root(spec: &Spec, plan: &namespaces::Plan) -> Option<(u32, u32)> {
    if !plan.new_user || !plan.new_cgroupns {
        return None;
    }
    let rw_cgroup_mount = spec.mounts().iter().flatten().any(|m| {
        m.typ().as_deref() == Some("cgroup")
            && !m.options().as_deref().unwrap_or(&[]).iter().any(|o| o == "ro")
    });
    if !rw_cgroup_mount {
        return None;
    }
    let linux = spec.linux().as_ref()?;
    let host_of_root = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.as_deref()?.iter().find(|m| m.container_id() == 0).map(|m| m.host_id())
    };
    Some((host_of_root(linux.uid_mappings())?, host_of_root(linux.gid_mappings())?))
}

/// Pins this process to `execCPUAffinity.initial` (so the init is cloned onto those CPUs)
/// and returns the affinity to restore afterwards.
fn initial_affinity(process: &oci_spec::runtime::Process) -> Result<Option<nix::sched::CpuSet>> {
    let Some(list) = process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().clone()) else { return Ok(None) };
    let field = "process.execCPUAffinity.initial";
    let set = crate::process_attrs::cpu_set(&list).map_err(|m| Error::Usage(format!("{field}: {m}")))?;
    let saved = crate::process_attrs::current_affinity().map_err(|e| Error::io(field, e))?;
    crate::process_attrs::set_affinity(&set).map_err(|e| Error::io(field, e))?;
    Ok(Some(saved))
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("--pid-file {}", path.display()), e))
}

fn load_with_status(store: &Store, id: &str) -> Result<(Record, Status)> {
    let rec = store.load(id)?;
    let status = store.status(&rec);
    Ok((rec, status))
}

pub fn start(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    failpoint::hit("start:locked");
    let (rec, status) = load_with_status(store, id)?;
    if status != Status::Created {
        return Err(Error::WrongState { id: id.into(), status, msg: "only a created container can be started" });
    }
    let state = hook_state(id, Status::Created, rec.pid, &rec.bundle, &rec.annotations);
    let dir = store.dir(id);
    let reply = crate::process::start::start(&dir, START_SOCKET, state.as_bytes());
    // Whatever happened, the container is no longer "created".
    let _ = std::fs::remove_file(dir.join(START_SOCKET));
    let reply = reply.map_err(|e| Error::Init { id: id.into(), msg: format!("starting: {e}") })?;
    if !reply.is_empty() {
        return Err(Error::Init { id: id.into(), msg: reply });
    }
    log::debug(&format!("start {id}: init {} runs the process", rec.pid));
    failpoint::hit("start:started");
    let state = hook_state(id, Status::Running, rec.pid, &rec.bundle, &rec.annotations);
    // runtime.md: a failing poststart hook is a warning, the others still run and start
    // succeeds (runc instead kills the container and fails `start`).
    for e in hooks::run_each(rec.hooks.as_ref(), Kind::Poststart, state.as_bytes()) {
        log::warn(&e.to_string());
    }
    failpoint::hit("start:poststart-run");
    Ok(())
}

pub(crate) fn manager_of(rec: &Record) -> Result<Box<dyn Manager>> {
    Ok(rec.cgroup_manager())
}

/// `pause`: freezes every process of a running (or, as runc allows, created) container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let (rec, status) = load_with_status(store, id)?;
    if !matches!(status, Status::Running | Status::Created) {
        return Err(Error::WrongState { id: id.into(), status, msg: "container not running" });
    }
    trusted_manager(&rec, true)?.set_frozen(true)?;
    Ok(())
}

/// `resume`: thaws a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let (rec, status) = load_with_status(store, id)?;
    if status != Status::Paused {
        return Err(Error::WrongState { id: id.into(), status, msg: "container not paused" });
    }
    trusted_manager(&rec, true)?.set_frozen(false)?;
    Ok(())
}

/// `kill`: `sig` 0 only checks that the init is there. With `all`, a stopped container is
/// not an error (runc 1.1 and 1.3 alike: containerd kills with --all after the exit):
/// whatever is left in its cgroup (a shared pid namespace) still gets the signal.
pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Result<()> {
    let (rec, status) = load_with_status(store, id)?;
    let not_running = || -> Result<()> {
        if !all {
            return Err(Error::WrongState { id: id.into(), status: Status::Stopped, msg: "container not running" });
        }
        if sig != 0 {
            if let Ok(cg) = manager_of(&rec) {
                kill_cgroup(&*cg, sig);
            }
        }
        Ok(())
    };
    match status {
        Status::Stopped => return not_running(),
        Status::Creating => return Err(Error::WrongState { id: id.into(), status, msg: "it has no process to signal yet" }),
        _ => {}
    }
    // The pidfd pins the process: check it is still our init before signalling anything.
    let pidfd = match sys::pidfd_open(rec.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return not_running(),
        Err(e) => return Err(Error::io(format!("container \"{id}\": pidfd_open"), e)),
    };
    if !sys::process_alive(rec.pid, rec.init_start_time) {
        return not_running();
    }
    log::debug(&format!("kill {id}: signal {sig}{}", if all { " to every process" } else { "" }));
    // Signal 0 is a probe of the init: nothing to freeze and signal in the cgroup.
    if all && sig != 0 {
        // The init is pinned and alive: the recorded cgroup must hold it.
        kill_cgroup(&*trusted_manager(&rec, true)?, sig);
        // The init was in the cgroup, so it has the signal already and may be gone.
        return match sys::pidfd_send_signal(pidfd.as_fd(), sig) {
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(Error::io(format!("container \"{id}\": kill"), e)),
            _ => Ok(()),
        };
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig).map_err(|e| Error::io(format!("container \"{id}\": kill"), e))?;
    if status == Status::Paused && sig == libc::SIGKILL {
        // Frozen tasks (cgroup v1) act on SIGKILL only once thawed.
        trusted_manager(&rec, true)?.set_frozen(false)?;
    }
    Ok(())
}

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    crate::id::validate(id)?;
    let _lock = match store.lock(id) {
        Ok(l) => l,
        Err(crate::state::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    failpoint::hit("delete:locked");
    let rec = match store.load(id) {
        Ok(r) => r,
        // A directory without a state file is what an interrupted create leaves: remove it.
        Err(crate::state::StateError::NotFound(_)) if force => return store.remove(id).map_err(Into::into),
        // A state file that cannot be read (truncated, garbage, a FIFO): work from what the
        // system shows.
        Err(e @ (crate::state::StateError::Corrupt { .. } | crate::state::StateError::Io { .. })) if force => {
            return delete_unrecorded(store, id, &e)
        }
        Err(e) => return Err(e.into()),
    };
    let status = store.status(&rec);
    match status {
        Status::Running | Status::Paused if !force => {
            return Err(Error::WrongState { id: id.into(), status, msg: "cannot delete a running container without --force" })
        }
        _ => {}
    }
    log::debug(&format!("delete {id}: status {status}, init {}", rec.pid));
    // Checked while the init is pinned (if it lives): only then is the cgroup proven.
    let pinned = (status != Status::Stopped && rec.pid > 0)
        .then(|| sys::pidfd_open(rec.pid).ok())
        .flatten()
        .filter(|_| sys::process_alive(rec.pid, rec.init_start_time));
    let cg = match trusted_manager(&rec, pinned.is_some()) {
        Ok(cg) => Some(cg),
        Err(e) if force => {
            // The record's cgroup is not the container's. The init (checked by its start
            // time) still dies, and the cgroup berth would have made for this id is used
            // if it holds that init; nothing else is touched.
            log::warn(&format!("{e}; ignoring the recorded cgroup"));
            default_manager(id).filter(|m| pinned.is_some() && holds(&m.state(), rec.pid) && sane(&m.state()))
        }
        Err(e) => return Err(e),
    };
    if let (Status::Paused, Some(cg)) = (status, &cg) {
        // SIGKILL everything and thaw, so the init can die below.
        kill_cgroup(&**cg, libc::SIGKILL);
    }
    if let Some(pidfd) = &pinned {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::pidfd_wait_exit(pidfd.as_fd(), 10_000);
    }
    failpoint::hit("delete:init-killed");
    if let Some(cg) = &cg {
        // With a shared pid namespace the init's death does not take the others with it.
        kill_cgroup(&**cg, libc::SIGKILL);
        failpoint::hit("delete:before-cgroup-destroy");
        cg.destroy()?;
        failpoint::hit("delete:after-cgroup-destroy");
    }
    if let Some(mount) = rec.rootfs_mount {
        rootfs::shared_ns::detach(&rec.rootfs, None, Some(mount))?;
    }
    store.remove(id)?;
    failpoint::hit("delete:state-removed");
    let state = hook_state(id, Status::Stopped, 0, &rec.bundle, &rec.annotations);
    // runtime.md: a failing poststop hook is a warning, the others still run and delete
    // succeeds (runc 1.3 runs none after the failing one and exits 1).
    for e in hooks::run_each(rec.hooks.as_ref(), Kind::Poststop, state.as_bytes()) {
        log::warn(&e.to_string());
    }
    Ok(())
}

/// `delete --force` of a container whose state file cannot be read: its init and hooks are
/// unknown. What is known is the cgroup berth makes for an id without `linux.cgroupsPath`;
/// its processes are the container's, so they are killed and it is removed. A cgroup
/// elsewhere cannot be found (nor trusted) without the record. Then the state goes.
fn delete_unrecorded(store: &Store, id: &str, why: &crate::state::StateError) -> Result<()> {
    log::warn(&format!("{why}; deleting what the system shows"));
    if let Some(cg) = default_manager(id).filter(|m| !m.state().created.is_empty() && sane(&m.state())) {
        kill_cgroup(&*cg, libc::SIGKILL);
        wait_empty(&*cg);
        cg.destroy()?;
    }
    store.remove(id).map_err(Into::into)
}

/// Polls until no process is left in the cgroup (SIGKILLed processes take a moment to
/// leave), for at most a few seconds.
fn wait_empty(cg: &dyn Manager) {
    for _ in 0..500 {
        if cg.pids().map(|p| p.is_empty()).unwrap_or(true) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The cgroup berth makes for `id` when the config names none, as far as it exists (its
/// directories are then the container's to remove).
fn default_manager(id: &str) -> Option<Box<dyn Manager>> {
    let mut st = cgroups::open(id, None, false).ok()?.state();
    st.created = st.hierarchies.iter().map(|h| h.dir.clone()).filter(|d| d.is_dir()).collect();
    Some(cgroups::from_state(&st))
}

/// The record's cgroup, if it can be trusted with signals and removal. `init_pinned`: the
/// record's init is alive (and pinned by the caller), so the cgroup must hold it; a state
/// file rewritten to name another cgroup then fails. Without a live init only the shape is
/// checked (see `sane`).
pub(crate) fn trusted_manager(rec: &Record, init_pinned: bool) -> Result<Box<dyn Manager>> {
    let cg = manager_of(rec)?;
    let st = cg.state();
    let refuse = |why: String| Error::Init { id: rec.id.clone(), msg: format!("the recorded cgroup {why}: refusing to use it") };
    if !sane(&st) {
        return Err(refuse("is a hierarchy's root, holds berth itself, or lists directories outside it".into()));
    }
    if init_pinned && !holds(&st, rec.pid) {
        return Err(refuse(format!("does not hold the container's init (pid {})", rec.pid)));
    }
    Ok(cg)
}

/// The cgroup's shape is one berth makes: every directory strictly below its hierarchy's
/// mount point, none an ancestor of (or equal to) berth's own cgroup, and every directory
/// `destroy` removes on the way to one of them.
fn sane(st: &crate::cgroups::CgroupState) -> bool {
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
fn holds(st: &crate::cgroups::CgroupState, pid: i32) -> bool {
    cgroups_of(pid, st).iter().zip(&st.hierarchies).all(|(c, h)| c.as_ref().is_some_and(|c| c.starts_with(&h.dir)))
}

/// The host directory of `pid`'s cgroup in each of the state's hierarchies (from
/// /proc/<pid>/cgroup; berth runs in the host's cgroup namespace).
fn cgroups_of(pid: i32, st: &crate::cgroups::CgroupState) -> Vec<Option<PathBuf>> {
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

/// `state`: runtime-spec's state of one container.
pub fn state(store: &Store, id: &str) -> Result<String> {
    let (rec, status) = load_with_status(store, id)?;
    serde_json::to_string_pretty(&rec.public(status)).map_err(|e| Error::io("encoding state", e.into()))
}

/// Every container under the root with its status.
pub fn list(store: &Store) -> Result<Vec<(Record, Status)>> {
    let mut out = Vec::new();
    for id in store.ids()? {
        if let Ok(pair) = load_with_status(store, &id) {
            out.push(pair);
        }
    }
    Ok(out)
}

/// Waits for the init (our child) while forwarding signals to it, and, with a terminal,
/// copying between our stdio and the pty. Returns the container's exit code.
pub fn wait_foreground(created: &Created, tty_master: Option<OwnedFd>) -> Result<i32> {
    crate::foreground::wait(&created.pidfd, tty_master).map_err(|e| Error::io("waiting for the container", e))
}
