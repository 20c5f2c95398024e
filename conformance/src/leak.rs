//! "Nothing left behind" (SECURITY.md §2): a snapshot of the host taken before
//! a test and compared after it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct LeakSnapshot {
    mountinfo: BTreeSet<String>,
    netns: BTreeSet<String>,
    /// Mount points the test mounts on the host itself (and unmounts in its cleanup).
    own_mount_points: Vec<String>,
}

/// Whole lines: a mount that changed flags or propagation shows up as a
/// removed line plus an added one.
fn mountinfo() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("cannot read /proc/self/mountinfo")
        .lines()
        .map(str::to_string)
        .collect()
}

fn mount_point(line: &str) -> &str {
    line.split(' ').nth(4).unwrap_or("")
}

fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .expect("cannot list /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn netns_holders() -> HashMap<String, Vec<i32>> {
    let mut m: HashMap<String, Vec<i32>> = HashMap::new();
    for pid in pids() {
        if let Ok(t) = fs::read_link(format!("/proc/{pid}/ns/net")) {
            m.entry(t.to_string_lossy().into_owned()).or_default().push(pid);
        }
    }
    m
}

fn read_lossy(p: impl AsRef<Path>) -> String {
    fs::read(p).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

/// Every directory under /sys/fs/cgroup/<hierarchy> whose name contains `needle`.
pub fn cgroup_dirs_containing(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: usize, found: &mut Vec<PathBuf>) {
        if depth > 10 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            walk(&p, needle, depth + 1, found);
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 0, &mut found);
    found
}

/// Processes (other than us) whose cmdline, cgroup or environment mentions any needle.
pub fn processes_mentioning(needles: &[&str]) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut v = Vec::new();
    for pid in pids() {
        // A zombie holds nothing but its pid; reaping it is its parent's job
        // (here often PID 1, which reaps lazily), not the runtime's.
        if pid == me || !crate::util::pid_alive(pid) {
            continue;
        }
        let cmdline = read_lossy(format!("/proc/{pid}/cmdline"));
        let cgroup = read_lossy(format!("/proc/{pid}/cgroup"));
        let environ = read_lossy(format!("/proc/{pid}/environ"));
        if needles.iter().any(|n| cmdline.contains(n) || cgroup.contains(n) || environ.contains(n)) {
            v.push((pid, cmdline.trim().to_string()));
        }
    }
    v
}

impl LeakSnapshot {
    pub fn take() -> LeakSnapshot {
        LeakSnapshot {
            mountinfo: mountinfo(),
            netns: netns_holders().into_keys().collect(),
            own_mount_points: Vec::new(),
        }
    }

    /// The test mounts `dir` on the host itself, as a fixture: a mount there is not the
    /// runtime's leak (one propagated below it still is).
    pub fn own_mount_point(&mut self, dir: &Path) {
        self.own_mount_points.push(dir.to_string_lossy().into_owned());
    }

    /// Everything the test with container ids containing `id`, state root
    /// `root` and private dir `dir` left on the host. Empty means clean.
    pub fn check(&self, id: &str, root: &Path, dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        // The host is shared: other engineers' tests and daemons mount and
        // unmount under /tmp while we run. A change there is ours only if it
        // names our id or our dir (a leaked rootfs, proc, tmpfs… of our
        // container does); a change anywhere else (/, /run, /proc, /sys…) is
        // always reported.
        let dir_s = dir.to_string_lossy().into_owned();
        let relevant = |l: &str| {
            !self.own_mount_points.iter().any(|p| p == mount_point(l))
                && (l.contains(id) || l.contains(&dir_s) || !Path::new(mount_point(l)).starts_with("/tmp"))
        };
        let now = mountinfo();
        for l in now.difference(&self.mountinfo) {
            if relevant(l) {
                problems.push(format!("new mount on the host: {l}"));
            }
        }
        for l in self.mountinfo.difference(&now) {
            if relevant(l) {
                problems.push(format!("host mount changed or vanished: {l}"));
            }
        }
        for d in cgroup_dirs_containing(id) {
            problems.push(format!("cgroup left behind: {}", d.display()));
        }
        for (pid, cmd) in processes_mentioning(&[id, &dir_s]) {
            problems.push(format!("process left behind: pid {pid} {cmd:?}"));
        }
        if let Ok(rd) = fs::read_dir(root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().contains(id) {
                    problems.push(format!("state left behind: {}", e.path().display()));
                }
            }
        }
        // A container's netns outlives it through an nsfs mount (the mount
        // check) or a process. On this shared host other people's containers
        // create namespaces too, so only holders that are ours count: their
        // cmdline, cgroup or environment (Case puts BERTH_TEST_ID=<id> in
        // process.env) names the id. Exiting processes get a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let ours: Vec<i32> = processes_mentioning(&[id]).into_iter().map(|(p, _)| p).collect();
            let fresh: Vec<(String, Vec<i32>)> = netns_holders()
                .into_iter()
                .filter(|(ns, holders)| !self.netns.contains(ns) && holders.iter().any(|p| ours.contains(p)))
                .collect();
            if fresh.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for (ns, holders) in fresh {
                    problems.push(format!("new network namespace {ns} held by pids {holders:?}"));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        problems
    }
}

/// Forcibly removes what a leaky runtime left, so one failure does not
/// cascade into the next test: kills processes, lazily unmounts, rmdirs cgroups.
pub fn scrub(id: &str, dir: &Path, baseline: &LeakSnapshot) {
    let dir_s = dir.to_string_lossy().into_owned();
    for (pid, _) in processes_mentioning(&[id, &dir_s]) {
        crate::util::kill_pid(pid, libc::SIGKILL);
    }
    let now = mountinfo();
    let mut extra: Vec<&str> = now
        .difference(&baseline.mountinfo)
        .map(|l| mount_point(l))
        .filter(|mp| Path::new(mp).starts_with(dir))
        .collect();
    extra.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mp in extra {
        if let Ok(c) = std::ffi::CString::new(mp.replace("\\040", " ")) {
            // SAFETY: umount2 with a valid C string.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    let mut cgs = cgroup_dirs_containing(id);
    cgs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for cg in cgs {
        let deadline = Instant::now() + Duration::from_secs(2);
        while fs::remove_dir(&cg).is_err() && cg.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How many daemons of this test process hold each shared cgroup parent (dockerd's
/// "docker", podman's "libpod_parent", a containerd namespace). Tests run in parallel, and a
/// second daemon that removed the parent as it stopped would pull it from under the first
/// daemon's runtime between its two mkdirs (seen: runc's "mkdir
/// /sys/fs/cgroup/freezer/docker/<id>: no such file or directory").
static CGROUP_PARENT_HOLDERS: std::sync::Mutex<BTreeMap<String, Holders>> = std::sync::Mutex::new(BTreeMap::new());

struct Holders {
    count: usize,
    /// What /sys/fs/cgroup held when the first holder came: a directory a client made in
    /// its tmpfs since (podman's for a controller that is not mounted) goes with the last.
    cgroup_root_before: BTreeSet<std::ffi::OsString>,
}

fn cgroup_root_entries() -> BTreeSet<std::ffi::OsString> {
    fs::read_dir("/sys/fs/cgroup").map(|rd| rd.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
}

/// One daemon's hold on a shared cgroup parent; [`CgroupParentHold::release`] removes the
/// parent once the last holder in this process lets go.
pub struct CgroupParentHold {
    name: String,
    children: &'static [&'static str],
    released: std::sync::atomic::AtomicBool,
}

impl CgroupParentHold {
    pub fn new(name: &str) -> CgroupParentHold {
        CgroupParentHold::with_children(name, &[])
    }

    /// A parent the daemon itself puts cgroups under (podman: conmon's), removed before it.
    pub fn with_children(name: &str, children: &'static [&'static str]) -> CgroupParentHold {
        let mut holders = CGROUP_PARENT_HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        holders
            .entry(name.to_string())
            .or_insert_with(|| Holders { count: 0, cgroup_root_before: cgroup_root_entries() })
            .count += 1;
        CgroupParentHold { name: name.to_string(), children, released: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Idempotent: a daemon's stop may run from a test and again at exit.
    pub fn release(&self) {
        if self.released.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // The lock is held across the rmdirs so that a daemon starting meanwhile takes its
        // hold either before (and the parent stays) or after (and its runtime makes it anew).
        let mut holders = CGROUP_PARENT_HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = holders.get_mut(&self.name) else { return };
        h.count = h.count.saturating_sub(1);
        if h.count > 0 {
            return;
        }
        let before = holders.remove(&self.name).map(|h| h.cgroup_root_before).unwrap_or_default();
        remove_empty_cgroup_parent(&self.name, self.children);
        let root = Path::new("/sys/fs/cgroup");
        if is_tmpfs(root) {
            for new in cgroup_root_entries().difference(&before) {
                let dir = root.join(new);
                // On the tmpfs itself, so not a hierarchy's mount point; rmdir keeps it if
                // anything is left in it.
                if is_tmpfs(&dir) {
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
    }
}

/// Removes `/<name>` (its `children` first) from every cgroup hierarchy where it is left
/// empty: the parent that a daemon's containers shared (containerd's namespace, dockerd's
/// "docker", podman's "libpod_parent" with conmon's cgroup below it), which runtimes leave
/// behind by design: they remove only the container's own cgroup. rmdir succeeds only on an
/// empty cgroup, so this never touches one in use.
fn remove_empty_cgroup_parent(name: &str, children: &[&str]) {
    if [name].iter().chain(children).any(|n| n.is_empty() || n.contains('/') || *n == "." || *n == "..") {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    // Pure cgroup v2 keeps it at the top; v1 and hybrid in every hierarchy.
    let mut dirs = vec![root.join(name)];
    if let Ok(entries) = fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(name)));
    }
    for dir in dirs {
        if is_tmpfs(&dir) {
            // Not a cgroup: podman (containers/common) makes conmon's "cgroup" in every v1
            // controller it knows of, mounted or not, and where one is not mounted it makes
            // plain directories on /sys/fs/cgroup's tmpfs and a plain `tasks` file in them.
            let _ = fs::remove_dir_all(&dir);
            continue;
        }
        for child in children {
            let _ = fs::remove_dir(dir.join(child));
        }
        let _ = fs::remove_dir(&dir);
    }
}

fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two daemons share a parent: the first to stop leaves it (the other's runtime may be
    /// between its mkdirs), the last removes it from every hierarchy, conmon's plain
    /// directories on a tmpfs included; a second release changes nothing.
    #[test]
    #[ignore = "needs root: makes and removes cgroups under /sys/fs/cgroup"]
    fn a_shared_cgroup_parent_goes_with_its_last_holder() {
        let name = format!("berth-leak-test-{}", std::process::id());
        let root = Path::new("/sys/fs/cgroup");
        let first = CgroupParentHold::with_children(&name, &["conmon"]);
        let second = CgroupParentHold::with_children(&name, &["conmon"]);
        let mut made = Vec::new();
        let mut controller_dir = None;
        if is_tmpfs(root) {
            // v1 or hybrid: a cgroup in each mounted hierarchy, and what podman leaves in
            // the tmpfs itself.
            for e in fs::read_dir(root).expect("list /sys/fs/cgroup").flatten() {
                let p = e.path();
                if fs::symlink_metadata(&p).map(|m| m.is_dir()).unwrap_or(false) && !is_tmpfs(&p) {
                    made.push(p.join(&name).join("conmon"));
                }
            }
            assert!(!made.is_empty(), "/sys/fs/cgroup is a tmpfs with no hierarchy mounted in it");
            // A controller podman knows and this host does not mount: it makes the
            // controller's directory too.
            let unmounted = root.join(format!("{name}-ctl"));
            for plain in [root.join(&name).join("conmon"), unmounted.join(&name).join("conmon")] {
                fs::create_dir_all(&plain).expect("mkdir on the tmpfs");
                fs::write(plain.join("tasks"), "1\n").expect("write a plain tasks file");
                made.push(plain);
            }
            controller_dir = Some(unmounted);
        } else {
            made.push(root.join(&name).join("conmon"));
        }
        for d in &made {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        first.release();
        let left: Vec<_> = made.iter().filter(|d| d.exists()).collect();
        assert_eq!(left.len(), made.len(), "the first release removed a parent still held");
        second.release();
        first.release();
        let left: Vec<_> = made.iter().filter_map(|d| d.parent()).filter(|d| d.exists()).collect();
        assert!(left.is_empty(), "left after the last release: {left:?}");
        if let Some(d) = controller_dir {
            assert!(!d.exists(), "{} was made after the first hold and is left", d.display());
        }
    }
}
