//! The mounts a snapshot is used through, and a small mounter that does
//! what containerd's mount package does with them (used by the probe at
//! start-up, by tests and by the bench).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::proto::Mount;
use crate::store::{Kind, Record};

/// Overlay options that depend on the host, decided once at start-up.
#[derive(Debug, Clone, Default)]
pub struct OverlayOptions {
    /// `index=off`: avoids EBUSY/ESTALE when a lower layer is shared by
    /// several overlays (containerd's overlayfs snapshotter does the same).
    pub index_off: bool,
    /// `userxattr`: needed when running inside a user namespace, where the
    /// trusted.* xattrs overlayfs uses by default are not writable.
    pub userxattr: bool,
}

impl OverlayOptions {
    pub fn detect() -> Self {
        OverlayOptions {
            index_off: Path::new("/sys/module/overlay/parameters/index").exists(),
            userxattr: in_user_namespace(),
        }
    }

    fn push(&self, opts: &mut Vec<String>) {
        if self.index_off {
            opts.push("index=off".into());
        }
        if self.userxattr {
            opts.push("userxattr".into());
        }
    }
}

fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(s) => {
            let f: Vec<&str> = s.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

fn path_str(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// Mounts for a snapshot, given its lower layers' directories nearest
/// first. Paths are absolute; with many layers containerd's mounter shortens
/// `lowerdir` by moving to their common directory (`<root>/snapshots/`)
/// first.
pub fn for_snapshot(layout: &Layout, rec: &Record, parents: &[PathBuf], o: &OverlayOptions) -> Vec<Mount> {
    let bind = |source: PathBuf, ro: bool| Mount {
        r#type: "bind".into(),
        source: path_str(source),
        target: String::new(),
        options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
    };
    let lower = || {
        let dirs: Vec<String> = parents.iter().map(|p| path_str(p.clone())).collect();
        format!("lowerdir={}", dirs.join(":"))
    };
    match (rec.kind, parents.len()) {
        (Kind::View, 0) | (Kind::Committed, 0) => vec![bind(layout.fs(rec.id), true)],
        (Kind::Active, 0) => vec![bind(layout.fs(rec.id), false)],
        (Kind::View, 1) | (Kind::Committed, 1) => vec![bind(parents[0].clone(), true)],
        (Kind::View, _) | (Kind::Committed, _) => {
            let mut opts = Vec::new();
            o.push(&mut opts);
            opts.push(lower());
            vec![Mount { r#type: "overlay".into(), source: "overlay".into(), target: String::new(), options: opts }]
        }
        (Kind::Active, _) => {
            let mut opts = Vec::new();
            o.push(&mut opts);
            opts.push(format!("workdir={}", path_str(layout.work(rec.id))));
            opts.push(format!("upperdir={}", path_str(layout.fs(rec.id))));
            opts.push(lower());
            vec![Mount { r#type: "overlay".into(), source: "overlay".into(), target: String::new(), options: opts }]
        }
    }
}

/// The kernel copies at most one page of mount data.
const PAGE_LIMIT: usize = 4096;

/// Splits options into mount flags and the data string, like mount(8).
fn parse_options(options: &[String]) -> (libc::c_ulong, Vec<String>) {
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            _ => data.push(o.clone()),
        }
    }
    (flags, data)
}

/// When `lowerdir` would not fit in a page, rewrites it relative to the
/// lowerdirs' common parent directory and returns that directory; the mount
/// must then be done from there (containerd does it in a child that chdirs).
pub fn compact_lowerdir(data: &[String]) -> Option<(PathBuf, Vec<String>)> {
    let total: usize = data.iter().map(|s| s.len() + 1).sum();
    if total < PAGE_LIMIT - 512 {
        return None;
    }
    let idx = data.iter().position(|s| s.starts_with("lowerdir="))?;
    let dirs: Vec<&str> = data[idx]["lowerdir=".len()..].split(':').collect();
    if dirs.len() < 2 {
        return None;
    }
    let min = dirs.iter().min()?;
    let max = dirs.iter().max()?;
    let common_len = min.bytes().zip(max.bytes()).take_while(|(a, b)| a == b).count();
    let prefix = &min[..common_len];
    let common = Path::new(prefix);
    // A byte prefix may end inside a name ("snapshots/1" for ids 12 and 13).
    let common = if prefix.ends_with('/') { common.to_path_buf() } else { common.parent()?.to_path_buf() };
    let base = format!("{}/", common.to_string_lossy().trim_end_matches('/'));
    if base == "/" {
        return None;
    }
    let rel: Option<Vec<&str>> = dirs.iter().map(|d| d.strip_prefix(base.as_str())).collect();
    let mut out: Vec<String> = data.to_vec();
    out[idx] = format!("lowerdir={}", rel?.join(":"));
    Some((common, out))
}

/// Mounts `m` on `target` as containerd would.
pub fn mount(m: &Mount, target: &Path) -> Result<()> {
    let (flags, data) = parse_options(&m.options);
    if m.r#type == "overlay" {
        if let Some((dir, data)) = compact_lowerdir(&data) {
            // Relative lowerdirs resolve against the caller's cwd, which is
            // process-wide; mount(8) in a child keeps ours untouched.
            let status = std::process::Command::new("mount")
                .current_dir(&dir)
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(data.join(","))
                .arg(target)
                .status()
                .map_err(|e| Error::io("running mount(8) for", target, e))?;
            if !status.success() {
                return Err(Error::Other(format!("mount(8) of overlay on {} failed: {status}", target.display())));
            }
            return Ok(());
        }
    }
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::InvalidArgument(format!("NUL in {s:?}")));
    let src = cstr(&m.source)?;
    let tgt = cstr(&target.to_string_lossy())?;
    let fstype = cstr(&m.r#type)?;
    let data_c = cstr(&data.join(","))?;
    let ro_bind = flags & libc::MS_BIND != 0 && flags & libc::MS_RDONLY != 0;
    let ms = nix::mount::MsFlags::from_bits_retain(flags);
    if let Err(e) =
        nix::mount::mount(Some(src.as_c_str()), tgt.as_c_str(), Some(fstype.as_c_str()), ms, Some(data_c.as_c_str()))
    {
        return Err(Error::io("mounting", target, e.into()));
    }
    if ro_bind {
        // A bind mount ignores MS_RDONLY until it is remounted.
        let remount = ms | nix::mount::MsFlags::MS_REMOUNT;
        if let Err(e) = nix::mount::mount(None::<&CStr>, tgt.as_c_str(), None::<&CStr>, remount, None::<&CStr>) {
            let _ = unmount(target);
            return Err(Error::io("remounting read-only", target, e.into()));
        }
    }
    Ok(())
}

pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        mount(m, target)?;
    }
    Ok(())
}

pub fn unmount(target: &Path) -> Result<()> {
    let tgt =
        CString::new(target.to_string_lossy().as_bytes()).map_err(|_| Error::InvalidArgument("NUL in path".into()))?;
    if let Err(e) = nix::mount::umount2(tgt.as_c_str(), nix::mount::MntFlags::MNT_DETACH) {
        return Err(Error::io("unmounting", target, e.into()));
    }
    Ok(())
}

/// Checks that the root's filesystem can hold overlayfs upper and work
/// directories by mounting a throwaway overlay there.
pub fn probe_overlay(root: &Path, o: &OverlayOptions) -> Result<()> {
    let dir = root.join(format!("overlay-probe-{}", std::process::id()));
    let _ = crate::layout::remove_tree(&dir);
    let result = (|| {
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| Error::io("creating", dir.join(d), e))?;
        }
        let mut opts = Vec::new();
        o.push(&mut opts);
        opts.push(format!("lowerdir={}", dir.join("lower").display()));
        opts.push(format!("upperdir={}", dir.join("upper").display()));
        opts.push(format!("workdir={}", dir.join("work").display()));
        let m = Mount { r#type: "overlay".into(), source: "overlay".into(), target: String::new(), options: opts };
        let merged = dir.join("merged");
        mount(&m, &merged).map_err(|e| {
            Error::Other(format!(
                "the filesystem of {} cannot host overlayfs upper directories ({e}); \
                 put the root on ext4, xfs (with d_type) or another filesystem overlayfs accepts as upper",
                root.display()
            ))
        })?;
        let w = std::fs::write(merged.join("probe"), b"x");
        let _ = unmount(&merged);
        w.map_err(|e| Error::Other(format!("writing through a probe overlay on {}: {e}", root.display())))
    })();
    let _ = crate::layout::remove_tree(&dir);
    result
}
