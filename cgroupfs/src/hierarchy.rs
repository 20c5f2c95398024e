//! Hierarchy discovery: which cgroup filesystems are mounted where (cgroup v1 one mount per
//! controller hierarchy, cgroup v2 the unified one, or both on a hybrid host), and which
//! cgroup a process sits in on each of them.
//!
//! [`discover`] is a function of the text of `/proc/self/mountinfo` and
//! `/proc/<pid>/cgroup`, so it can be tested without a real host; [`of_process`] reads them.

use std::path::{Path, PathBuf};

use crate::Error;

/// One cgroup or cgroup2 line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMountEntry {
    /// `major:minor` of the superblock: identical for bind mounts of one hierarchy.
    pub dev: String,
    /// The path inside the hierarchy that is mounted (not "/" under a cgroup
    /// namespace or for a bind mount of a sub-tree).
    pub root: String,
    pub mount_point: PathBuf,
    pub v2: bool,
    pub super_opts: Vec<String>,
}

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupEntry {
    /// Empty for the cgroup2 line ("0::/path").
    pub controllers: Vec<String>,
    pub path: String,
}

/// A hierarchy the container will get a directory in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// "memory", "cpu,cpuacct", "systemd", "unified" (cgroup2 on a hybrid
    /// host) or "" (pure v2).
    pub name: String,
    /// Controllers of a v1 hierarchy, with "name=" ones included verbatim.
    pub subsystems: Vec<String>,
    pub mount_point: PathBuf,
    /// The process's cgroup, relative to `mount_point`, starting with "/".
    pub own_path: String,
}

impl Hierarchy {
    /// The process's cgroup directory in this hierarchy.
    pub fn dir(&self) -> PathBuf {
        self.mount_point.join(self.own_path.trim_start_matches('/'))
    }

    /// A cgroup v1 hierarchy (the hybrid host's cgroup2 one and pure v2 carry no subsystems).
    pub fn is_v1(&self) -> bool {
        !self.subsystems.is_empty()
    }

    /// Whether this v1 hierarchy carries `controller` ("memory"; "name=systemd" for a named one).
    pub fn has(&self, controller: &str) -> bool {
        self.subsystems.iter().any(|s| s == controller)
    }
}

/// The host mounts cgroup v2 alone at /sys/fs/cgroup (runc's IsCgroup2UnifiedMode), not v1
/// or the hybrid layout.
pub fn host_is_unified() -> bool {
    is_cgroup2_fs(Path::new("/sys/fs/cgroup"))
}

/// `p` is a cgroup2 filesystem.
pub fn is_cgroup2_fs(p: &Path) -> bool {
    match nix::sys::statfs::statfs(p) {
        Ok(s) => s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC,
        Err(_) => false,
    }
}

/// The hierarchies of process `pid` (this process for `None`) on this host, as seen from this
/// process's mount namespace: [`discover`] over the two files, pure v2 when
/// [`host_is_unified`].
pub fn of_process(pid: Option<u32>) -> Result<Vec<Hierarchy>, Error> {
    let read = |p: String| {
        std::fs::read_to_string(&p).map_err(|e| Error::Io { path: PathBuf::from(p), op: "read", source: e })
    };
    let mountinfo = read("/proc/self/mountinfo".to_string())?;
    let cgroup = match pid {
        Some(pid) => read(format!("/proc/{pid}/cgroup"))?,
        None => read("/proc/self/cgroup".to_string())?,
    };
    discover(&mountinfo, &cgroup, host_is_unified())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<CgroupMountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            continue;
        }
        let v2 = match post[0] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        out.push(CgroupMountEntry {
            dev: pre[2].to_string(),
            root: unescape(pre[3]),
            mount_point: PathBuf::from(unescape(pre[4])),
            v2,
            super_opts: post[2].split(',').map(str::to_string).collect(),
        });
    }
    out
}

pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroupEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrl), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let controllers = if ctrl.is_empty() { Vec::new() } else { ctrl.split(',').map(str::to_string).collect() };
        out.push(ProcCgroupEntry { controllers, path: path.to_string() });
    }
    out
}

/// The own cgroup path as seen from a mount whose root is `root`.
fn relative_to_mount(path: &str, root: &str) -> String {
    if root == "/" {
        return path.to_string();
    }
    match path.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        // Under a cgroup namespace the kernel already shows paths relative
        // to the namespace root, which is what the mount exposes.
        _ => path.to_string(),
    }
}

/// Choose, among the mounts of one hierarchy, the one through which our
/// own cgroup is reachable: a mount of the whole tree wins.
fn pick_mount<'a>(mounts: &[&'a CgroupMountEntry], path: &str) -> Option<&'a CgroupMountEntry> {
    mounts
        .iter()
        .copied()
        .find(|m| m.root == "/" && m.mount_point.starts_with("/sys/fs/cgroup"))
        .or_else(|| mounts.iter().copied().find(|m| m.root == "/"))
        .or_else(|| mounts.iter().copied().filter(|m| path.starts_with(m.root.as_str())).max_by_key(|m| m.root.len()))
        .or_else(|| mounts.first().copied())
}

/// Works out the hierarchies from the two texts. `pure_v2` comes from
/// statfs(/sys/fs/cgroup) on a real host ([`host_is_unified`]); tests pass it explicitly.
/// Pure v2 gives the one cgroup2 hierarchy (named ""); otherwise every v1 hierarchy the
/// process is in and that is mounted, plus the hybrid cgroup2 one (named "unified").
pub fn discover(mountinfo: &str, proc_cgroup: &str, pure_v2: bool) -> Result<Vec<Hierarchy>, Error> {
    let mounts = parse_mountinfo(mountinfo);
    let own = parse_proc_cgroup(proc_cgroup);
    let mut out: Vec<Hierarchy> = Vec::new();

    if pure_v2 {
        let entry = own
            .iter()
            .find(|e| e.controllers.is_empty())
            .ok_or_else(|| Error::Discovery("/proc/self/cgroup has no cgroup2 (\"0::\") line".into()))?;
        let v2: Vec<&CgroupMountEntry> = mounts.iter().filter(|m| m.v2).collect();
        let m = pick_mount(&v2, &entry.path)
            .ok_or_else(|| Error::Discovery("no cgroup2 mount in /proc/self/mountinfo".into()))?;
        out.push(Hierarchy {
            name: String::new(),
            subsystems: Vec::new(),
            mount_point: m.mount_point.clone(),
            own_path: relative_to_mount(&entry.path, &m.root),
        });
        return Ok(out);
    }

    for entry in &own {
        let candidates: Vec<&CgroupMountEntry> = if entry.controllers.is_empty() {
            mounts.iter().filter(|m| m.v2).collect()
        } else {
            mounts
                .iter()
                .filter(|m| !m.v2 && entry.controllers.iter().all(|c| m.super_opts.iter().any(|o| o == c)))
                .collect()
        };
        // A hierarchy we cannot see (e.g. net_cls not mounted) is simply not used.
        let Some(m) = pick_mount(&candidates, &entry.path) else {
            continue;
        };
        if out.iter().any(|h| h.mount_point == m.mount_point) {
            continue;
        }
        let name = if entry.controllers.is_empty() {
            "unified".to_string()
        } else {
            entry.controllers.iter().map(|c| c.strip_prefix("name=").unwrap_or(c)).collect::<Vec<_>>().join(",")
        };
        out.push(Hierarchy {
            name,
            subsystems: entry.controllers.clone(),
            mount_point: m.mount_point.clone(),
            own_path: relative_to_mount(&entry.path, &m.root),
        });
    }
    if !out.iter().any(|h| !h.subsystems.is_empty()) {
        return Err(Error::Discovery(
            "no cgroup v1 hierarchy found in /proc/self/mountinfo and /proc/self/cgroup".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MI: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_PC: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/6dcc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_discovery() {
        let h = discover(HYBRID_MI, HYBRID_PC, false).unwrap();
        assert_eq!(h.len(), 10);
        let mem = h.iter().find(|h| h.name == "memory").unwrap();
        assert_eq!(mem.mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(mem.own_path, "/process_api/6dcc");
        let sd = h.iter().find(|h| h.name == "systemd").unwrap();
        assert_eq!(sd.subsystems, vec!["name=systemd".to_string()]);
        let uni = h.iter().find(|h| h.name == "unified").unwrap();
        assert_eq!(uni.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn comounted_cpu_cpuacct_and_escapes() {
        let mi = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 / /sys/fs/cgroup/mem\\040ory rw shared:5 - cgroup cgroup rw,memory,clone_children
27 20 0:23 /sub /mnt/memsub rw - cgroup cgroup rw,memory,clone_children
";
        let pc = "3:cpu,cpuacct:/a\n2:memory:/b/c\n";
        let h = discover(mi, pc, false).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].name, "cpu,cpuacct");
        assert_eq!(h[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[1].mount_point, PathBuf::from("/sys/fs/cgroup/mem ory"));
        assert_eq!(h[1].own_path, "/b/c");
    }

    #[test]
    fn pure_v2_discovery_with_mount_root() {
        let mi = "30 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let pc = "0::/kubepods/pod1\n";
        let h = discover(mi, pc, true).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].name, "");
        assert_eq!(h[0].own_path, "/pod1");
    }

    #[test]
    fn no_hierarchy_is_an_error() {
        assert!(discover("", "0::/\n", true).is_err());
        assert!(discover("", "", false).is_err());
    }
}
