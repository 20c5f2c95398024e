//! What is left of a container when its init exits. In a pid namespace of its own the kernel
//! kills every other process of the container before the init's exit can be reaped. In a
//! shared one (a pod's, the host's) they survive the init, holding the container's stdout
//! and stderr FIFOs open: containerd closes its ends as soon as it handles the exit, so the
//! output still in flight is lost and containerd logs "Failed to pipe stdout … file already
//! closed". As runc's shim does (`runc kill --all` before the TaskExit), the shim kills them
//! first; and it also waits until they are gone, so the exit is reported after the last
//! writer closed.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::stats::CgroupPaths;

/// How long the exit report waits for the rest to die. SIGKILL takes effect at once unless a
/// process is stuck in the kernel (D state); the exit is reported anyway after this.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Whether the bundle's config.json gives the container a pid namespace of its own (a `pid`
/// entry without a path). An unreadable config counts as shared, as in runc's shim
/// (`ShouldKillAllOnExit`): killing what is left is the safe side.
pub fn has_own_pid_namespace(bundle: &Path) -> bool {
    let Ok(text) = fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    spec["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|ns| ns["type"] == "pid" && ns["path"].as_str().is_none_or(str::is_empty))
}

/// The container's cgroup directory that lists all of its processes: the unified one on
/// cgroup v2, else a v1 hierarchy every process is in.
pub fn process_cgroup(paths: &CgroupPaths) -> Option<PathBuf> {
    if let Some(d) = paths.unified() {
        return Some(d.to_path_buf());
    }
    ["pids", "freezer", "memory", "devices", "cpu"].iter().find_map(|c| paths.get(c)).map(Path::to_path_buf)
}

fn procs_under(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(t) = fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    berth_sys::pidfd::pidfd_open(pid).ok()
}

fn pidfd_kill(fd: &OwnedFd) {
    use std::os::fd::AsFd;
    let _ = berth_sys::pidfd::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
}

/// SIGKILLs every process in `dir` (and below) until none is left, or until [`GIVE_UP`].
/// Each process is pinned by a pidfd and checked to be still in the cgroup before it is
/// signalled, so a recycled pid outside the container is never hit. Returns whether the
/// cgroup emptied.
pub fn kill_all_and_wait(dir: &Path) -> bool {
    let deadline = Instant::now() + GIVE_UP;
    let mut delay = Duration::from_millis(1);
    loop {
        let pids = procs_under(dir);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        let pinned: Vec<(i32, OwnedFd)> = pids.iter().filter_map(|&p| pidfd_open(p).map(|fd| (p, fd))).collect();
        let still = procs_under(dir);
        for (pid, fd) in &pinned {
            if still.contains(pid) {
                pidfd_kill(fd);
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "berth-leftovers-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("config.json"), config).unwrap();
        d
    }

    #[test]
    fn own_pid_namespace_is_a_pid_entry_without_a_path() {
        let own = bundle_with(r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}"#);
        let empty = bundle_with(r#"{"linux":{"namespaces":[{"type":"pid","path":""}]}}"#);
        let pod = bundle_with(r#"{"linux":{"namespaces":[{"type":"pid","path":"/proc/42/ns/pid"}]}}"#);
        let host = bundle_with(r#"{"linux":{"namespaces":[{"type":"mount"}]}}"#);
        let broken = bundle_with("{");
        assert!(has_own_pid_namespace(&own));
        assert!(has_own_pid_namespace(&empty));
        assert!(!has_own_pid_namespace(&pod));
        assert!(!has_own_pid_namespace(&host));
        assert!(!has_own_pid_namespace(&broken));
        for d in [own, empty, pod, host, broken] {
            fs::remove_dir_all(d).unwrap();
        }
    }
}
