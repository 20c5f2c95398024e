//! Helpers for the shim tests: the shared containerd fixture (`containerd.rs`) set up to find
//! the built shim, a busybox OCI image for it (`image.rs`), and what the tests inspect of the
//! shims (pids, sockets, children, cgroups, pipes).

use std::{
    fs,
    path::{Path, PathBuf},
    thread::sleep,
    time::{Duration, Instant},
};

pub use crate::containerd::Containerd;
use crate::{
    containerd::{FixtureError, Options},
    image::{busybox_layer, sha256_hex, write_oci_archive, ImageError},
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
        .unwrap_or_else(|| {
            crate::runtime::runtime_binary()
                .to_string_lossy()
                .into_owned()
        })
}

/// The busybox image of the shim tests, written into the containerd's directory.
fn image_archive(cd: &Containerd) -> PathBuf {
    cd.dir.path().join("busybox-oci.tar")
}

/// The shim tests' containerd: the fixture of `containerd.rs` with the built shim first on its
/// PATH, `BERTH_RUNTIME` for the shim, and the busybox image imported into "default".
pub fn shim_containerd() -> Result<Containerd, Box<dyn std::error::Error>> {
    let cd = Containerd::start_with(Options {
        shim_dir: Some(shim_dir()),
        env: vec![("BERTH_RUNTIME".into(), runtime_binary())],
        ..Default::default()
    })?;
    write_image(&image_archive(&cd))?;
    use_namespace(&cd, "default")?;
    Ok(cd)
}

/// The shim tests' image (`IMAGE`, also run by containerd in the cgroup v2 guest): busybox_layer
/// plus the applets only these tests run, as an OCI archive at `out`.
pub fn write_image(out: &Path) -> Result<(), ImageError> {
    let mut layer = busybox_layer()?;
    for applet in [
        "echo", "false", "ps", "dd", "kill", "seq", "tty", "stty", "grep", "yes", "tail",
    ] {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    write_oci_archive(out, IMAGE, &[layer], &["sh"])
}

/// Imports the shim tests' image into another namespace.
pub fn use_namespace(cd: &Containerd, ns: &str) -> Result<(), FixtureError> {
    cd.import(ns, &image_archive(cd))
}

/// The shim socket path containerd's shim library derives for (address, namespace, id).
pub fn shim_socket_path(address: &Path, ns: &str, id: &str) -> PathBuf {
    PathBuf::from(format!(
        "/run/containerd/s/{}",
        sha256_hex(format!("{}/{ns}/{id}", address.display()).as_bytes())
    ))
}

/// Pids of our shims: those serving this containerd.
pub fn shim_pids(address: &Path) -> Vec<u32> {
    shims_of(SHIM_BINARY, address)
}

/// Pids of the processes running `binary` (a shim's file name) for the containerd at `address`.
pub fn shims_of(binary: &str, address: &Path) -> Vec<u32> {
    let address = address.to_string_lossy();
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
            let is_shim = args.first().is_some_and(|a| a.ends_with(binary));
            if is_shim && args.iter().any(|a| *a == address) {
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
