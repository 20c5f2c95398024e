//! A private podman for the podman tests: its own `--root`, `--runroot`, `--tmpdir` and
//! network config dir under one temp dir, vfs storage, the cgroupfs manager, file events, no
//! systemd and no network set-up (`--network none`). The runtime is chosen per command
//! with `--runtime`: berth through a wrapper script that records every command line
//! conmon and podman pass, or runc.
//!
//! One store per test binary ([`podman`]), emptied and removed at process exit (an
//! `atexit` hook), even when tests failed.
//!
//! [`rootless_podman`] is the same for rootless podman: podman runs as the test user
//! (`test_user`) with its own HOME and XDG_RUNTIME_DIR under the store's dir, makes its user
//! namespace from the user's subordinate ids with newuidmap, and runs conmon and the runtime
//! in it; the default rootless network (slirp4netns) is kept. At exit its pause process
//! (which holds that user namespace) is killed with the rest.

use crate::image::{busybox_layer, write_oci_archive};
use crate::runtime::{runtime_binary, Invocation, Out};
use crate::util::kill_pid;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub const IMAGE: &str = "localhost/berth-busybox:test";

/// Where containers/image keeps its blob cache for root; podman has no flag to move it.
const BLOB_CACHE_DIR: &str = "/var/lib/containers";

/// The cgroup podman's cgroupfs manager puts conmon and every container under.
const CGROUP_PARENT: &str = "libpod_parent";

pub struct Podman {
    pub dir: PathBuf,
    /// One line per runtime invocation on berth: "<argv...>".
    pub argv_log: PathBuf,
    wrapper: PathBuf,
    made_blob_cache: bool,
    /// Rootless: the `setpriv` arguments that run podman as the test user.
    as_user: Option<Vec<String>>,
    /// Shared with every other podman store of this process.
    cgroup_parent: crate::leak::CgroupParentHold,
}

static PODMAN: OnceLock<Podman> = OnceLock::new();
static ROOTLESS: OnceLock<Podman> = OnceLock::new();
static BLOB_CACHE_PREEXISTED: OnceLock<bool> = OnceLock::new();

/// Every store's containers, and conmon's own cgroup, go under `CGROUP_PARENT`.
fn cgroup_parent_hold() -> crate::leak::CgroupParentHold {
    crate::leak::CgroupParentHold::with_children(CGROUP_PARENT, &["conmon"])
}

extern "C" fn stop_at_exit() {
    for p in [PODMAN.get(), ROOTLESS.get()].into_iter().flatten() {
        p.stop();
    }
}

/// The shared rootless store, set up on first use.
pub fn rootless_podman() -> &'static Podman {
    ROOTLESS.get_or_init(|| {
        let p = Podman::start_rootless();
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        p
    })
}

/// The shared store, set up on first use.
pub fn podman() -> &'static Podman {
    PODMAN.get_or_init(|| {
        let p = Podman::start();
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        p
    })
}

impl Podman {
    fn start() -> Podman {
        Podman::start_with("")
    }

    /// A second private store in `/tmp/bp-<pid><tag>`, for a test that must not share one:
    /// podman chowns the vfs layer dir to the mapped root of a `--uidmap` container, which
    /// races with containers created in the same store at the same time. The caller stops it
    /// ([`Podman::stop`]).
    pub fn start_with(tag: &str) -> Podman {
        let dir = PathBuf::from(format!("/tmp/bp-{}{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("cannot create podman dir");
        let argv_log = dir.join("runtime-argv.log");
        let wrapper = dir.join("berth-wrap");
        crate::util::write_argv_recording_wrapper(&wrapper, &argv_log, &runtime_binary());
        // Decided once per process: a second store must not take the first one's cache for the host's.
        let made_blob_cache = !*BLOB_CACHE_PREEXISTED.get_or_init(|| Path::new(BLOB_CACHE_DIR).exists());
        let p = Podman { dir, argv_log, wrapper, made_blob_cache, as_user: None, cgroup_parent: cgroup_parent_hold() };
        p.loaded()
    }

    /// A store of the test user's in `/tmp/bpr-<pid>`: podman as that user, rootless.
    fn start_rootless() -> Podman {
        use std::os::unix::fs::{chown, PermissionsExt};
        let dir = PathBuf::from(format!("/tmp/bpr-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("cannot create podman dir");
        // The user reaches its own dirs, the image archive and the runtime wrapper in here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod podman dir");
        let home = crate::test_user::owned_dir(&dir.join("home"));
        let xdg = crate::test_user::owned_dir(&dir.join("xdg"));
        for sub in ["root", "run", "tmp", "net"] {
            crate::test_user::owned_dir(&dir.join(sub));
        }
        let argv_log = dir.join("runtime-argv.log");
        fs::write(&argv_log, "").expect("create argv log");
        let (uid, gid) = crate::test_user::ids();
        // The runtime runs as root of podman's user namespace, which is the user here.
        chown(&argv_log, Some(uid), Some(gid)).expect("chown argv log");
        // A copy the user can execute wherever the checkout is (a home dir may be 0700).
        let berth = dir.join("berth");
        fs::copy(runtime_binary(), &berth).expect("copy berth");
        let wrapper = dir.join("berth-wrap");
        crate::util::write_argv_recording_wrapper(&wrapper, &argv_log, &berth);
        let as_user = Some(crate::test_user::setpriv_args(&home, Some(&xdg)));
        Podman { dir, argv_log, wrapper, made_blob_cache: false, as_user, cgroup_parent: cgroup_parent_hold() }.loaded()
    }

    /// Loads the test image; a failed load cleans up here (nothing is registered for exit yet).
    fn loaded(self) -> Podman {
        if let Err(e) = self.load_image() {
            self.stop();
            panic!("{e}");
        }
        self
    }

    /// `podman` itself, as the test user when rootless.
    fn command(&self) -> Invocation {
        match &self.as_user {
            None => Invocation::new(Path::new("podman")),
            Some(args) => Invocation::new(Path::new("setpriv")).args(args.iter().map(String::as_str)).arg("podman"),
        }
    }

    fn load_image(&self) -> Result<(), String> {
        let mut layer = busybox_layer().map_err(|e| e.to_string())?;
        for applet in ["grep", "cut", "tr", "kill", "readlink", "hostname", "pwd", "env", "ps", "touch", "tty", "stty"]
        {
            layer = layer.symlink(&format!("bin/{applet}"), "busybox");
        }
        let archive = self.dir.join("image.tar");
        write_oci_archive(&archive, IMAGE, &[layer], &["sh"]).map_err(|e| e.to_string())?;
        let out = self.podman(&["load", "-i", &archive.to_string_lossy()]);
        if !out.ok() {
            return Err(format!("podman load failed:\n{out}"));
        }
        // The archive's ref name is the tag only; give the image its full name.
        let id = out.stdout.lines().last().and_then(|l| l.rsplit(' ').next()).unwrap_or("").to_string();
        if !self.podman(&["image", "exists", IMAGE]).ok() {
            let tag = self.podman(&["tag", &id, IMAGE]);
            if !tag.ok() {
                return Err(format!("podman tag failed:\n{tag}"));
            }
        }
        Ok(())
    }

    /// The runtime binary podman is given for `rt`: "berth" (through the recording
    /// wrapper) or "runc".
    pub fn runtime_path(&self, rt: &str) -> PathBuf {
        match rt {
            "berth" => self.wrapper.clone(),
            "runc" => PathBuf::from("/usr/sbin/runc"),
            "crun" => PathBuf::from("/usr/bin/crun"),
            other => PathBuf::from(other),
        }
    }

    /// The global flags that keep podman inside this store.
    fn global_args(&self) -> Vec<String> {
        let d = |sub: &str| self.dir.join(sub).to_string_lossy().into_owned();
        vec![
            "--root".into(),
            d("root"),
            "--runroot".into(),
            d("run"),
            "--tmpdir".into(),
            d("tmp"),
            "--network-config-dir".into(),
            d("net"),
            "--storage-driver".into(),
            "vfs".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
        ]
    }

    /// `podman <global flags> <args>` with podman's default runtime.
    pub fn podman(&self, args: &[&str]) -> Out {
        self.command().args(self.global_args()).args(args.iter().copied()).timeout(Duration::from_secs(120)).run()
    }

    /// `podman <global flags> --runtime <rt> <args>`.
    pub fn podman_on(&self, rt: &str, args: &[&str]) -> Out {
        self.command()
            .args(self.global_args())
            .arg("--runtime")
            .arg(self.runtime_path(rt))
            .args(args.iter().copied())
            .timeout(Duration::from_secs(120))
            .run()
    }

    /// The arguments of `podman <verb...> --network none <ulimits> <opts> IMAGE <cmd>` (with
    /// podman's default seccomp profile). podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of
    /// 1048576, above this host's hard limits, which root without CAP_SYS_RESOURCE cannot
    /// raise (runc fails the same way), so the tests ask for limits below them.
    pub fn run_args<'a>(verb: &[&'a str], opts: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
        let mut a = verb.to_vec();
        a.extend_from_slice(&["--network", "none"]);
        a.extend_from_slice(&["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]);
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        a
    }

    /// `podman --runtime <rt> run --rm ...` (see [`Podman::run_args`]).
    pub fn run_on(&self, rt: &str, opts: &[&str], cmd: &[&str]) -> Out {
        self.podman_on(rt, &Self::run_args(&["run", "--rm"], opts, cmd))
    }

    /// `podman --runtime <rt> run -d ...`; returns the full container id.
    pub fn run_detached_on(&self, rt: &str, opts: &[&str], cmd: &[&str]) -> String {
        let out = self.podman_on(rt, &Self::run_args(&["run", "-d"], opts, cmd));
        out.expect_ok("podman run -d");
        out.stdout.trim().to_string()
    }

    /// Everything berth was asked to do so far.
    pub fn runtime_argv(&self) -> String {
        fs::read_to_string(&self.argv_log).unwrap_or_default()
    }

    /// What container `id` left on the host: live processes (conmon, the container's),
    /// mounts and cgroups naming it. Empty means clean.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = crate::leak::processes_mentioning(&[id])
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid}: {cmd}"))
            .collect();
        v.extend(
            fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(id))
                .map(|l| format!("mount: {l}")),
        );
        v.extend(crate::leak::cgroup_dirs_containing(id).into_iter().map(|c| format!("cgroup: {}", c.display())));
        v
    }

    /// Removes every container and image, kills what is left of conmon, unmounts and
    /// removes the store, the cgroup parent podman made and the blob cache if it was ours.
    pub fn stop(&self) {
        let dir_s = self.dir.to_string_lossy().into_owned();
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        let _ = self.podman(&["rmi", "-af"]);
        // Rootless: the pause process podman leaves to hold its user namespace.
        if let Some(pid) = fs::read_to_string(self.dir.join("xdg/libpod/tmp/pause.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            kill_pid(pid, libc::SIGKILL);
        }
        for (pid, _) in crate::leak::processes_mentioning(&[&dir_s]) {
            kill_pid(pid, libc::SIGKILL);
        }
        crate::util::unmount_all_under(&self.dir);
        if std::env::var_os("BERTH_KEEP_PODMAN_ARGV").is_some() {
            let _ = fs::copy(&self.argv_log, "/tmp/berth-podman-runtime-argv.log");
        }
        // Runtimes leave the parent (and conmon's cgroup in it) behind once empty.
        self.cgroup_parent.release();
        if self.made_blob_cache {
            let _ = fs::remove_dir_all(BLOB_CACHE_DIR);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
