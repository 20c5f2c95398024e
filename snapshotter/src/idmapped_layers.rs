//! Idmapped layers for user-namespaced containers: the labels
//! `containerd.io/snapshot/uidmapping` / `gidmapping` ("ctr:host:len", as
//! containerd's `WithRemapperLabels` and `ctr run --remap-labels` set them)
//! make the snapshot's lower layers appear through idmapped mounts
//! (`mount_setattr(MOUNT_ATTR_IDMAP)`), so the container's root sees the
//! image's root-owned files as its own without copying or chowning them.
//! containerd 1.6's mounter knows nothing of idmaps, so the snapshotter
//! makes those mounts itself, under `<root>/idmapped/<id>/<n>`, and returns
//! an ordinary overlay over them. They are derived state: recreated when
//! missing, and unmounted with the snapshot or by Cleanup.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const UID_LABEL: &str = "containerd.io/snapshot/uidmapping";
pub const GID_LABEL: &str = "containerd.io/snapshot/gidmapping";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub container: u32,
    pub host: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub uid: Range,
    pub gid: Range,
}

fn parse_range(label: &str, v: &str) -> Result<Range> {
    let bad = || Error::InvalidArgument(format!("label {label}={v:?}: want one range \"container:host:length\""));
    let parts: Vec<&str> = v.split(':').collect();
    let [c, h, l] = parts.as_slice() else {
        return Err(bad());
    };
    let r = Range {
        container: c.parse().map_err(|_| bad())?,
        host: h.parse().map_err(|_| bad())?,
        len: l.parse().map_err(|_| bad())?,
    };
    if r.len == 0 || r.container.checked_add(r.len).is_none() || r.host.checked_add(r.len).is_none() {
        return Err(bad());
    }
    Ok(r)
}

impl IdMap {
    /// The mapping a snapshot's labels ask for; both labels or neither.
    pub fn from_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<Option<IdMap>> {
        match (labels.get(UID_LABEL), labels.get(GID_LABEL)) {
            (None, None) => Ok(None),
            (Some(u), Some(g)) => Ok(Some(IdMap { uid: parse_range(UID_LABEL, u)?, gid: parse_range(GID_LABEL, g)? })),
            _ => Err(Error::InvalidArgument(format!("{UID_LABEL} and {GID_LABEL} must be given together"))),
        }
    }

    /// Host ids for an owner seen as (uid, gid) in the image.
    pub fn to_host(&self, uid: u32, gid: u32) -> (u32, u32) {
        let map = |r: &Range, id: u32| {
            if id >= r.container && id - r.container < r.len {
                r.host + (id - r.container)
            } else {
                id
            }
        };
        (map(&self.uid, uid), map(&self.gid, gid))
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::InvalidArgument(format!("NUL in {}", p.display())))
}

/// A user namespace with the given mapping, held by an fd: a short-lived
/// child unshares it, we write its maps from outside, keep the namespace
/// and let the child go.
fn userns_fd(map: &IdMap) -> Result<OwnedFd> {
    // The child only needs to live while we write its maps: cat(1) blocks
    // on the stdin we hold and exits when we drop it, even if we crash.
    let mut cmd = std::process::Command::new("cat");
    cmd.stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    berth_sys::command::unshare_user_ns(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| Error::io("spawning an idmap holder", "cat", e))?;
    let pid = child.id();
    let result = (|| {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let w = |file: &str, r: &Range| {
            let p = proc_dir.join(file);
            std::fs::write(&p, format!("{} {} {}\n", r.container, r.host, r.len))
                .map_err(|e| Error::io("writing", p, e))
        };
        w("uid_map", &map.uid)?;
        w("gid_map", &map.gid)?;
        let ns = proc_dir.join("ns/user");
        std::fs::File::open(&ns).map(OwnedFd::from).map_err(|e| Error::io("opening", ns, e))
    })();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Bind-mounts `src` at `dst` through `userns`'s mapping.
fn idmapped_bind(src: &Path, dst: &Path, userns: &OwnedFd) -> Result<()> {
    use berth_sys::mount::{self as m, MountAttr};
    // The NUL checks first, as before: they name the path.
    cpath(src)?;
    let tree = m::open_tree_path(src, true).map_err(|e| Error::io("open_tree", src, e.into()))?;
    let attr = MountAttr { attr_set: m::MOUNT_ATTR_IDMAP, userns_fd: userns.as_raw_fd() as u64, ..Default::default() };
    m::mount_setattr_fd(tree.as_fd(), true, &attr)
        .map_err(|e| Error::io("mount_setattr(MOUNT_ATTR_IDMAP)", src, e.into()))?;
    cpath(dst)?;
    m::move_mount_to_path(tree.as_fd(), dst).map_err(|e| Error::io("move_mount", dst, e.into()))?;
    Ok(())
}

fn is_mountpoint(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// Makes `dir/<n>` an idmapped view of `sources[n]` for every n, creating
/// only what is missing (after a reboot, or a crash mid-way).
pub fn ensure(dir: &Path, sources: &[PathBuf], map: &IdMap) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut userns = None;
    let mut out = Vec::with_capacity(sources.len());
    for (n, src) in sources.iter().enumerate() {
        let dst = dir.join(n.to_string());
        if !is_mountpoint(&dst) {
            std::fs::create_dir_all(&dst).map_err(|e| Error::io("creating", &dst, e))?;
            if userns.is_none() {
                userns = Some(userns_fd(map)?);
            }
            if let Some(ns) = &userns {
                idmapped_bind(src, &dst, ns)?;
            }
        }
        out.push(dst);
    }
    Ok(out)
}

/// Unmounts everything under `dir` and removes it.
pub fn release(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        let prefix = format!("{}/", dir.to_string_lossy());
        let mut targets: Vec<&str> =
            info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            crate::mounts::unmount(Path::new(t))?;
        }
    }
    // Only empty directories are removed, never recursively: should a view
    // still be mounted, a recursive delete would go through it into the
    // image's layer.
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("reading", dir, e))?;
    for ent in rd {
        let p = ent.map_err(|e| Error::io("reading", dir, e))?.path();
        std::fs::remove_dir(&p).map_err(|e| Error::io("removing", &p, e))?;
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io("removing", dir, e))
}

/// Whether this kernel and filesystem can give idmapped views of layers
/// under `root` that overlayfs accepts as lower layers.
pub fn probe(root: &Path) -> bool {
    let dir = root.join(format!("idmap-probe-{}", std::process::id()));
    let map = IdMap {
        uid: Range { container: 0, host: 100_000, len: 1 },
        gid: Range { container: 0, host: 100_000, len: 1 },
    };
    let ok = (|| {
        let src = dir.join("src");
        std::fs::create_dir_all(&src).map_err(|e| Error::io("creating", &src, e))?;
        let views = ensure(&dir.join("views"), &[src], &map)?;
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(&views[0]).map_err(|e| Error::io("stat", &views[0], e))?,
        );
        Ok::<bool, Error>(owner == 100_000)
    })();
    let _ = release(&dir.join("views"));
    let _ = crate::layout::remove_tree(&dir);
    match ok {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(error = %e, "idmapped layers unavailable");
            false
        }
    }
}
