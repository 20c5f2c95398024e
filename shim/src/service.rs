//! The containerd Task service (task API v2): what each RPC does to the containers of this
//! shim, which runtime command it runs and which event it publishes.
//!
//! Locking: `tasks` is held only for bookkeeping, never across a runtime invocation, because the
//! reaper needs it to record exits and the runtime's own exit is learnt through the reaper.
//! `lifecycle` serialises the mutating operations (create, start, delete, exec start).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Duration,
};

use containerd_shim::mount::{mount_rootfs, umount_recursive};
use containerd_shim_protos::{
    api::{
        CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
        DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest, PidsResponse,
        ProcessInfo, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest,
        StateResponse, StatsRequest, StatsResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
    },
    events::task::{
        TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM,
        TaskPaused, TaskResumed, TaskStart,
    },
    protobuf::MessageField,
    shim::oci::ProcessDetails,
    topics,
    ttrpc::{self, TtrpcContext},
    Task,
};

use crate::{
    error::{io, Error, Result},
    events::{to_any, Publisher},
    failpoint,
    io::{open_direct, resize, start_console_copy, ConsoleSocket, StdioPaths},
    oom::OomWatcher,
    runtime::{Runtime, RuntimeConfig},
    stats::{collect_v1, collect_v2, CgroupPaths},
    tracked_process::{validate_id, Process, State},
};

const INIT_PID_FILE: &str = "init.pid";
const MAX_CONTAINER_ID: usize = 1024;
const MAX_EXEC_ID: usize = 76;

struct Container {
    id: String,
    bundle: PathBuf,
    config: RuntimeConfig,
    init: Process,
    execs: HashMap<String, Process>,
    paused: bool,
    rootfs_mounted: bool,
    /// The cgroup to empty when the init exits, before the exit is reported: set when the
    /// container shares its pid namespace (see leftovers.rs).
    leftovers: Option<PathBuf>,
    /// The init has been reaped and its leftovers are being killed: its exit is recorded
    /// once they are gone.
    init_reaped: bool,
    /// The init was restored from a checkpoint at Create: it runs already, and Start only
    /// reports it started.
    restored: bool,
}

impl Container {
    fn process(&self, exec_id: &str) -> Result<&Process> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| Error::NotFound(format!("process {exec_id} not found")))
    }

    fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs.get_mut(exec_id).ok_or_else(|| Error::NotFound(format!("process {exec_id} not found")))
    }

    fn exit_event(&self, p: &Process) -> TaskExit {
        TaskExit {
            container_id: self.id.clone(),
            id: if p.exec_id.is_empty() { self.id.clone() } else { p.exec_id.clone() },
            pid: p.pid,
            exit_status: p.exit_status,
            exited_at: p.exited_at_field(),
            ..Default::default()
        }
    }
}

#[derive(Default)]
struct Tasks {
    containers: HashMap<String, Container>,
    /// Registrations in flight (a runtime create/exec whose pid is not known yet) and the
    /// exits of unknown pids seen meanwhile: a process may exit before its pid is recorded.
    pending: usize,
    early_exits: Vec<(u32, i32)>,
}

impl Tasks {
    fn container(&mut self, id: &str) -> Result<&mut Container> {
        self.containers.get_mut(id).ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    fn take_early_exit(&mut self, pid: u32) -> Option<i32> {
        let pos = self.early_exits.iter().position(|(p, _)| *p == pid)?;
        Some(self.early_exits.swap_remove(pos).1)
    }

    fn end_registration(&mut self) {
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 {
            self.early_exits.clear();
        }
    }
}

/// How long an OOM-killed init's exit is held for its TaskOOM to reach containerd: a
/// forward takes milliseconds, and a containerd that is away (restarting) must not stall
/// the shim's bookkeeping for longer.
const OOM_DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Service {
    namespace: String,
    tasks: Mutex<Tasks>,
    exited: Condvar,
    lifecycle: Mutex<()>,
    events: Arc<Publisher>,
    oom: OomWatcher,
    request_exit: Box<dyn Fn() + Send + Sync>,
    /// Tells the ttrpc server that parked Waits may be answerable now.
    wake: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Service {
    pub fn new(namespace: String, events: Arc<Publisher>, request_exit: Box<dyn Fn() + Send + Sync>) -> Result<Self> {
        let ev = Arc::clone(&events);
        let oom = OomWatcher::new(Box::new(move |id: &str| {
            ev.publish(topics::TASK_OOM_EVENT_TOPIC, TaskOOM { container_id: id.to_string(), ..Default::default() })
        }))?;
        Ok(Service {
            namespace,
            tasks: Mutex::new(Tasks::default()),
            exited: Condvar::new(),
            lifecycle: Mutex::new(()),
            events,
            oom,
            request_exit,
            wake: std::sync::OnceLock::new(),
        })
    }

    pub fn set_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.wake.set(wake);
    }

    /// A process stopped or went away: blocked and parked Waits re-check.
    fn notify_exited(&self) {
        self.exited.notify_all();
        if let Some(wake) = self.wake.get() {
            wake();
        }
    }

    /// Whether a Wait (its encoded request) would answer at once: the process has stopped, or
    /// there is no such process (the answer is the error). A Wait that is not ready is parked
    /// by the server instead of holding a thread.
    pub fn wait_ready(&self, payload: &[u8]) -> bool {
        let Ok(req) = <WaitRequest as protobuf::Message>::parse_from_bytes(payload) else {
            return true;
        };
        let mut t = self.tasks();
        match t.container(&req.id).and_then(|c| c.process(&req.exec_id).map(|p| p.state)) {
            Ok(state) => state == State::Stopped,
            Err(_) => true,
        }
    }

    /// A poisoned lock only means another request panicked mid-update; the bookkeeping is
    /// still the best information there is, so keep serving rather than failing every call.
    fn tasks(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runtime invocation for a container, built outside the lock's critical use.
    fn runtime_for(&self, id: &str) -> Result<Runtime> {
        let mut t = self.tasks();
        let c = t.container(id)?;
        Ok(Runtime::new(&c.config, &self.namespace, &c.bundle))
    }

    /// Called by the reaper for every child it collects.
    pub fn on_exit(self: &Arc<Self>, pid: i32, status: i32) {
        let Ok(pid) = u32::try_from(pid) else { return };
        let mut t = self.tasks();
        let mut found = None;
        for c in t.containers.values_mut() {
            let matches = |p: &Process| p.pid == pid && p.state != State::Stopped;
            let exec_id = if matches(&c.init) && !c.init_reaped {
                Some(String::new())
            } else {
                c.execs.values().find(|p| matches(p)).map(|p| p.exec_id.clone())
            };
            if let Some(exec_id) = exec_id {
                found = Some((c.id.clone(), exec_id));
                break;
            }
        }
        match found {
            Some((cid, exec_id)) => {
                let leftovers = match t.container(&cid) {
                    Ok(c) if exec_id.is_empty() => c.leftovers.clone(),
                    _ => None,
                };
                if let Some(dir) = leftovers {
                    // Not on the reaper thread: killing waits for the processes to die,
                    // which only the reaper can see for our own children.
                    if let Ok(c) = t.container(&cid) {
                        c.init_reaped = true;
                    }
                    let svc = Arc::clone(self);
                    let (id, dir2) = (cid.clone(), dir.clone());
                    let spawned = std::thread::Builder::new().name("leftovers".into()).spawn(move || {
                        if !crate::leftovers::kill_all_and_wait(&dir2) {
                            log::warn!("{id}: processes left in {} after the init exited", dir2.display());
                        }
                        let mut t = svc.tasks();
                        svc.record_exit(&mut t, &id, "", status);
                    });
                    if spawned.is_err() {
                        crate::leftovers::kill_all_and_wait(&dir);
                        self.record_exit(&mut t, &cid, &exec_id, status);
                    }
                    return;
                }
                self.record_exit(&mut t, &cid, &exec_id, status);
            }
            None if t.pending > 0 => t.early_exits.push((pid, status)),
            None => {}
        }
    }

    /// Called with the tasks locked when an init has exited, before anyone can see it: any
    /// TaskOOM of the container not yet published is, and the exit waits (at most
    /// [`OOM_DELIVERY_WAIT`]) until containerd has taken it. containerd 1.x's CRI plugin
    /// learns of the exit from its Wait call, not from TaskExit, and reports OOMKilled only
    /// when the OOM event was handled first. `status` is the init's exit status (128 + SIGKILL
    /// when killed, by the OOM killer among others).
    fn hold_exit_for_oom(&self, cid: &str, status: i32) {
        let number = self.oom.flush(cid, status == 128 + libc::SIGKILL);
        if number > 0 && !self.events.wait_done(number, OOM_DELIVERY_WAIT) {
            log::warn!("{cid}: its TaskOOM was not forwarded within {OOM_DELIVERY_WAIT:?}; the exit goes out first");
        }
    }

    /// Marks a process exited and publishes its TaskExit (deferred while its start is in
    /// flight), then wakes the waiters.
    fn record_exit(&self, t: &mut Tasks, cid: &str, exec_id: &str, status: i32) {
        {
            {
                if let Ok(c) = t.container(cid) {
                    let mut event = None;
                    if let Ok(p) = c.process_mut(exec_id) {
                        if p.set_exited(status) {
                            if p.exec_id.is_empty() {
                                self.hold_exit_for_oom(cid, status);
                            }
                            if p.starting {
                                p.exit_deferred = true;
                            } else {
                                event = Some(p.exec_id.clone());
                            }
                        }
                    }
                    if let Some(exec_id) = event {
                        if let Ok(p) = c.process(&exec_id) {
                            let ev = c.exit_event(p);
                            self.events.publish(topics::TASK_EXIT_EVENT_TOPIC, ev);
                            if exec_id.is_empty() {
                                failpoint::hit("exit:event-published");
                            }
                        }
                    }
                }
                self.notify_exited();
            }
        }
    }

    fn cleanup_rootfs(bundle: &Path) {
        let rootfs = bundle.join("rootfs");
        if let Some(r) = rootfs.to_str() {
            if let Err(e) = umount_recursive(Some(r), 0) {
                log::warn!("unmount {r}: {e}");
            }
        }
    }

    fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        validate_id("container", &req.id, MAX_CONTAINER_ID)?;
        let _l = self.lifecycle();
        if self.tasks().containers.contains_key(&req.id) {
            return Err(Error::AlreadyExists(format!("container {} already exists", req.id)));
        }
        let bundle = PathBuf::from(&req.bundle);
        let cfg = RuntimeConfig::from_options(req.options.as_ref())?;
        cfg.save(&bundle)?;
        failpoint::hit("create:config-saved");
        let runtime = Runtime::new(&cfg, &self.namespace, &bundle);

        let rootfs = bundle.join("rootfs");
        let mut mounted = false;
        for m in &req.rootfs {
            fs::create_dir_all(&rootfs).map_err(io("create rootfs dir"))?;
            if let Err(e) = mount_rootfs(Some(&m.type_), Some(&m.source), &m.options, &rootfs) {
                Self::cleanup_rootfs(&bundle);
                return Err(Error::Shim(e));
            }
            mounted = true;
        }
        failpoint::hit("create:rootfs-mounted");
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let pid_file = bundle.join(INIT_PID_FILE);
        // A checkpoint to restore (ctr c restore --live, docker start --checkpoint): the init
        // is restored now, where runc's shim restores it at Start; either way the task runs
        // once Start returns. A restored terminal's new master comes over the console socket
        // as a created one's does.
        let restoring = !req.checkpoint.is_empty();
        let result = || -> Result<(u32, crate::io::ProcessIo)> {
            let restore = |socket: Option<&Path>, child| {
                runtime.restore(&req.id, &bundle, &pid_file, &req.checkpoint, &req.parent_checkpoint, socket, child)
            };
            let (pio, console) = if req.terminal {
                let socket = ConsoleSocket::new()?;
                if restoring {
                    restore(Some(socket.path()), Default::default())?;
                } else {
                    runtime.create(&req.id, &bundle, &pid_file, Some(socket.path()), Default::default())?;
                }
                (None, Some(socket))
            } else {
                let (pio, child) = open_direct(&stdio)?;
                if restoring {
                    restore(None, child)?;
                } else {
                    runtime.create(&req.id, &bundle, &pid_file, None, child)?;
                }
                (Some(pio), None)
            };
            failpoint::hit("create:runtime-created");
            let pid = read_pid(&pid_file)?;
            let pio = match (pio, console) {
                (Some(p), _) => p,
                (None, Some(socket)) => start_console_copy(socket.receive_master()?, &stdio)?,
                (None, None) => Default::default(),
            };
            Ok((pid, pio))
        };
        self.tasks().pending += 1;
        let created = result();
        let (pid, pio) = match created {
            Ok(v) => v,
            Err(e) => {
                self.tasks().end_registration();
                // Leave nothing behind: whatever the runtime got to create goes.
                let _ = runtime.delete(&req.id, true);
                if mounted {
                    Self::cleanup_rootfs(&bundle);
                }
                return Err(e);
            }
        };
        let cgroups = CgroupPaths::of_pid(pid);
        let leftovers = match &cgroups {
            Ok(paths) if !crate::leftovers::has_own_pid_namespace(&bundle) => crate::leftovers::process_cgroup(paths),
            _ => None,
        };
        let mut init = Process::new("", stdio.clone());
        init.pid = pid;
        init.io = pio;
        {
            let mut t = self.tasks();
            if let Some(status) = t.take_early_exit(pid) {
                init.set_exited(status);
            }
            t.end_registration();
            t.containers.insert(
                req.id.clone(),
                Container {
                    id: req.id.clone(),
                    bundle: bundle.clone(),
                    config: cfg,
                    init,
                    execs: HashMap::new(),
                    paused: false,
                    rootfs_mounted: mounted,
                    leftovers,
                    init_reaped: false,
                    restored: restoring,
                },
            );
        }
        failpoint::hit("create:registered");
        // Watch for OOM before the process runs, so an OOM right at start is not missed.
        match cgroups.map(|p| p.memory()) {
            Ok(Some(cgroup)) => {
                if let Err(e) = self.oom.watch(&req.id, cgroup) {
                    log::warn!("oom watch {}: {e}", req.id);
                }
            }
            Ok(None) => {}
            Err(e) => log::warn!("cgroups of {}: {e}", req.id),
        }
        self.events.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                pid,
                ..Default::default()
            },
        );
        failpoint::hit("create:event-published");
        // An init that died between the runtime's create and its registration (killed from
        // outside) still gets its one TaskExit, after the TaskCreate.
        {
            let mut t = self.tasks();
            if let Ok(c) = t.container(&req.id) {
                if c.init.state == State::Stopped {
                    self.hold_exit_for_oom(&req.id, i32::try_from(c.init.exit_status).unwrap_or(255));
                    let ev = c.exit_event(&c.init);
                    self.events.publish(topics::TASK_EXIT_EVENT_TOPIC, ev);
                }
            }
        }
        Ok(CreateTaskResponse { pid, ..Default::default() })
    }

    fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        let _l = self.lifecycle();
        if req.exec_id.is_empty() {
            self.start_init(&req.id)
        } else {
            self.start_exec(&req.id, &req.exec_id)
        }
    }

    fn start_init(&self, id: &str) -> Result<StartResponse> {
        let runtime_id;
        let pid;
        let restored;
        {
            let mut t = self.tasks();
            let c = t.container(id)?;
            if c.init.state != State::Created {
                return Err(Error::FailedPrecondition(format!("container {id} is not created")));
            }
            c.init.starting = true;
            runtime_id = c.id.clone();
            pid = c.init.pid;
            restored = c.restored;
        }
        let result = if restored { Ok(()) } else { self.runtime_for(id).and_then(|rt| rt.start(&runtime_id)) };
        let mut t = self.tasks();
        let c = t.container(id)?;
        c.init.starting = false;
        if let Err(e) = result {
            if c.init.exit_deferred {
                c.init.exit_deferred = false;
                let ev = c.exit_event(&c.init);
                self.events.publish(topics::TASK_EXIT_EVENT_TOPIC, ev);
            }
            return Err(e);
        }
        failpoint::hit("start:runtime-started");
        if c.init.state == State::Created {
            c.init.state = State::Running;
        }
        self.events.publish(
            topics::TASK_START_EVENT_TOPIC,
            TaskStart { container_id: id.to_string(), pid, ..Default::default() },
        );
        if c.init.exit_deferred {
            c.init.exit_deferred = false;
            let ev = c.exit_event(&c.init);
            self.events.publish(topics::TASK_EXIT_EVENT_TOPIC, ev);
        }
        failpoint::hit("start:event-published");
        Ok(StartResponse { pid, ..Default::default() })
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<StartResponse> {
        let (bundle, spec, stdio) = {
            let mut t = self.tasks();
            let c = t.container(id)?;
            if c.init.state == State::Stopped {
                return Err(Error::FailedPrecondition(format!("container {id} is stopped")));
            }
            let bundle = c.bundle.clone();
            let p = c.process_mut(exec_id)?;
            if p.state != State::Created {
                return Err(Error::FailedPrecondition(format!("exec {exec_id} already started")));
            }
            p.starting = true;
            (bundle, std::mem::take(&mut p.spec), p.stdio.clone())
        };
        let spec_file = bundle.join(format!(".exec-{exec_id}.json"));
        let pid_file = bundle.join(format!(".exec-{exec_id}.pid"));
        let runtime = self.runtime_for(id)?;
        self.tasks().pending += 1;
        let result = (|| -> Result<(u32, crate::io::ProcessIo)> {
            fs::write(&spec_file, &spec).map_err(io("write exec process spec"))?;
            failpoint::hit("exec:spec-written");
            if stdio.terminal {
                let socket = ConsoleSocket::new()?;
                runtime.exec(id, &spec_file, &pid_file, Some(socket.path()), Default::default())?;
                failpoint::hit("exec:runtime-execed");
                let pid = read_pid(&pid_file)?;
                Ok((pid, start_console_copy(socket.receive_master()?, &stdio)?))
            } else {
                let (pio, child) = open_direct(&stdio)?;
                runtime.exec(id, &spec_file, &pid_file, None, child)?;
                failpoint::hit("exec:runtime-execed");
                Ok((read_pid(&pid_file)?, pio))
            }
        })();
        let _ = fs::remove_file(&spec_file);
        let _ = fs::remove_file(&pid_file);
        let mut t = self.tasks();
        let early = match &result {
            Ok((pid, _)) => t.take_early_exit(*pid),
            Err(_) => None,
        };
        t.end_registration();
        let c = t.container(id)?;
        let p = c.process_mut(exec_id)?;
        p.starting = false;
        let (pid, pio) = match result {
            Ok(v) => v,
            Err(e) => {
                // A failed exec never ran: it is stopped, with the status runc's shim uses.
                p.set_exited(255);
                self.notify_exited();
                return Err(e);
            }
        };
        p.pid = pid;
        p.io = pio;
        if p.state == State::Created {
            p.state = State::Running;
        }
        if let Some(status) = early {
            p.set_exited(status);
        }
        failpoint::hit("exec:started");
        self.events.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted { container_id: id.to_string(), exec_id: exec_id.to_string(), pid, ..Default::default() },
        );
        failpoint::hit("exec:event-published");
        let p = c.process(exec_id)?;
        if p.state == State::Stopped {
            let ev = c.exit_event(p);
            self.events.publish(topics::TASK_EXIT_EVENT_TOPIC, ev);
            self.notify_exited();
        }
        Ok(StartResponse { pid, ..Default::default() })
    }

    fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let _l = self.lifecycle();
        if !req.exec_id.is_empty() {
            let mut t = self.tasks();
            let c = t.container(&req.id)?;
            let p = c.process(&req.exec_id)?;
            if p.state == State::Running {
                return Err(Error::FailedPrecondition(format!("exec {} is running", req.exec_id)));
            }
            let p = c
                .execs
                .remove(&req.exec_id)
                .ok_or_else(|| Error::NotFound(format!("process {} not found", req.exec_id)))?;
            return Ok(DeleteResponse {
                pid: p.pid,
                exit_status: p.exit_status,
                exited_at: p.exited_at_field(),
                ..Default::default()
            });
        }
        let was_created = {
            let mut t = self.tasks();
            let c = t.container(&req.id)?;
            if c.init.state == State::Running {
                return Err(Error::FailedPrecondition(format!("container {} must be stopped before delete", req.id)));
            }
            c.init.state == State::Created
        };
        let runtime = self.runtime_for(&req.id)?;
        // A created container still has its init parked; --force kills it. A container the
        // runtime removed itself (a checkpoint that stopped it) is deleted already, as for
        // runc's shim.
        match runtime.delete(&req.id, was_created) {
            Err(e) if e.to_string().contains("does not exist") => {}
            r => r?,
        }
        failpoint::hit("delete:runtime-deleted");
        if was_created {
            // The killed init is reaped by the reaper; wait for it so the exit is reported.
            let t = self.tasks();
            let _ = self.exited.wait_timeout_while(t, Duration::from_secs(5), |t| {
                t.containers.get(&req.id).is_some_and(|c| c.init.state != State::Stopped)
            });
        }
        self.oom.unwatch(&req.id);
        let c = {
            let mut t = self.tasks();
            t.containers.remove(&req.id).ok_or_else(|| Error::NotFound(format!("container {} not found", req.id)))?
        };
        failpoint::hit("delete:forgotten");
        if c.rootfs_mounted {
            Self::cleanup_rootfs(&c.bundle);
        }
        failpoint::hit("delete:rootfs-unmounted");
        let _ = fs::remove_file(c.bundle.join(INIT_PID_FILE));
        self.notify_exited();
        self.events.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: c.id.clone(),
                pid: c.init.pid,
                exit_status: c.init.exit_status,
                exited_at: c.init.exited_at_field(),
                ..Default::default()
            },
        );
        failpoint::hit("delete:event-published");
        Ok(DeleteResponse {
            pid: c.init.pid,
            exit_status: c.init.exit_status,
            exited_at: c.init.exited_at_field(),
            ..Default::default()
        })
    }

    fn do_exec(&self, req: ExecProcessRequest) -> Result<Empty> {
        validate_id("exec", &req.exec_id, MAX_EXEC_ID)?;
        let mut t = self.tasks();
        let c = t.container(&req.id)?;
        if c.init.state == State::Stopped {
            return Err(Error::FailedPrecondition(format!("container {} is stopped", req.id)));
        }
        if c.execs.contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists(format!("exec {} already exists", req.exec_id)));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| Error::InvalidArgument("exec without a process spec".into()))?;
        serde_json::from_slice::<serde_json::Value>(&spec)?;
        let mut p = Process::new(
            &req.exec_id,
            StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        p.spec = spec;
        c.execs.insert(req.exec_id.clone(), p);
        failpoint::hit("exec:registered");
        self.events.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded { container_id: req.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() },
        );
        failpoint::hit("exec:added-event-published");
        Ok(Empty::new())
    }

    fn do_kill(&self, req: KillRequest) -> Result<Empty> {
        let pid = {
            let mut t = self.tasks();
            let c = t.container(&req.id)?;
            let p = c.process(&req.exec_id)?;
            if p.state == State::Stopped && !req.all {
                return Err(Error::NotFound(format!(
                    "process {} already finished",
                    if req.exec_id.is_empty() { &req.id } else { &req.exec_id }
                )));
            }
            p.pid
        };
        if !req.exec_id.is_empty() {
            let sig = nix::sys::signal::Signal::try_from(i32::try_from(req.signal).unwrap_or(-1))
                .map_err(|_| Error::InvalidArgument(format!("invalid signal {}", req.signal)))?;
            let pid = i32::try_from(pid).map_err(|_| Error::FailedPrecondition("exec has no pid".into()))?;
            if pid <= 0 {
                return Err(Error::FailedPrecondition(format!("exec {} not started", req.exec_id)));
            }
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(crate::error::sys("kill exec"))?;
            return Ok(Empty::new());
        }
        let runtime = self.runtime_for(&req.id)?;
        runtime.kill(&req.id, req.signal, req.all).map_err(kill_error)?;
        Ok(Empty::new())
    }

    fn do_pause(&self, id: &str, pause: bool) -> Result<Empty> {
        let _l = self.lifecycle();
        let runtime = self.runtime_for(id)?;
        if pause {
            runtime.pause(id)?;
        } else {
            runtime.resume(id)?;
        }
        self.tasks().container(id)?.paused = pause;
        if pause {
            self.events.publish(
                topics::TASK_PAUSED_EVENT_TOPIC,
                TaskPaused { container_id: id.to_string(), ..Default::default() },
            );
        } else {
            self.events.publish(
                topics::TASK_RESUMED_EVENT_TOPIC,
                TaskResumed { container_id: id.to_string(), ..Default::default() },
            );
        }
        Ok(Empty::new())
    }

    fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let execs = {
            let mut t = self.tasks();
            let c = t.container(&req.id)?;
            let execs: HashMap<u32, String> =
                c.execs.values().filter(|p| p.pid != 0).map(|p| (p.pid, p.exec_id.clone())).collect();
            execs
        };
        let runtime = self.runtime_for(&req.id)?;
        let mut processes = Vec::new();
        for pid in runtime.ps(&req.id)? {
            let mut info = ProcessInfo { pid, ..Default::default() };
            if let Some(exec_id) = execs.get(&pid) {
                let details = ProcessDetails { exec_id: exec_id.clone(), ..Default::default() };
                info.info = MessageField::some(to_any(&details)?);
            }
            processes.push(info);
        }
        Ok(PidsResponse { processes, ..Default::default() })
    }

    /// `berth checkpoint` into `req.path`; the container's exit (with `exit: true`) reaches
    /// containerd through the reaper like any other.
    fn do_checkpoint(&self, req: CheckpointTaskRequest) -> Result<Empty> {
        let _l = self.lifecycle();
        let opts = match req.options.as_ref() {
            Some(any) if any.type_url.ends_with("CheckpointOptions") => {
                use protobuf::Message;
                crate::runtime::CheckpointOptions::parse_from_bytes(&any.value)?
            }
            // No runc options: leave the task running, as runc's shim does, unless the
            // runtime's options file asks for Docker's default (see RuntimeConfig).
            _ => {
                let exit = self.tasks().container(&req.id)?.config.checkpoint_exit_without_options;
                crate::runtime::CheckpointOptions { exit, ..Default::default() }
            }
        };
        log::info!(
            "checkpoint {}: options {:?}, exit {}",
            req.id,
            req.options.as_ref().map(|a| a.type_url.as_str()),
            opts.exit
        );
        let runtime = self.runtime_for(&req.id)?;
        runtime.checkpoint(&req.id, &req.path, &opts)?;
        self.events.publish(
            topics::TASK_CHECKPOINTED_EVENT_TOPIC,
            TaskCheckpointed { container_id: req.id.clone(), checkpoint: req.path.clone(), ..Default::default() },
        );
        Ok(Empty::new())
    }

    fn do_update(&self, req: UpdateTaskRequest) -> Result<Empty> {
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| Error::InvalidArgument("update without resources".into()))?;
        serde_json::from_slice::<serde_json::Value>(&resources)?;
        let runtime = self.runtime_for(&req.id)?;
        runtime.update(&req.id, &resources)?;
        Ok(Empty::new())
    }

    fn do_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let pid = {
            let mut t = self.tasks();
            let c = t.container(&req.id)?;
            if c.init.state != State::Running {
                return Err(Error::FailedPrecondition(format!("container {} is not running", req.id)));
            }
            c.init.pid
        };
        let paths = CgroupPaths::of_pid(pid)?;
        let stats = match paths.unified() {
            Some(dir) => to_any(&collect_v2(dir))?,
            None => to_any(&collect_v1(&paths))?,
        };
        Ok(StatsResponse { stats: MessageField::some(stats), ..Default::default() })
    }

    fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        let mut t = self.tasks();
        let c = t.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        Ok(StateResponse {
            id: if req.exec_id.is_empty() { c.id.clone() } else { p.exec_id.clone() },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid,
            status: p.status(c.paused).into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: p.exit_status,
            exited_at: p.exited_at_field(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn do_wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        let mut t = self.tasks();
        loop {
            let c = t.container(&req.id)?;
            let p = c.process(&req.exec_id)?;
            if p.state == State::Stopped {
                return Ok(WaitResponse {
                    exit_status: p.exit_status,
                    exited_at: p.exited_at_field(),
                    ..Default::default()
                });
            }
            t = self.exited.wait(t).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn do_resize(&self, req: ResizePtyRequest) -> Result<Empty> {
        let console = {
            let mut t = self.tasks();
            let c = t.container(&req.id)?;
            c.process(&req.exec_id)?.io.console.clone()
        };
        match console {
            Some(console) => resize(&console, req.width, req.height)?,
            None => {
                return Err(Error::FailedPrecondition("process has no terminal".into()));
            }
        }
        Ok(Empty::new())
    }

    fn do_connect(&self, req: ConnectRequest) -> Result<ConnectResponse> {
        let task_pid = {
            let mut t = self.tasks();
            t.container(&req.id).map(|c| c.init.pid).unwrap_or(0)
        };
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn do_shutdown(&self) -> Result<Empty> {
        if self.tasks().containers.is_empty() {
            (self.request_exit)();
        }
        Ok(Empty::new())
    }
}

/// A kill that finds nothing to signal is "not found" to containerd (it then treats the
/// process as gone), whatever words the runtime used; as runc's shim's checkKillError.
fn kill_error(e: Error) -> Error {
    let msg = e.to_string().to_lowercase();
    let gone = ["not running", "not found", "does not exist", "already finished", "no such process"];
    if gone.iter().any(|g| msg.contains(g)) {
        Error::NotFound(format!("process already finished: {e}"))
    } else {
        e
    }
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = fs::read_to_string(path).map_err(io(format!("read {}", path.display())))?;
    text.trim().parse().map_err(|_| Error::FailedPrecondition(format!("bad pid file {}: {text:?}", path.display())))
}

fn reply<T>(method: &str, r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        // NotFound is the expected answer to what containerd asks after an exit (the
        // kill-all of every StopContainer, a second Delete): routine, not news.
        if matches!(e, Error::NotFound(_)) {
            log::debug!("{method}: {e}");
        } else {
            log::info!("{method}: {e}");
        }
        e.into()
    })
}

impl Task for Service {
    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        reply("create", self.do_create(req))
    }
    fn start(&self, _: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        reply("start", self.do_start(req))
    }
    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        reply("delete", self.do_delete(req))
    }
    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        reply("exec", self.do_exec(req))
    }
    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        reply("kill", self.do_kill(req))
    }
    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        reply("pause", self.do_pause(&req.id, true))
    }
    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        reply("resume", self.do_pause(&req.id, false))
    }
    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        reply("pids", self.do_pids(req))
    }
    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        reply("update", self.do_update(req))
    }
    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        reply("stats", self.do_stats(req))
    }
    fn state(&self, _: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        reply("state", self.do_state(req))
    }
    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        reply("wait", self.do_wait(req))
    }
    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        reply("resize_pty", self.do_resize(req))
    }
    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        // The process reads containerd's FIFO directly (or a copy thread does for a pty) and
        // the shim holds no writer, so closing containerd's end is all it takes for EOF.
        let r = {
            let mut t = self.tasks();
            t.container(&req.id).and_then(|c| c.process(&req.exec_id).map(drop))
        };
        reply("close_io", r.map(|_| Empty::new()))
    }
    fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        reply("checkpoint", self.do_checkpoint(req))
    }
    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        reply("connect", self.do_connect(req))
    }
    fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> ttrpc::Result<Empty> {
        reply("shutdown", self.do_shutdown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_of_a_gone_container_is_not_found() {
        let e = Error::Runtime {
            binary: "berth".into(),
            command: "kill",
            message: "container \"x\" is stopped: container not running".into(),
        };
        assert!(matches!(kill_error(e), Error::NotFound(_)));
        let e = Error::Runtime { binary: "b".into(), command: "kill", message: "permission denied".into() };
        assert!(matches!(kill_error(e), Error::Runtime { .. }));
    }
}
