//! Fixtures for the shim tests: a private containerd (own root, state, sockets and config,
//! started and stopped by the test, cleaned up even when the test fails) and a busybox OCI
//! image archive built from Debian's busybox-static.

use std::{
    fs,
    io::Write,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

pub const IMAGE: &str = "docker.io/library/berth-busybox:latest";
pub const SHIM_RUNTIME: &str = "io.containerd.berth.v2";
pub const SHIM_BINARY: &str = "containerd-shim-berth-v2";

/// The directory holding the built shim: `BERTH_SHIM_DIR`, else the target profile directory
/// this binary was built into (target/<profile>[/deps]/<exe> → target/<profile>).
pub fn shim_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERTH_SHIM_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().map(Path::to_path_buf).expect("exe dir");
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The runtime binary the shim runs: `BERTH_RUNTIME` (e.g. /usr/sbin/runc for a differential
/// run), else berth as the other conformance tests pick it ($BERTH or the newest build).
pub fn runtime_binary() -> String {
    std::env::var("BERTH_RUNTIME")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| crate::runtime::runtime_binary().to_string_lossy().into_owned())
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

/// Writes an OCI image layout archive with one layer: busybox-static and its applets.
pub fn build_busybox_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    for d in ["bin", "tmp", "proc", "dev", "sys", "etc"] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static is installed");
    for applet in [
        "sh", "echo", "sleep", "cat", "true", "false", "ls", "ps", "dd", "kill", "seq", "tty",
        "stty", "head", "wc", "grep", "yes",
    ] {
        let _ = symlink("busybox", rootfs.join("bin").join(applet));
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
    let layer = dir.join("layer.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar layer");
    let layer_bytes = fs::read(&layer).expect("layer");
    let layer_digest = sha256_hex(&layer_bytes);
    let oci = dir.join("oci");
    let blobs = oci.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("blobs");
    fs::write(blobs.join(&layer_digest), &layer_bytes).expect("blob");
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_digest}"]}}}}"#
    );
    let config_digest = sha256_hex(config.as_bytes());
    fs::write(blobs.join(&config_digest), &config).expect("config");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer_bytes.len()
    );
    let manifest_digest = sha256_hex(manifest.as_bytes());
    fs::write(blobs.join(&manifest_digest), &manifest).expect("manifest");
    fs::write(
        oci.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_digest}","size":{},"annotations":{{"io.containerd.image.name":"{IMAGE}","org.opencontainers.image.ref.name":"latest"}}}}]}}"#,
            manifest.len()
        ),
    )
    .expect("index");
    fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let archive = dir.join("busybox-oci.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&oci)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar image");
    let _ = fs::remove_dir_all(&rootfs);
    let _ = fs::remove_file(&layer);
    archive
}

/// A containerd of the test's own. Dropping it kills what it runs and removes its state.
pub struct Containerd {
    pub dir: PathBuf,
    pub address: String,
    child: Option<Child>,
    image: PathBuf,
    namespaces: Vec<String>,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = PathBuf::from(format!(
            "/tmp/bshim-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&dir).expect("containerd dir");
        let address = dir.join("c.sock").to_string_lossy().into_owned();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
"#,
            d = dir.display()
        );
        fs::write(dir.join("config.toml"), config).expect("config");
        let image = build_busybox_image(&dir);
        let mut c = Containerd {
            dir,
            address,
            child: None,
            image,
            namespaces: Vec::new(),
        };
        c.spawn();
        c.use_namespace("default");
        c
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .expect("log");
        let path = format!(
            "{}:{}",
            shim_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .env("BERTH_RUNTIME", runtime_binary())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ctr_in("default", &["version"]).status.success() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        panic!(
            "containerd did not come up; see {}",
            self.dir.join("containerd.log").display()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Imports the image into a namespace (and remembers it for cleanup).
    pub fn use_namespace(&mut self, ns: &str) {
        let image = self.image.to_string_lossy().into_owned();
        let out = self.ctr_in(ns, &["images", "import", &image]);
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.namespaces.push(ns.to_string());
    }

    pub fn ctr_in(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ctr")
            .args(["-a", &self.address, "-n", ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_in("default", args)
    }

    /// `ctr` as a child, e.g. `ctr events` or an attached `ctr run`.
    pub fn ctr_spawn(&self, ns: &str, args: &[&str], stdout: Stdio) -> Child {
        Command::new("ctr")
            .args(["-a", &self.address, "-n", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr")
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            for ns in self.namespaces.clone() {
                let out = self.ctr_in(&ns, &["tasks", "ls", "-q"]);
                for id in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = self.ctr_in(&ns, &["tasks", "kill", "-a", "-s", "KILL", id]);
                    let _ = self.ctr_in(&ns, &["tasks", "rm", "-f", id]);
                }
                let out = self.ctr_in(&ns, &["containers", "ls", "-q"]);
                for id in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = self.ctr_in(&ns, &["containers", "rm", id]);
                }
            }
        }
        self.kill9();
        // Anything still mounted under our root (a failed test) goes before the directory.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.to_string_lossy().into_owned();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
        for ns in &self.namespaces {
            crate::leak::remove_empty_cgroup_parent(ns);
        }
    }
}

/// The shim socket path containerd's shim library derives for (address, namespace, id).
pub fn shim_socket_path(address: &str, ns: &str, id: &str) -> PathBuf {
    PathBuf::from(format!(
        "/run/containerd/s/{}",
        sha256_hex(format!("{address}/{ns}/{id}").as_bytes())
    ))
}

/// Pids of our shims: those serving this containerd.
pub fn shim_pids(address: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_shim = args.first().is_some_and(|a| a.ends_with(SHIM_BINARY));
            if is_shim && args.iter().any(|a| a == address) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Children of `pid` and their state letters (from /proc/<child>/stat).
pub fn children_states(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            let mut f = rest.split(' ');
            let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
            let ppid: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            if ppid == pid {
                out.push((child, state));
            }
        }
    }
    out
}

/// Cgroup directories, in any v1 hierarchy, named after a container of the namespace.
pub fn container_cgroups(ns: &str, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join(ns).join(id);
            if p.exists() {
                found.push(p);
            }
        }
    }
    found
}

/// Polls `f` until it returns Some or the deadline passes (waiting, not timing: the deadline
/// only bounds a hang).
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

/// How many of a process's fds are pipes or FIFOs (what a leaking shim would leave in
/// containerd: the shim log FIFO, stdio FIFOs).
pub fn pipe_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|l| {
            let s = l.to_string_lossy();
            s.starts_with("pipe:") || s.contains("fifo") || s.ends_with("/log")
        })
        .count()
}
