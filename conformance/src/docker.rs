//! A private dockerd for the Docker tests: its own data-root, exec-root,
//! pidfile, socket and containerd, no host networking changes, and the
//! runtime under test registered as `berth` through a wrapper script that
//! records every command line the containerd shim passes.
//!
//! One daemon per test binary ([`dockerd`]), stopped by PID and scrubbed at
//! process exit (an `atexit` hook), even when tests failed.

use crate::rootfs::Rootfs;
use crate::runtime::{runtime_binary, Invocation, Out};
use crate::util::{kill_pid, pid_alive};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "berth-busybox:test";

pub struct Dockerd {
    /// Short on purpose: exec-root socket paths must stay under 108 bytes.
    pub dir: PathBuf,
    pub sock: PathBuf,
    /// One line per runtime invocation by the shim: "<argv...>".
    pub argv_log: PathBuf,
    pub docker_cli: PathBuf,
    child: Mutex<Option<Child>>,
    /// dockerd's containers share /docker with every other private dockerd of this process.
    cgroup_parent: crate::leak::CgroupParentHold,
}

static DOCKERD: OnceLock<Dockerd> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some(d) = DOCKERD.get() {
        d.stop();
    }
}

/// The shared daemon, started on first use.
pub fn dockerd() -> &'static Dockerd {
    DOCKERD.get_or_init(|| {
        let d = Dockerd::start();
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        d
    })
}

fn docker_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKER") {
        return PathBuf::from(p);
    }
    // Debian's CLI matches Debian's 20.10 daemon; a newer CLI may be first on PATH.
    let deb = PathBuf::from("/usr/bin/docker");
    if deb.exists() {
        deb
    } else {
        PathBuf::from("docker")
    }
}

impl Dockerd {
    fn start() -> Dockerd {
        Dockerd::start_with("", &[])
    }

    /// A second private daemon with extra dockerd flags (e.g. `--userns-remap`), in its own
    /// dir `/tmp/bd-<pid><tag>`. The caller stops it ([`Dockerd::stop`]).
    pub fn start_with(tag: &str, extra: &[&str]) -> Dockerd {
        let dir = PathBuf::from(format!("/tmp/bd-{}{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("cannot create dockerd dir");
        let sock = dir.join("docker.sock");
        let argv_log = dir.join("runtime-argv.log");
        let wrapper = dir.join("berth-wrap");
        crate::util::write_argv_recording_wrapper(&wrapper, &argv_log, &runtime_binary());
        fs::write(dir.join("daemon.json"), "{}\n").expect("cannot write daemon.json");
        let log = fs::File::create(dir.join("dockerd.log")).expect("cannot create dockerd.log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("x"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--ip6tables=false"])
            .args(["--userland-proxy=false", "--log-level=info"])
            .arg("--add-runtime")
            .arg(format!("berth={}", wrapper.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("cannot spawn dockerd");
        let d = Dockerd {
            dir,
            sock,
            argv_log,
            docker_cli: docker_cli(),
            child: Mutex::new(Some(child)),
            cgroup_parent: crate::leak::CgroupParentHold::new("docker"),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if d.docker(&["version", "--format", "{{.Server.Version}}"]).ok() {
                break;
            }
            let exited =
                d.child.lock().expect("lock").as_mut().map(|c| c.try_wait().ok().flatten().is_some()).unwrap_or(true);
            if exited || Instant::now() >= deadline {
                let log = fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default();
                d.stop();
                panic!(
                    "private dockerd did not come up; its log:\n{}",
                    log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        d.import_image();
        d
    }

    fn import_image(&self) {
        let root = self.dir.join("img");
        Rootfs::busybox(&root);
        let tar = self.dir.join("rootfs.tar");
        let st = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().expect("run tar");
        assert!(st.success(), "tar of the busybox rootfs failed");
        self.docker_args(&["import", tar.to_str().expect("tar path is UTF-8"), IMAGE]).expect_ok("docker import");
    }

    /// `docker -H <sock> <args>`
    pub fn docker(&self, args: &[&str]) -> Out {
        self.docker_args(args)
    }

    fn docker_args(&self, args: &[&str]) -> Out {
        Invocation::new(&self.docker_cli)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args.iter().copied())
            .timeout(Duration::from_secs(120))
            .run()
    }

    /// `docker run --rm --runtime berth --network none <opts> IMAGE <cmd>` (with Docker's
    /// default seccomp profile).
    pub fn run(&self, opts: &[&str], cmd: &[&str]) -> Out {
        self.run_on("berth", opts, cmd)
    }

    /// [`Dockerd::run`] on `runtime`: "berth", or "runc" (dockerd's default) for the
    /// side-by-side comparison.
    pub fn run_on(&self, runtime: &str, opts: &[&str], cmd: &[&str]) -> Out {
        self.docker(&Self::run_args(&["run", "--rm"], runtime, opts, cmd))
    }

    /// `docker run -d` on `runtime` with the same defaults as [`Dockerd::run`]; returns the id.
    pub fn run_detached_on(&self, runtime: &str, opts: &[&str], cmd: &[&str]) -> String {
        let out = self.docker(&Self::run_args(&["run", "-d"], runtime, opts, cmd));
        out.expect_ok("docker run -d");
        out.stdout.trim().to_string()
    }

    /// The arguments of `docker <verb...> --runtime <runtime> --network none <opts> IMAGE
    /// <cmd>` (with Docker's default seccomp profile).
    pub fn run_args<'a>(verb: &[&'a str], runtime: &'a str, opts: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
        let mut a = verb.to_vec();
        a.extend_from_slice(&["--runtime", runtime, "--network", "none"]);
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        a
    }

    /// The full command line of `docker <args>` against this daemon, for callers that run
    /// it themselves (e.g. under a pty with `script`).
    pub fn docker_argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            self.docker_cli.to_string_lossy().into_owned(),
            "-H".into(),
            format!("unix://{}", self.sock.display()),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// Everything the shim made the runtime do so far.
    pub fn runtime_argv(&self) -> String {
        fs::read_to_string(&self.argv_log).unwrap_or_default()
    }

    /// Stops the daemon by PID, kills what it spawned, unmounts and removes its dirs.
    pub fn stop(&self) {
        let dir_s = self.dir.to_string_lossy().into_owned();
        let ids = self.docker(&["ps", "-aq"]);
        for id in ids.stdout.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut child) = self.child.lock().map(|mut g| g.take()).unwrap_or(None) {
            let pid = child.id() as i32;
            kill_pid(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // containerd and its shims were started by dockerd with paths under our dir.
        for (pid, _) in crate::leak::processes_mentioning(&[&dir_s]) {
            kill_pid(pid, libc::SIGKILL);
        }
        let _ = poll_until_quiet(&dir_s);
        crate::util::unmount_all_under(&self.dir);
        if std::env::var_os("BERTH_KEEP_DOCKER_ARGV").is_some() {
            let _ = fs::copy(&self.argv_log, "/tmp/berth-docker-runtime-argv.log");
        }
        // dockerd's containers share /docker; the runtime leaves it behind when it empties.
        self.cgroup_parent.release();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn poll_until_quiet(dir: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if crate::leak::processes_mentioning(&[dir]).iter().all(|(p, _)| !pid_alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
