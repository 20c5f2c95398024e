//! Hierarchy discovery: which cgroup filesystems are mounted where, and
//! which cgroup this process sits in on each of them.
//!
//! Everything here is a function of the text of `/proc/self/mountinfo` and
//! `/proc/self/cgroup`, so it can be tested without a real host.

use std::path::PathBuf;

use super::CgroupError;

/// One cgroup or cgroup2 line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMountEntry {
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
pub(crate) struct ProcCgroupEntry {
    /// Empty for the cgroup2 line ("0::/path").
    pub controllers: Vec<String>,
    pub path: String,
}

/// A hierarchy the container will get a directory in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// "memory", "cpu,cpuacct", "systemd", "unified" (cgroup2 on a hybrid
    /// host) or "" (pure v2).
    pub name: String,
    /// Controllers of a v1 hierarchy, with "name=" ones included verbatim.
    pub subsystems: Vec<String>,
    pub mount_point: PathBuf,
    /// This process's cgroup, relative to `mount_point`, starting with "/".
    pub own_path: String,
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

pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMountEntry> {
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

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroupEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrl), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let controllers = if ctrl.is_empty() {
            Vec::new()
        } else {
            ctrl.split(',').map(str::to_string).collect()
        };
        out.push(ProcCgroupEntry {
            controllers,
            path: path.to_string(),
        });
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
fn pick_mount<'a>(
    mounts: &[&'a CgroupMountEntry],
    path: &str,
) -> Option<&'a CgroupMountEntry> {
    mounts
        .iter()
        .copied()
        .find(|m| m.root == "/" && m.mount_point.starts_with("/sys/fs/cgroup"))
        .or_else(|| mounts.iter().copied().find(|m| m.root == "/"))
        .or_else(|| {
            mounts
                .iter()
                .copied()
                .filter(|m| path.starts_with(m.root.as_str()))
                .max_by_key(|m| m.root.len())
        })
        .or_else(|| mounts.first().copied())
}

/// Works out the hierarchies from the two texts. `pure_v2` comes from
/// statfs(/sys/fs/cgroup) on a real host; tests pass it explicitly.
pub(crate) fn discover(
    mountinfo: &str,
    proc_cgroup: &str,
    pure_v2: bool,
) -> Result<Vec<Hierarchy>, CgroupError> {
    let mounts = parse_mountinfo(mountinfo);
    let own = parse_proc_cgroup(proc_cgroup);
    let mut out: Vec<Hierarchy> = Vec::new();

    if pure_v2 {
        let entry = own.iter().find(|e| e.controllers.is_empty()).ok_or_else(|| {
            CgroupError::Discovery("/proc/self/cgroup has no cgroup2 (\"0::\") line".into())
        })?;
        let v2: Vec<&CgroupMountEntry> = mounts.iter().filter(|m| m.v2).collect();
        let m = pick_mount(&v2, &entry.path)
            .ok_or_else(|| CgroupError::Discovery("no cgroup2 mount in /proc/self/mountinfo".into()))?;
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
                .filter(|m| {
                    !m.v2 && entry.controllers.iter().all(|c| m.super_opts.iter().any(|o| o == c))
                })
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
            entry
                .controllers
                .iter()
                .map(|c| c.strip_prefix("name=").unwrap_or(c))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(Hierarchy {
            name,
            subsystems: entry.controllers.clone(),
            mount_point: m.mount_point.clone(),
            own_path: relative_to_mount(&entry.path, &m.root),
        });
    }
    if !out.iter().any(|h| !h.subsystems.is_empty()) {
        return Err(CgroupError::Discovery(
            "no cgroup v1 hierarchy found in /proc/self/mountinfo and /proc/self/cgroup".into(),
        ));
    }
    Ok(out)
}

/// The container's cgroup, relative to each hierarchy's root ("/a/b").
/// runc's cgroupfs rules: absolute → as is; relative → under our own
/// cgroup; absent → our own cgroup + id.
pub(crate) fn resolve_rel(
    own_path: &str,
    id: &str,
    cgroups_path: Option<&str>,
) -> Result<String, CgroupError> {
    let requested = match cgroups_path {
        Some(p) if !p.is_empty() => p,
        _ => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
                return Err(CgroupError::InvalidPath {
                    path: id.to_string(),
                    reason: "container id is not usable as a cgroup name".into(),
                });
            }
            return Ok(normalize(&format!("{own_path}/{id}")));
        }
    };
    if !requested.starts_with('/') && requested.split(':').count() == 3 {
        return Err(CgroupError::SystemdPathUnsupported(requested.to_string()));
    }
    if requested.contains('\0') {
        return Err(CgroupError::InvalidPath {
            path: requested.escape_debug().to_string(),
            reason: "contains a NUL byte".into(),
        });
    }
    if requested.split('/').any(|c| c == "..") {
        return Err(CgroupError::InvalidPath {
            path: requested.to_string(),
            reason: "\"..\" is not allowed".into(),
        });
    }
    let joined = if requested.starts_with('/') {
        normalize(requested)
    } else {
        normalize(&format!("{own_path}/{requested}"))
    };
    if joined == "/" {
        return Err(CgroupError::InvalidPath {
            path: requested.to_string(),
            reason: "resolves to the root cgroup".into(),
        });
    }
    Ok(joined)
}

/// Collapses "//" and "." (".." is rejected before we get here).
fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
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

    #[test]
    fn path_rules() {
        assert_eq!(resolve_rel("/user/x", "c1", None).unwrap(), "/user/x/c1");
        assert_eq!(resolve_rel("/", "c1", None).unwrap(), "/c1");
        assert_eq!(resolve_rel("/", "c1", Some("")).unwrap(), "/c1");
        assert_eq!(resolve_rel("/own", "c1", Some("/abs/p")).unwrap(), "/abs/p");
        assert_eq!(resolve_rel("/own", "c1", Some("rel/./p")).unwrap(), "/own/rel/p");
        assert_eq!(resolve_rel("/own", "c1", Some("//a//b/")).unwrap(), "/a/b");
        assert!(matches!(
            resolve_rel("/", "c1", Some("system.slice:docker:abc")),
            Err(CgroupError::SystemdPathUnsupported(_))
        ));
        assert!(resolve_rel("/", "c1", Some("/a/../b")).is_err());
        assert!(resolve_rel("/", "c1", Some("a/\0b")).is_err());
        assert!(resolve_rel("/", "c1", Some("/")).is_err());
        assert!(resolve_rel("/", "..", None).is_err());
        assert!(resolve_rel("/", "a/b", None).is_err());
    }
}
