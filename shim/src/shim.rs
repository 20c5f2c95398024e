//! The shim binary's three modes, as containerd calls them: `start` (bootstrap a long-lived
//! shim or reuse the pod's, print its address), `delete` (clean up after a dead shim) and the
//! daemon itself (serve the Task API, reap children).

use std::{
    fs,
    io::Write,
    os::unix::process::CommandExt,
    os::{
        fd::{AsRawFd, RawFd},
        unix::{
            fs::{DirBuilderExt, PermissionsExt},
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use containerd_shim::{parse, socket_address, Flags};
use containerd_shim_protos::{
    api::DeleteResponse,
    protobuf::{Message, MessageField},
    shim_sync::create_task,
};
use nix::{
    errno::Errno,
    sys::{
        signal::{SigSet, Signal},
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::Pid,
};

use crate::{
    error::{io, sys, Error, Result},
    events::Publisher,
    runtime::{Runtime, RuntimeConfig},
    server::Server,
    service::Service,
    tracked_process::now,
};

pub const RUNTIME_ID: &str = "io.containerd.berth.v2";
/// Annotation by which the CRI plugin groups a pod's containers into one shim.
const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
const TASK_V2: &str = "/containerd.task.v2.Task/";
const TASK_V3: &str = "/containerd.task.v3.Task/";
/// The listening socket made by `start`, inherited by the daemon (its fd number).
const LISTEN_FD_ENV: &str = "BERTH_SHIM_LISTEN_FD";
/// The read end of a pipe from `start` (its fd number): one byte once containerd has the
/// address; end of file without it means `start` died first (see `await_handover`).
const READY_FD_ENV: &str = "BERTH_SHIM_READY_FD";

pub fn run() -> Result<()> {
    let args: Vec<_> = std::env::args_os().collect();
    let flags = parse(&args[1..])?;
    if flags.version {
        println!("containerd-shim-berth-v2 {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    if flags.info {
        return info();
    }
    if flags.namespace.is_empty() {
        return Err(Error::InvalidArgument("shim namespace cannot be empty".into()));
    }
    match flags.action.as_str() {
        "start" => start(&flags),
        "delete" => delete(&flags),
        "" => serve(&flags),
        other => Err(Error::InvalidArgument(format!("unknown action {other:?}"))),
    }
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// The id whose shim serves this container: the pod sandbox's for CRI containers.
fn grouping(bundle: &Path, id: &str) -> String {
    fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .and_then(|v| v.get("annotations")?.get(SANDBOX_ANNOTATION)?.as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| id.to_string())
}

/// `start`: runs with the bundle as cwd. containerd reads stdout and stderr together as the
/// address, so nothing else may be printed, even on the way to an error.
fn start(flags: &Flags) -> Result<()> {
    let cwd = std::env::current_dir().map_err(io("cwd"))?;
    let group = grouping(&cwd, &flags.id);
    let address = socket_address(&flags.address, &flags.namespace, &group);
    let path = PathBuf::from(socket_path(&address));

    if UnixStream::connect(&path).is_ok() {
        // The pod's shim is already serving.
        containerd_shim::util::write_address(&address)?;
        print!("{}", crate::bootstrap::reply(&address, &flags.publish_binary));
        return Ok(());
    }
    let listener = bind_private(&path)?;
    let fd = listener.as_raw_fd();
    set_cloexec(fd, false)?;
    // Only the read end goes to the daemon: the write end stays close-on-exec, so the daemon
    // sees end of file as soon as this process is gone.
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    set_cloexec(ready_r.as_raw_fd(), false)?;
    let exe = std::env::current_exe().map_err(io("current exe"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &flags.namespace,
        "-id",
        &flags.id,
        "-address",
        &flags.address,
        "-publish-binary",
        &flags.publish_binary,
        "-socket",
        &address,
    ]);
    if flags.debug {
        cmd.arg("-debug");
    }
    // Own process group: a signal to containerd's group must not reach the shim.
    cmd.env(LISTEN_FD_ENV, fd.to_string())
        .env(READY_FD_ENV, ready_r.as_raw_fd().to_string())
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_file(&path);
            return Err(io("spawn shim")(e));
        }
    };
    drop(listener);
    drop(ready_r);
    crate::failpoint::hit("bootstrap:daemon-spawned");
    containerd_shim::util::write_address(&address)?;
    // containerd's score + 1, so that under memory pressure the shim goes before containerd.
    if let Err(e) = containerd_shim::cgroup::adjust_oom_score(child.id()) {
        log::warn!("oom_score_adj: {e}");
    }
    let reply = crate::bootstrap::reply(&address, &flags.publish_binary);
    let mut out = std::io::stdout().lock();
    out.write_all(reply.as_bytes()).map_err(io("write address"))?;
    out.flush().map_err(io("write address"))?;
    // The daemon may serve now. Dying before this line leaves it no client: it exits.
    fs::File::from(ready_w).write_all(b"1").map_err(io("hand over to the shim"))
}

/// In the daemon `start` spawned: waits for `start` to hand over. containerd learns the
/// address only from a `start` that exits 0; one killed before (kill -9, OOM) leaves
/// containerd with an error and no way to reach or clean up this daemon, which would then
/// serve nobody forever. So without the byte the daemon removes its socket (if it is still
/// the one `start` bound) and exits.
fn await_handover(socket: &Path) -> Result<()> {
    use std::io::Read;
    let Some(fd) = std::env::var(READY_FD_ENV).ok().and_then(|v| v.parse::<RawFd>().ok()) else {
        return Ok(());
    };
    let owned = berth_sys::fd::own_inherited(fd).map_err(io("ready fd"))?;
    // The socket `start` bound, to tell it from one a later shim binds at the same path.
    let bound = fs::symlink_metadata(socket).ok();
    let mut ready = fs::File::from(owned);
    let mut byte = [0u8; 1];
    let n = loop {
        match ready.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r.unwrap_or(0),
        }
    };
    if n == 1 {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    let same = |m: &fs::Metadata| bound.as_ref().is_some_and(|b| (b.dev(), b.ino()) == (m.dev(), m.ino()));
    if fs::symlink_metadata(socket).is_ok_and(|m| same(&m)) {
        let _ = fs::remove_file(socket);
    }
    std::process::exit(0);
}

/// `-info` (containerd 1.7+; 1.6 never calls it): RuntimeInfo on stdout, with the runtime
/// binary's `features` JSON. The task options, if any, arrive on stdin as an Any.
fn info() -> Result<()> {
    use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).map_err(io("read options"))?;
    let options =
        if input.is_empty() { None } else { Some(protobuf::well_known_types::any::Any::parse_from_bytes(&input)?) };
    let cfg = RuntimeConfig::from_options(options.as_ref())?;
    let out = Command::new(&cfg.binary)
        .arg("features")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(io(format!("run {} features", cfg.binary)))?;
    if !out.status.success() {
        return Err(Error::Runtime {
            binary: cfg.binary,
            command: "features",
            message: format!("exit status {}", out.status),
        });
    }
    let info = RuntimeInfo {
        name: RUNTIME_ID.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }),
        options: MessageField::from_option(options),
        features: MessageField::some(protobuf::well_known_types::any::Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/features/Features".into(),
            value: out.stdout,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stdout = std::io::stdout().lock();
    info.write_to_writer(&mut stdout)?;
    stdout.flush().map_err(io("write runtime info"))
}

/// A path socket (never abstract, CVE-2020-15257) with mode 0600 in a 0700 directory.
fn bind_private(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    // A socket file nobody answers on is a leftover of a killed shim.
    if path.exists() {
        let _ = fs::remove_file(path);
    }
    // start is single-threaded: nothing else creates files while the mask is narrowed.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(io(format!("bind {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io("chmod shim socket"))?;
    Ok(listener)
}

fn set_cloexec(fd: RawFd, on: bool) -> Result<()> {
    berth_sys::fd::set_cloexec(fd, on).map_err(io("fcntl"))
}

/// `delete`: containerd's cleanup after a shim died. Runs with the bundle as cwd; prints a
/// DeleteResponse (SIGKILL status, as runc's shim) on stdout.
fn delete(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(io("cwd"))?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let cfg = RuntimeConfig::load(&bundle);
    let runtime = Runtime::new(&cfg, &flags.namespace, &bundle);
    if let Err(e) = runtime.delete(&flags.id, true) {
        log::warn!("delete {}: {e}", flags.id);
    }
    crate::failpoint::hit("cleanup:runtime-deleted");
    if let Some(rootfs) = bundle.join("rootfs").to_str() {
        if let Err(e) = containerd_shim::mount::umount_recursive(Some(rootfs), 0) {
            log::warn!("unmount {rootfs}: {e}");
        }
    }
    crate::failpoint::hit("cleanup:rootfs-unmounted");
    let pid = fs::read_to_string(bundle.join("init.pid")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    // The dead shim could not remove its socket; a live one (the pod's) answers and stays.
    let address = socket_address(&flags.address, &flags.namespace, &grouping(&bundle, &flags.id));
    let path = socket_path(&address);
    if Path::new(path).exists() && UnixStream::connect(path).is_err() {
        let _ = fs::remove_file(path);
    }
    crate::failpoint::hit("cleanup:socket-removed");
    let resp = DeleteResponse {
        pid,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: MessageField::some(now()),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    resp.write_to_writer(&mut out)?;
    out.flush().map_err(io("write delete response"))?;
    crate::failpoint::hit("cleanup:response-written");
    Ok(())
}

static EXIT_REQUESTED: AtomicBool = AtomicBool::new(false);

/// The daemon. The main thread is the reaper: every signal the shim handles is blocked in all
/// threads (the mask is set before any thread exists) and taken here with sigwait, so there is
/// no signal handler and no extra thread for it.
fn serve(flags: &Flags) -> Result<()> {
    // First: the log FIFO below is opened for writing, which blocks for ever once containerd,
    // seeing `start` fail, has closed its reading end.
    await_handover(Path::new(socket_path(&flags.socket)))?;
    // One malloc arena: glibc otherwise gives each of the shim's threads its own, and their
    // touched pages are most of an idle shim's private memory. Requests are few and small.
    berth_sys::alloc::limit_arenas(1);
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR1] {
        set.add(s);
    }
    set.thread_block().map_err(sys("block signals"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| io("set child subreaper")(e.into()))?;
    crate::runtime::enable_reaper_mode();
    if let Err(e) = containerd_shim::logger::init(flags.debug, "info", &flags.namespace, &flags.id) {
        // No log FIFO (run by hand): keep going without logs rather than fail.
        let _ = e;
    }

    let listener = match std::env::var(LISTEN_FD_ENV).ok().and_then(|v| v.parse::<RawFd>().ok()) {
        Some(fd) => {
            // start passed this fd to us and nothing else in this process owns it.
            let owned = berth_sys::fd::own_inherited(fd).map_err(io("listen fd"))?;
            set_cloexec(owned.as_raw_fd(), true)?;
            UnixListener::from(owned)
        }
        None => bind_private(Path::new(socket_path(&flags.socket)))?,
    };
    // No other thread exists yet that could read the environment concurrently.
    std::env::remove_var(LISTEN_FD_ENV);
    std::env::remove_var(READY_FD_ENV);

    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let events = Arc::new(Publisher::start(ttrpc_address, flags.namespace.clone())?);
    let service = Arc::new(Service::new(
        flags.namespace.clone(),
        Arc::clone(&events),
        Box::new(|| {
            EXIT_REQUESTED.store(true, Ordering::SeqCst);
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGUSR1);
        }),
    )?);
    let task: Arc<dyn containerd_shim_protos::Task + Send + Sync> = service.clone();
    // Task API v3 (containerd 2.x) has the v2 messages under a new service name: the same
    // handlers are registered under both, and the client picks by the name it calls.
    let mut methods = create_task(task.clone());
    methods.extend(create_task(task).into_iter().map(|(k, v)| (k.replacen(TASK_V2, TASK_V3, 1), v)));
    // A Wait for a running process is parked by the server, not run on a blocked worker.
    let waits = Arc::clone(&service);
    let server =
        Server::new(methods, Box::new(move |path, req| !path.ends_with("/Wait") || waits.wait_ready(&req.payload)));
    let woken = Arc::clone(&server);
    service.set_wake(Box::new(move || woken.wake()));
    server.start(listener)?;
    log::info!("shim serving on {}", flags.socket);

    loop {
        let sig = set.wait().map_err(sys("sigwait"))?;
        match sig {
            Signal::SIGCHLD => reap_all(&service),
            Signal::SIGUSR1 if EXIT_REQUESTED.load(Ordering::SeqCst) => break,
            _ => {}
        }
    }
    let _ = fs::remove_file(socket_path(&flags.socket));
    events.flush_and_stop();
    log::info!("shim exiting");
    // Not joining the server: a blocked Wait in another connection must not keep us alive.
    std::process::exit(0);
}

fn reap_all(service: &Arc<Service>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => dispatch(service, pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => dispatch(service, pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => {
                log::warn!("waitpid: {e}");
                return;
            }
        }
    }
}

fn dispatch(service: &Arc<Service>, pid: i32, code: i32) {
    // Runtime invocations and the rootfs mount helper wait on the library's monitor.
    let _ = containerd_shim::monitor::monitor_notify_by_pid(pid, code);
    service.on_exit(pid, code);
}
