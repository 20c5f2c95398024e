//! A private containerd 1.6 for tests: its own root, state, gRPC and ttrpc
//! sockets, the CRI plugin disabled so it starts fast, proxy snapshotters
//! configured, shims found on a PATH of the test's choosing; and a
//! berth-snapshotter process for it to talk to. Both are stopped by PID on
//! drop (with every task and shim containerd left), and everything they
//! mounted under their directories is unmounted before the directories are
//! removed. The shim tests, the snapshotter tests and both benches use this
//! one fixture.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::unmount_all_under;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    NotReady(String),
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command { cmd: String, status: String, stderr: String },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FixtureError {
    let context = context.into();
    move |source| FixtureError::Io { context, source }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Where the berth-snapshotter binary is: `$BERTH_SNAPSHOTTER`, else the newer of the
/// workspace's release and debug builds.
pub fn snapshotter_binary() -> PathBuf {
    crate::util::workspace_binary("berth-snapshotter", "BERTH_SNAPSHOTTER")
}

/// How a [`SnapshotterProcess`] runs beyond its own root and socket.
#[derive(Debug, Clone)]
pub struct SnapshotterOptions {
    /// The berth-snapshotter binary (default: [`snapshotter_binary`]).
    pub binary: PathBuf,
    /// Its `--log-level`.
    pub log_level: String,
    /// Extra environment (crash points, for one).
    pub env: Vec<(String, String)>,
}

impl Default for SnapshotterOptions {
    fn default() -> Self {
        SnapshotterOptions { binary: snapshotter_binary(), log_level: "warn".into(), env: Vec::new() }
    }
}

/// A berth-snapshotter process on a private root and socket (for containerd's proxy plugin,
/// or driven over gRPC by the snapshotter's own tests); it can be stopped, killed and started
/// again on the same root. Dropping it stops it and unmounts what is left under its directory.
pub struct SnapshotterProcess {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub socket: PathBuf,
    opts: SnapshotterOptions,
    child: Option<Child>,
}

impl SnapshotterProcess {
    pub fn start() -> Result<Self, FixtureError> {
        Self::start_with(SnapshotterOptions::default())
    }

    /// Starts the snapshotter as `opts` say, and waits until its socket is there.
    pub fn start_with(opts: SnapshotterOptions) -> Result<Self, FixtureError> {
        let dir = tempfile::Builder::new().prefix("berth-snap-").tempdir().map_err(io("tempdir"))?;
        let root = dir.path().join("root");
        let socket = dir.path().join("snapshotter.sock");
        let mut p = SnapshotterProcess { dir, root, socket, opts, child: None };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), FixtureError> {
        let bin = &self.opts.binary;
        let mut child = Command::new(bin)
            .arg("--root")
            .arg(&self.root)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--log-level")
            .arg(&self.opts.log_level)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .spawn()
            .map_err(io(format!("starting {} (cargo build -p berth-snapshotter)", bin.display())))?;
        for _ in 0..1000 {
            if self.socket.exists() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(FixtureError::NotReady(format!("berth-snapshotter exited: {st}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(FixtureError::NotReady("berth-snapshotter socket did not appear".into()))
    }

    /// Starts the snapshotter again on the same root and socket, with `env` as its extra
    /// environment; it must have been stopped, killed or have died first.
    pub fn restart(&mut self, env: Vec<(String, String)>) -> Result<(), FixtureError> {
        if self.child.is_some() {
            return Err(FixtureError::NotReady(
                "berth-snapshotter is still running: stop it before restarting it".into(),
            ));
        }
        self.opts.env = env;
        self.spawn()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM, and its exit status once it has exited (None if it was not running).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().ok()
    }

    /// SIGKILL, and reaped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for a snapshotter that is to die by itself (at a crash point); its exit status.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take()?.wait().ok()
    }

    /// Entries left in `<root>/snapshots`.
    pub fn layer_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("snapshots"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for SnapshotterProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(5));
        }
        unmount_all_under(self.dir.path());
    }
}

/// What a test's containerd runs with beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Options<'a> {
    /// `[proxy_plugins.<name>]` snapshot plugins at these sockets.
    pub proxies: &'a [(&'a str, &'a Path)],
    /// Put first on containerd's PATH: where it finds `containerd-shim-<name>-v2`.
    pub shim_dir: Option<PathBuf>,
    /// Extra environment for containerd and the shims it starts.
    pub env: Vec<(String, String)>,
    /// The garbage collector's first run after start-up (containerd's default: 100ms), as a
    /// duration (`"1h"`): a test creating what nothing holds (a `ctr snapshots view` has no
    /// lease and no gc.root label) sets it beyond its own end, so that only its explicit
    /// collections (`--sync` removals) take such snapshots.
    pub gc_startup_delay: Option<&'a str>,
}

pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    child: Option<Child>,
    /// Namespaces ctr was used in: their cgroup parents are removed at the end.
    namespaces: std::cell::RefCell<std::collections::BTreeMap<String, crate::leak::CgroupParentHold>>,
    shim_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Containerd {
    /// Starts containerd with `proxies` as `[proxy_plugins.<name>]` snapshot
    /// plugins, and waits until `ctr version` answers.
    pub fn start(proxies: &[(&str, &Path)]) -> Result<Self, FixtureError> {
        Self::start_with(Options { proxies, ..Default::default() })
    }

    /// Starts containerd as `opts` say, and waits until `ctr version` answers.
    pub fn start_with(opts: Options<'_>) -> Result<Self, FixtureError> {
        let proxies = opts.proxies;
        let dir = tempfile::Builder::new().prefix("berth-ctd-").tempdir().map_err(io("tempdir"))?;
        let d = dir.path();
        let address = d.join("containerd.sock");
        let mut cfg = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\"]\n\
             [grpc]\n  address = \"{addr}\"\n[ttrpc]\n  address = \"{addr}.ttrpc\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            addr = address.display(),
        );
        for (name, sock) in proxies {
            cfg.push_str(&format!(
                "[proxy_plugins.{name}]\n  type = \"snapshot\"\n  address = \"{}\"\n",
                sock.display()
            ));
        }
        if let Some(delay) = opts.gc_startup_delay {
            cfg.push_str(&format!("[plugins.\"io.containerd.gc.v1.scheduler\"]\n  startup_delay = \"{delay}\"\n"));
        }
        let cfg_path = d.join("config.toml");
        fs::write(&cfg_path, cfg).map_err(io("writing config.toml"))?;
        let mut c = Containerd {
            dir,
            address,
            child: None,
            namespaces: Default::default(),
            shim_dir: opts.shim_dir,
            env: opts.env,
        };
        c.spawn()?;
        Ok(c)
    }

    /// Starts the containerd process on the existing config and state (first start, or a
    /// restart after `kill9`), appending to its log.
    fn spawn(&mut self) -> Result<(), FixtureError> {
        let d = self.dir.path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("containerd.log"))
            .map_err(io("opening containerd.log"))?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(d.join("config.toml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("containerd.log"))?)
            .stderr(log);
        if let Some(shims) = &self.shim_dir {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", shims.display()));
        }
        self.child = Some(cmd.spawn().map_err(io("starting containerd"))?);
        let c = self;
        for _ in 0..1500 {
            if c.address.exists() {
                if let Ok(o) = c.ctr_raw("default", &["version"]) {
                    if o.status.success() {
                        return Ok(());
                    }
                }
            }
            if let Some(Ok(Some(st))) = c.child.as_mut().map(|ch| ch.try_wait()) {
                return Err(FixtureError::NotReady(format!("containerd exited: {st}; log: {}", c.log())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(FixtureError::NotReady(format!("containerd did not answer; log: {}", c.log())))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` against this containerd in `namespace` (remembered for the cleanup).
    fn ctr_command(&self, namespace: &str, args: &[&str]) -> Command {
        self.namespaces
            .borrow_mut()
            .entry(namespace.to_string())
            .or_insert_with(|| crate::leak::CgroupParentHold::new(namespace));
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.address).arg("--namespace").arg(namespace).args(args).stdin(Stdio::null());
        cmd
    }

    pub fn ctr_raw(&self, namespace: &str, args: &[&str]) -> Result<Output, FixtureError> {
        self.ctr_command(namespace, args).output().map_err(io("running ctr"))
    }

    /// Runs ctr and returns its stdout, or an error with its stderr.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Result<String, FixtureError> {
        let o = self.ctr_raw(namespace, args)?;
        if !o.status.success() {
            return Err(FixtureError::Command {
                cmd: format!("ctr -n {namespace} {}", args.join(" ")),
                status: o.status.to_string(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `ctr` as a child with stdout where the caller wants it (`ctr events`, an attached
    /// `ctr run`); stderr is piped.
    pub fn ctr_spawn(&self, namespace: &str, args: &[&str], stdout: Stdio) -> Result<Child, FixtureError> {
        self.ctr_command(namespace, args).stdout(stdout).stderr(Stdio::piped()).spawn().map_err(io("running ctr"))
    }

    /// `ctr images import` of an OCI archive into `namespace`.
    pub fn import(&self, namespace: &str, archive: &Path) -> Result<(), FixtureError> {
        let archive = archive.to_string_lossy();
        self.ctr(namespace, &["images", "import", &archive]).map(drop)
    }

    /// Kills containerd with SIGKILL (its shims keep running) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills containerd with SIGKILL and starts it again on the same state.
    pub fn restart_after_kill9(&mut self) -> Result<(), FixtureError> {
        self.kill9();
        self.spawn()
    }
}

impl Containerd {
    /// Force-deletes every task left running (a test that failed midway),
    /// so their shims exit and their rootfs mounts go.
    fn delete_leftover_tasks(&self) {
        let Ok(nss) = self.ctr("default", &["namespaces", "ls", "-q"]) else {
            return;
        };
        for ns in nss.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Ok(tasks) = self.ctr(ns, &["tasks", "ls", "-q"]) else {
                continue;
            };
            for t in tasks.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let _ = self.ctr_raw(ns, &["tasks", "delete", "--force", t]);
            }
        }
    }
}

/// PIDs of processes whose command line mentions `dir` (shims started by
/// our containerd carry its socket path), other than ourselves.
fn processes_mentioning(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.delete_leftover_tasks();
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
        for pid in processes_mentioning(self.dir.path()) {
            // SAFETY: kill(2) on a specific pid we found to be one of our
            // containerd's shims.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unmount_all_under(self.dir.path());
        for hold in self.namespaces.borrow().values() {
            hold.release();
        }
    }
}
