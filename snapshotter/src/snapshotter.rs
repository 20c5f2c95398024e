//! The snapshotter's operations, independent of the transport.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::crashpoint;
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::idmapped_layers::{self, IdMap};
use crate::layout::{disk_usage, Layout};
use crate::mounts::{self, OverlayOptions};
use crate::proto::Mount;
use crate::store::{Kind, Record, Store};

pub struct Snapshotter {
    layout: Layout,
    store: Store,
    overlay: OverlayOptions,
    /// Whether idmapped views work here; without them a snapshot that asks
    /// for an id mapping is refused rather than silently left unmapped.
    idmap_supported: bool,
    /// Serialises operations that create or delete directories, so Cleanup
    /// never sees a directory that is about to be recorded.
    dirs: Mutex<()>,
}

impl Snapshotter {
    /// Opens (or creates) a snapshotter root, checks that overlayfs works
    /// there, and collects orphans left by a crash.
    pub fn open(root: &Path) -> Result<Self> {
        let layout = Layout::new(root)?;
        let overlay = OverlayOptions::detect();
        mounts::probe_overlay(root, &overlay)?;
        let store = Store::open(&root.join("metadata.redb"))?;
        let idmap_supported = idmapped_layers::probe(root);
        tracing::info!(idmap_supported, "capabilities");
        let s = Snapshotter { layout, store, overlay, idmap_supported, dirs: Mutex::new(()) };
        let n = s.cleanup()?;
        if n > 0 {
            tracing::info!(removed = n, "start-up cleanup removed orphaned directories");
        }
        Ok(s)
    }

    pub fn idmap_supported(&self) -> bool {
        self.idmap_supported
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock only means another request panicked; the guarded
        // state is on disk and in redb, both of which stay consistent.
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create(&self, kind: Kind, key: &str, parent: &str, labels: BTreeMap<String, String>) -> Result<Vec<Mount>> {
        let _g = self.lock();
        // Cheap checks first so a doomed request creates no directory.
        if self.store.get(key).is_ok() {
            return Err(Error::AlreadyExists(format!("snapshot {key:?}")));
        }
        let map = IdMap::from_labels(&labels)?;
        if map.is_some() && !self.idmap_supported {
            return Err(Error::FailedPrecondition(
                "id-mapped snapshots need idmapped mounts, which this kernel or filesystem lacks".into(),
            ));
        }
        let chain: Vec<u64> = if parent.is_empty() {
            Vec::new()
        } else {
            let (p, rest) = self.store.get_with_parents(parent)?;
            std::iter::once(p.id).chain(rest).collect()
        };
        let tmp = self.layout.create_temp(kind == Kind::Active, chain.first().copied(), map.as_ref())?;
        let result = self.store.create(key, parent, kind, labels, |id| {
            self.layout.install(&tmp, id)?;
            // Idmapped views are made before the record commits, like the
            // layer directory; a crash leaves them to Cleanup.
            if let (Some(map), false) = (&map, chain.is_empty()) {
                let dirs: Vec<_> = chain.iter().map(|p| self.layout.fs(*p)).collect();
                if let Err(e) = idmapped_layers::ensure(&self.layout.idmapped(id), &dirs, map) {
                    let _ = idmapped_layers::release(&self.layout.idmapped(id));
                    return Err(e);
                }
            }
            crashpoint::hit(crashpoint::PREPARE_INSTALLED);
            Ok(())
        });
        match result {
            Ok((rec, parents)) => {
                crashpoint::hit(crashpoint::PREPARE_BEFORE_REPLY);
                let lowers = self.lowers(&rec, &parents)?;
                Ok(mounts::for_snapshot(&self.layout, &rec, &lowers, &self.overlay))
            }
            Err(e) => {
                let _ = crate::layout::remove_tree(&tmp);
                Err(e)
            }
        }
    }

    /// Lower layer directories, nearest first: the layers themselves, or
    /// their idmapped views for a snapshot that asked for an id mapping.
    fn lowers(&self, rec: &Record, parents: &[u64]) -> Result<Vec<PathBuf>> {
        let dirs: Vec<PathBuf> = parents.iter().map(|id| self.layout.fs(*id)).collect();
        match IdMap::from_labels(&rec.labels)? {
            Some(map) if !dirs.is_empty() => idmapped_layers::ensure(&self.layout.idmapped(rec.id), &dirs, &map),
            _ => Ok(dirs),
        }
    }

    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let (rec, parents) = self.store.get_with_parents(key)?;
        if rec.kind == Kind::Committed {
            return Err(Error::FailedPrecondition(format!("snapshot {key:?} is not active or view")));
        }
        let lowers = self.lowers(&rec, &parents)?;
        Ok(mounts::for_snapshot(&self.layout, &rec, &lowers, &self.overlay))
    }

    pub fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<()> {
        // The name first, as containerd's own snapshotters check it: a retried commit whose
        // reply was lost (the key is gone, the name is there) is then AlreadyExists, which
        // containerd takes as done, rather than NotFound, which fails its pull.
        if !name.is_empty() && self.store.get(name).is_ok() {
            return Err(Error::AlreadyExists(format!("snapshot {name:?}")));
        }
        let rec = self.store.get(key)?;
        if rec.kind != Kind::Active {
            return Err(Error::FailedPrecondition(format!("snapshot {key:?} is not active")));
        }
        let usage = disk_usage(&self.layout.fs(rec.id))?;
        self.store.commit(name, key, labels, rec.id, usage)?;
        crashpoint::hit(crashpoint::COMMIT_BEFORE_REPLY);
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        let _g = self.lock();
        let rec = self.store.remove(key)?;
        crashpoint::hit(crashpoint::REMOVE_AFTER_TXN_COMMIT);
        // After the commit: a crash here leaves an orphan for Cleanup.
        if let Err(e) = idmapped_layers::release(&self.layout.idmapped(rec.id)) {
            tracing::warn!(key, id = rec.id, error = %e, "idmapped views left for cleanup");
        }
        if let Err(e) = self.layout.remove(rec.id) {
            tracing::warn!(key, id = rec.id, error = %e, "snapshot removed; its directory is left for cleanup");
        }
        crashpoint::hit(crashpoint::REMOVE_BEFORE_REPLY);
        Ok(())
    }

    pub fn stat(&self, key: &str) -> Result<Record> {
        self.store.get(key)
    }

    pub fn update(&self, key: &str, labels: &BTreeMap<String, String>, paths: &[String]) -> Result<Record> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("snapshot name is empty".into()));
        }
        self.store.update_labels(key, labels, paths)
    }

    pub fn usage(&self, key: &str) -> Result<(i64, i64)> {
        let rec = self.store.get(key)?;
        if rec.kind == Kind::Committed {
            return Ok((rec.size, rec.inodes));
        }
        disk_usage(&self.layout.fs(rec.id))
    }

    pub fn list(&self, filters: &[String]) -> Result<Vec<(String, Record)>> {
        let f = Filters::parse(filters)?;
        Ok(self.store.list()?.into_iter().filter(|(n, r)| f.matches(n, r)).collect())
    }

    pub fn cleanup(&self) -> Result<usize> {
        let _g = self.lock();
        let live = self.store.ids()?;
        let n = crate::cleanup::release_orphan_idmaps(&self.layout, &live)?;
        Ok(n + crate::cleanup::remove_orphans(&self.layout, &live)?)
    }
}
