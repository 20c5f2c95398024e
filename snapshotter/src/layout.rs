//! Where layer data lives: `<root>/snapshots/<id>/{fs,work}`. New layers are
//! built under a temporary name and renamed to `<id>` inside the metadata
//! transaction that records them, so a crash leaves either a recorded
//! directory or an orphan that Cleanup collects, never a record without data.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Prefix of directories under construction; never a valid id.
pub const TEMP_PREFIX: &str = "new-";

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    snapshots: PathBuf,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Layout {
    pub fn new(root: &Path) -> Result<Self> {
        let snapshots = root.join("snapshots");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&snapshots)
            .map_err(|e| Error::io("creating", &snapshots, e))?;
        Ok(Layout { root: root.to_path_buf(), snapshots })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(id.to_string())
    }

    pub fn fs(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Idmapped views of an idmapped snapshot's lower layers.
    pub fn idmapped(&self, id: u64) -> PathBuf {
        self.root.join("idmapped").join(id.to_string())
    }

    pub fn idmapped_base(&self) -> PathBuf {
        self.root.join("idmapped")
    }

    pub fn work(&self, id: u64) -> PathBuf {
        self.dir(id).join("work")
    }

    /// Builds a new layer directory under a temporary name. A child layer's
    /// root takes the owner of its parent's root, as containerd's overlayfs
    /// snapshotter does, so an image unpacked as a non-root owner keeps it.
    pub fn create_temp(
        &self,
        with_work: bool,
        parent: Option<u64>,
        map: Option<&crate::idmapped_layers::IdMap>,
    ) -> Result<PathBuf> {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.snapshots.join(format!("{TEMP_PREFIX}{}-{seq}", std::process::id()));
        let mk =
            |p: &Path, mode: u32| fs::DirBuilder::new().mode(mode).create(p).map_err(|e| Error::io("creating", p, e));
        let result = (|| {
            mk(&tmp, 0o700)?;
            let fsdir = tmp.join("fs");
            mk(&fsdir, 0o755)?;
            // DirBuilder's mode is filtered by the umask; layer roots must be 0755.
            set_mode(&fsdir, 0o755)?;
            if with_work {
                mk(&tmp.join("work"), 0o711)?;
            }
            let (mut uid, mut gid) = (0, 0);
            if let Some(pid) = parent {
                let pfs = self.fs(pid);
                let md = fs::metadata(&pfs).map_err(|e| Error::io("stat", &pfs, e))?;
                (uid, gid) = (md.uid(), md.gid());
            }
            // An idmapped snapshot's upper layer is written by the
            // container's root, i.e. the mapped host ids.
            if let Some(m) = map {
                (uid, gid) = m.to_host(uid, gid);
            }
            if parent.is_some() || map.is_some() {
                std::os::unix::fs::lchown(&fsdir, Some(uid), Some(gid)).map_err(|e| Error::io("chown", &fsdir, e))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// Moves a finished temporary directory to its id. A directory already
    /// at that id is an orphan from a crash before its record was committed
    /// (ids are only persisted with records), so it is removed first.
    pub fn install(&self, tmp: &Path, id: u64) -> Result<()> {
        let dst = self.dir(id);
        if dst.exists() {
            remove_tree(&dst)?;
        }
        fs::rename(tmp, &dst).map_err(|e| Error::io("renaming into", &dst, e))
    }

    pub fn remove(&self, id: u64) -> Result<()> {
        remove_tree(&self.work(id))?;
        crate::crashpoint::hit(crate::crashpoint::REMOVE_MID_DELETE);
        remove_tree(&self.dir(id))
    }
}

pub fn remove_tree(p: &Path) -> Result<()> {
    let is_dir = fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(true);
    let r = if is_dir { fs::remove_dir_all(p) } else { fs::remove_file(p) };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", p, e)),
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| Error::io("chmod", p, e))
}

/// Disk usage as containerd reports it: allocated blocks, and inodes
/// counted once however many hard links they have.
pub fn disk_usage(dir: &Path) -> Result<(i64, i64)> {
    let mut seen = std::collections::HashSet::new();
    let mut size: i64 = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = match fs::symlink_metadata(&d) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &d, e)),
        };
        if seen.insert((md.dev(), md.ino())) {
            size = size.saturating_add((md.blocks() as i64).saturating_mul(512));
        }
        if md.is_dir() {
            let rd = fs::read_dir(&d).map_err(|e| Error::io("reading", &d, e))?;
            for ent in rd {
                let ent = ent.map_err(|e| Error::io("reading", &d, e))?;
                stack.push(ent.path());
            }
        }
    }
    Ok((size, seen.len() as i64))
}
