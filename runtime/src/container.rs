//! The lifecycle, as runtime-spec's operations: create, start, kill, delete, state, list,
//! pause, resume, and run (create + start + wait). A failed create leaves nothing behind:
//! every resource it made is held by a guard that undoes it unless the create completes
//! (`rollback.rs`; the init by `process::spawn`). The init is forked and driven through its
//! set-up by `process/`; what create does for each of its requests is `InitRequests`.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::cgroups::Manager;
use crate::error::{Error, Result};
use crate::hooks::{self, Kind};
use crate::process::channel;
use crate::process::handshake::{Handshake, Requests};
use crate::process::spawn::{spawn, GuardedChild, PidNs, Placement, Spawned, Target};
use crate::rollback::Rollback;
use crate::state::{Record, Status, Store, START_SOCKET};
use crate::{bundle, failpoint, log, namespaces, process, recorded_cgroup, rootfs, signal, sys};

pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// A connected socket that receives the terminal's master (from --console-socket, or
    /// `run`'s own socketpair).
    pub console: Option<OwnedFd>,
    /// A connected --pidfd-socket, which gets a pidfd of the init (runc's message:
    /// "standard").
    pub pidfd_socket: Option<OwnedFd>,
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
    /// process.terminal: the init sent the terminal's master over `console`.
    pub terminal: bool,
    /// The record `create` saved, which `run` starts the container from.
    record: Record,
}

/// Creates container `opts.id`. `foreground_tty`: `console` is `run`'s own socket, offered
/// in case process.terminal asks for a terminal, and dropped unused when it does not
/// (`run` thus decodes config.json once, here).
pub fn create(store: &Store, mut opts: CreateOpts, foreground_tty: bool) -> Result<Created> {
    let (loaded, cgroup) = bundle::load(&opts.id, &opts.bundle, opts.no_pivot, opts.systemd_cgroup)?;
    let (bundle, spec, rootfs_path, resources) = (&loaded.dir, &loaded.spec, &loaded.rootfs, &loaded.resources);
    let linux = spec.linux().as_ref().ok_or_else(|| Error::Usage("linux: missing".into()))?;
    let process = spec.process().as_ref().ok_or_else(|| Error::Usage("process: missing".into()))?;
    let terminal = process.terminal().unwrap_or(false);
    if foreground_tty && !terminal {
        opts.console = None;
    }
    match (terminal, opts.console.is_some()) {
        (true, false) => {
            return Err(Error::Usage(
                "process.terminal: cannot allocate a tty if berth will detach without setting --console-socket".into(),
            ))
        }
        // run's own offer was withdrawn above: this is --console-socket.
        (false, true) => {
            return Err(Error::Usage(
                "--console-socket: cannot use a console socket if process.terminal is false".into(),
            ))
        }
        _ => {}
    }
    let seccomp =
        spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::Filter::build).transpose()?;
    let plan = namespaces::plan(spec);
    let annotations: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();

    log::debug(&format!("create {}: bundle {}, rootfs {}", opts.id, bundle.display(), rootfs_path.display()));
    let dir = store.create_dir(&opts.id)?;
    let mut guard = Rollback::new(store, &opts.id);
    failpoint::hit("create:state-dir-made");
    let listener =
        crate::process::start::listen(&dir, START_SOCKET).map_err(|e| Error::io("creating the start socket", e))?;

    // Recorded before any cgroup directory exists, with no init yet, naming every
    // directory create is about to make: if this process is killed from here on (the guard
    // would not run), `delete --force` finds and removes them all.
    cgroup.plan()?;
    let mut record = loaded.initial_record(&opts.id, &*cgroup)?;
    store.save(&record)?;
    failpoint::hit("create:state-planned");
    let cgroup_mounts = crate::cgroups::container_mounts(&*cgroup)?;
    guard.cgroup = Some(cgroup);
    let cgroup = guard.cgroup.as_ref().ok_or_else(|| Error::Usage("cgroup".into()))?;
    cgroup.create()?;
    failpoint::hit("create:cgroup-dirs-made");
    cgroup.apply(resources)?;
    failpoint::hit("create:cgroup-applied");
    if let Some(root) = delegated_root(spec, &plan) {
        cgroup.delegate(root.0, root.1)?;
    }

    if plan.shares_mount_ns() {
        let before = rootfs::shared_ns::top_mount_id(rootfs_path)
            .map_err(|e| Error::io(format!("root.path {}: reading its mount", rootfs_path.display()), e))?;
        guard.shared_rootfs = Some((rootfs_path.clone(), before));
    }
    let (parent_ch, child_ch) = channel::pair().map_err(|e| Error::io("socketpair", e))?;
    let target = Target {
        new_namespaces: plan.clone_flags,
        // When staged the first child joins the pid namespace itself.
        pid_ns: plan.pid_path.as_deref().map_or(PidNs::Ours, PidNs::Path),
        cgroup: Placement::for_init(&**cgroup)?,
        // runtime-spec: execCPUAffinity is not applied to the init.
        initial_cpus: None,
        oom_score_adj: process.oom_score_adj(),
    };
    // Declared after the rollback guard, so dropped before it: the init dies first.
    let child = match spawn(target, &process::CREATE, &child_ch)? {
        Spawned::Child => {
            drop(parent_ch);
            crate::init::run(crate::init::InitArgs {
                spec,
                id: &opts.id,
                rootfs: rootfs_path,
                bundle,
                channel: child_ch,
                plan: &plan,
                console: opts.console,
                start_listener: listener,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                cgroup_mounts,
                seccomp: seccomp.as_ref(),
            })
        }
        Spawned::Parent(child) => child,
    };
    drop(child_ch);
    drop(listener);
    drop(opts.console);
    let pid = child.pid();
    let net_devices = linux.net_devices().as_ref().filter(|d| !d.is_empty());
    if let (Some(devices), false) = (net_devices, plan.staged) {
        crate::netdev::move_all(devices, pid)?;
    }
    let mut handshake = Handshake::new(parent_ch, child, &opts.id, &process::CREATE);
    let state = hooks::state(&opts.id, Status::Creating, pid, bundle, &annotations);
    handshake.go(state.clone())?;
    let mut requests = InitRequests { id: &opts.id, spec, bundle, plan: &plan, annotations: &annotations, state };
    handshake.serve(&mut requests)?;

    if let Some(sock) = &opts.pidfd_socket {
        crate::console::send_fd(sock.as_fd(), handshake.pidfd(), "standard").map_err(|e| {
            Error::io(format!("--pidfd-socket: sending the init's pidfd of container \"{}\"", opts.id), e)
        })?;
    }
    let pid = handshake.pid();
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
        crate::pid_file::write(p, pid)?;
    }
    failpoint::hit("create:pid-file-written");
    let (pid, pidfd) = handshake.finish();
    guard.disarm();
    Ok(Created { pid, pidfd, terminal, record })
}

/// What `create` does for its init's requests.
struct InitRequests<'a> {
    id: &'a str,
    spec: &'a Spec,
    bundle: &'a Path,
    plan: &'a namespaces::Plan,
    annotations: &'a HashMap<String, String>,
    /// The container's state as of now (creating), with the init's pid.
    state: String,
}

impl InitRequests<'_> {
    fn linux(&self) -> Result<&oci_spec::runtime::Linux> {
        self.spec.linux().as_ref().ok_or_else(|| Error::Usage("linux: missing".into()))
    }

    fn write_maps_of(&self, pid: i32) -> Result<()> {
        let linux = self.linux()?;
        let none = Vec::new();
        let uid = linux.uid_mappings().as_ref().unwrap_or(&none);
        let gid = linux.gid_mappings().as_ref().unwrap_or(&none);
        crate::id_mappings::write(pid, uid, gid).map_err(|e| Error::Init { id: self.id.into(), msg: e.to_string() })?;
        failpoint::hit("create:maps-written");
        Ok(())
    }

    fn take_over(&mut self, child: &mut GuardedChild, init: i32) -> Result<String> {
        child.hand_over(init)?;
        if let Some(devices) = self.linux()?.net_devices().as_ref().filter(|d| !d.is_empty()) {
            crate::netdev::move_all(devices, init)?;
        }
        self.state = hooks::state(self.id, Status::Creating, init, self.bundle, self.annotations);
        Ok(self.state.clone())
    }

    fn run_runtime_hooks(&self) -> Result<()> {
        let hooks = self.spec.hooks().as_ref();
        // In the bundle, where runc runs them (it chdirs there to create).
        hooks::run_all(hooks, Kind::Prestart, self.state.as_bytes(), Some(self.bundle), None)?;
        hooks::run_all(hooks, Kind::CreateRuntime, self.state.as_bytes(), Some(self.bundle), None)?;
        failpoint::hit("create:hooks-run");
        Ok(())
    }
}

impl Requests for InitRequests<'_> {
    fn write_maps(&mut self, pid: i32) -> Option<Result<()>> {
        self.plan.new_user.then(|| self.write_maps_of(pid))
    }

    fn init_forked(&mut self, child: &mut GuardedChild, init: i32) -> Option<Result<String>> {
        self.plan.staged.then(|| self.take_over(child, init))
    }

    fn open_mount_source(
        &mut self,
        pidfd: BorrowedFd<'_>,
        index: usize,
    ) -> Option<Result<std::result::Result<OwnedFd, String>>> {
        // The init asks in a user namespace, and for every id-mapped mount.
        let idmapped = self.spec.mounts().as_ref().and_then(|v| v.get(index)).and_then(rootfs::idmapped::wants);
        (self.plan.in_user_ns() || idmapped.is_some())
            .then(|| Ok(rootfs::source::open_for_init(pidfd, self.spec, self.bundle, index)))
    }

    fn run_hooks(&mut self) -> Option<Result<()>> {
        Some(self.run_runtime_hooks())
    }

    fn seccomp_listener(&mut self, listener: OwnedFd, pid: i32) -> Option<Result<()>> {
        let seccomp = self.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        Some(crate::seccomp::send_listener(seccomp, listener.as_fd(), pid, &self.state).map_err(Into::into))
    }
}

/// The host uid/gid of the container's root when its cgroup is to be handed to it: a new
/// user namespace and a new cgroup namespace, and a `cgroup` mount that is not read-only
/// (runc's rule; it only takes effect on cgroup v2).
fn delegated_root(spec: &Spec, plan: &namespaces::Plan) -> Option<(u32, u32)> {
    if !plan.new_user || !plan.new_cgroupns {
        return None;
    }
    let rw_cgroup_mount = spec.mounts().iter().flatten().any(|m| {
        m.typ().as_deref() == Some("cgroup") && !m.options().as_deref().unwrap_or(&[]).iter().any(|o| o == "ro")
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

pub fn start(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    failpoint::hit("start:locked");
    let (rec, status) = store.load_with_status(id)?;
    if status != Status::Created {
        return Err(Error::WrongState { id: id.into(), status, msg: "only a created container can be started" });
    }
    start_recorded(store, &rec)
}

/// `run`'s start of the container this process has just created, from the record `create`
/// saved, without reading it back: `create` returned only once the init was waiting for
/// start, and if a `delete` came in between, the init is gone and the start fails as it
/// would after the reading. runc's `run` starts its container in memory likewise.
pub fn start_created(store: &Store, created: &Created) -> Result<()> {
    start_recorded(store, &created.record)
}

fn start_recorded(store: &Store, rec: &Record) -> Result<()> {
    let id = rec.id.as_str();
    let state = hooks::state(id, Status::Created, rec.pid, &rec.bundle, &rec.annotations);
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
    let state = hooks::state(id, Status::Running, rec.pid, &rec.bundle, &rec.annotations);
    // runtime.md: a failing poststart hook is a warning, the others still run and start
    // succeeds (runc instead kills the container and fails `start`).
    for e in hooks::run_each(rec.hooks.as_ref(), Kind::Poststart, state.as_bytes()) {
        log::warn(&e.to_string());
    }
    failpoint::hit("start:poststart-run");
    Ok(())
}

/// `pause`: freezes every process of a running (or, as runc allows, created) container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let (rec, status) = store.load_with_status(id)?;
    if !matches!(status, Status::Running | Status::Created) {
        return Err(Error::WrongState { id: id.into(), status, msg: "container not running" });
    }
    recorded_cgroup::trusted(&rec, true)?.set_frozen(true)?;
    Ok(())
}

/// `resume`: thaws a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let (rec, status) = store.load_with_status(id)?;
    if status != Status::Paused {
        return Err(Error::WrongState { id: id.into(), status, msg: "container not paused" });
    }
    recorded_cgroup::trusted(&rec, true)?.set_frozen(false)?;
    Ok(())
}

/// `kill`: `sig` 0 only checks that the init is there. With `all`, a stopped container is
/// not an error (runc 1.1 and 1.3 alike: containerd kills with --all after the exit):
/// whatever is left in its cgroup (a shared pid namespace) still gets the signal. SIGKILL
/// to a container without a pid namespace of its own goes to every process of its cgroup,
/// as `all` does (runc 1.2 on): the init's death would leave the others running.
pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Result<()> {
    let (rec, status) = store.load_with_status(id)?;
    let all = all || (sig == libc::SIGKILL && rec.shared_pid_ns);
    let not_running = || -> Result<()> {
        if !all {
            return Err(Error::WrongState { id: id.into(), status: Status::Stopped, msg: "container not running" });
        }
        if sig != 0 {
            signal::kill_cgroup(&*rec.cgroup_manager(), sig);
        }
        Ok(())
    };
    match status {
        Status::Stopped => return not_running(),
        Status::Creating => {
            return Err(Error::WrongState { id: id.into(), status, msg: "it has no process to signal yet" })
        }
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
        signal::kill_cgroup(&*recorded_cgroup::trusted(&rec, true)?, sig);
        // The init was in the cgroup, so it has the signal already and may be gone.
        return match sys::pidfd_send_signal(pidfd.as_fd(), sig) {
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(Error::io(format!("container \"{id}\": kill"), e)),
            _ => Ok(()),
        };
    }
    // Checked before the signal: on cgroup v2 a frozen init dies at once on SIGKILL and may
    // be reaped before the check could read its /proc/<pid>/cgroup.
    let to_thaw = if status == Status::Paused && sig == libc::SIGKILL {
        Some(recorded_cgroup::trusted(&rec, true)?)
    } else {
        None
    };
    sys::pidfd_send_signal(pidfd.as_fd(), sig).map_err(|e| Error::io(format!("container \"{id}\": kill"), e))?;
    if let Some(cg) = to_thaw {
        // Frozen tasks (cgroup v1) act on SIGKILL only once thawed.
        cg.set_frozen(false)?;
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
            return Err(Error::WrongState {
                id: id.into(),
                status,
                msg: "cannot delete a running container without --force",
            })
        }
        _ => {}
    }
    log::debug(&format!("delete {id}: status {status}, init {}", rec.pid));
    // Checked while the init is pinned (if it lives): only then is the cgroup proven.
    let pinned = (status != Status::Stopped && rec.pid > 0)
        .then(|| sys::pidfd_open(rec.pid).ok())
        .flatten()
        .filter(|_| sys::process_alive(rec.pid, rec.init_start_time));
    failpoint::hit("delete:init-pinned");
    let cg = match recorded_cgroup::trusted(&rec, pinned.is_some()) {
        Ok(cg) => Some(cg),
        Err(e) if force => {
            // The record's cgroup is not the container's. The init (checked by its start
            // time) still dies, and the cgroup berth would have made for this id is used
            // if it holds that init; nothing else is touched.
            log::warn(&format!("{e}; ignoring the recorded cgroup"));
            recorded_cgroup::default_for(id).filter(|m| {
                pinned.is_some() && recorded_cgroup::holds(&m.state(), rec.pid) && recorded_cgroup::sane(&m.state())
            })
        }
        Err(e) => return Err(e),
    };
    if let (Status::Paused, Some(cg)) = (status, &cg) {
        // SIGKILL everything and thaw, so the init can die below.
        signal::kill_cgroup(&**cg, libc::SIGKILL);
    }
    if let Some(pidfd) = &pinned {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::pidfd_wait_exit(pidfd.as_fd(), 10_000);
    }
    failpoint::hit("delete:init-killed");
    if let Some(cg) = &cg {
        // With a shared pid namespace the init's death does not take the others with it.
        signal::kill_cgroup(&**cg, libc::SIGKILL);
        failpoint::hit("delete:before-cgroup-destroy");
        cg.destroy()?;
        failpoint::hit("delete:after-cgroup-destroy");
    }
    if let Some(mount) = rec.rootfs_mount {
        rootfs::shared_ns::detach(&rec.rootfs, None, Some(mount))?;
    }
    store.remove(id)?;
    failpoint::hit("delete:state-removed");
    let state = hooks::state(id, Status::Stopped, 0, &rec.bundle, &rec.annotations);
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
    if let Some(cg) =
        recorded_cgroup::default_for(id).filter(|m| !m.state().created.is_empty() && recorded_cgroup::sane(&m.state()))
    {
        signal::kill_cgroup(&*cg, libc::SIGKILL);
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

/// `state`: runtime-spec's state of one container.
pub fn state(store: &Store, id: &str) -> Result<String> {
    store.with_summary(id, |sum, status| {
        serde_json::to_string_pretty(&sum.public(status)).map_err(|e| Error::io("encoding state", e.into()))
    })
}

/// Waits for the init (our child) while forwarding signals to it, and, with a terminal,
/// copying between our stdio and the pty. Returns the container's exit code.
pub fn wait_foreground(created: &Created, tty_master: Option<OwnedFd>) -> Result<i32> {
    crate::foreground::wait(&created.pidfd, tty_master).map_err(|e| Error::io("waiting for the container", e))
}
