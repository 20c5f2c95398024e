//! Helpers for the shim tests (conformance/tests/shim.rs, shim/tests/task_api.rs): the shared
//! containerd fixture (`containerd.rs`) set up to find the built shim, a busybox OCI image for
//! it (`image.rs`), the `ctr` steps every test takes (run, wait for a status, kill and
//! remove, assert nothing is left), and what the tests inspect of the shims (pids, sockets,
//! children, cgroups, pipes).

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

pub use crate::containerd::Containerd;
use crate::{
    containerd::{FixtureError, Options},
    image::{busybox_layer, sha256_hex, write_oci_archive, ImageError},
    util::poll_until,
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
    for applet in ["echo", "false", "ps", "dd", "kill", "seq", "tty", "stty", "grep", "yes", "tail"] {
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
    PathBuf::from(format!("/run/containerd/s/{}", sha256_hex(format!("{}/{ns}/{id}", address.display()).as_bytes())))
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
            let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
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

/// Text of a command's output (lossy UTF-8).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ctr run -d` of the tests' image as `id` running `cmd`, with `extra` flags before the image.
pub fn run_detached(cd: &Containerd, ns: &str, id: &str, extra: &[&str], cmd: &[&str]) {
    let mut args = vec!["run", "-d", "--runtime", SHIM_RUNTIME];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, id]);
    args.extend_from_slice(cmd);
    let out = cd.ctr_raw(ns, &args).expect("ctr");
    assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
}

/// (pid, status) of a task from `ctr tasks ls`.
pub fn task(cd: &Containerd, ns: &str, id: &str) -> Option<(u32, String)> {
    let out = cd.ctr_raw(ns, &["tasks", "ls"]).expect("ctr");
    text(&out.stdout).lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
    })
}

/// Waits until the task is in `status` ("RUNNING", "STOPPED", ...); returns its pid.
pub fn wait_status(cd: &Containerd, ns: &str, id: &str, status: &str) -> u32 {
    poll_until(&format!("{id} {status}"), Duration::from_secs(30), || {
        task(cd, ns, id).filter(|(_, s)| s == status).map(|(p, _)| p)
    })
}

/// Removes a stopped task and its container; returns ctr's stderr (it names a non-zero exit).
pub fn remove(cd: &Containerd, ns: &str, id: &str) -> String {
    let out = cd.ctr_raw(ns, &["tasks", "rm", id]).expect("ctr");
    let err = text(&out.stderr);
    assert!(out.status.success(), "tasks rm {id}: {err}");
    let out = cd.ctr_raw(ns, &["containers", "rm", id]).expect("ctr");
    assert!(out.status.success(), "containers rm {id}: {}", text(&out.stderr));
    err
}

/// The end of a test's container: SIGKILL to its init, wait until it is STOPPED, then
/// [`remove`]; returns what `remove` returns.
pub fn kill_and_remove(cd: &Containerd, ns: &str, id: &str) -> String {
    let out = cd.ctr_raw(ns, &["tasks", "kill", "-s", "KILL", id]).expect("ctr");
    assert!(out.status.success(), "tasks kill {id}: {}", text(&out.stderr));
    wait_status(cd, ns, id, "STOPPED");
    remove(cd, ns, id)
}

/// After a test: no shim of ours left, no socket files, no cgroups, no rootfs mounts.
pub fn assert_no_leaks(cd: &Containerd, ns: &str, ids: &[&str]) {
    poll_until("shims to exit", Duration::from_secs(30), || shim_pids(&cd.address).is_empty().then_some(()));
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for id in ids {
        let sock = shim_socket_path(&cd.address, ns, id);
        assert!(!sock.exists(), "socket {} left behind", sock.display());
        let cg = container_cgroups(ns, id);
        assert!(cg.is_empty(), "cgroups left: {cg:?}");
        let leaked: Vec<&str> = mountinfo.lines().filter(|l| l.contains(&format!("/{ns}/{id}/rootfs"))).collect();
        assert!(leaked.is_empty(), "mounts left: {leaked:?}");
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
