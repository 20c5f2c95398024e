//! The snapshotter's operations, independent of the transport.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::crashpoint;
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::layout::{disk_usage, Layout};
use crate::mounts::{self, OverlayOptions};
use crate::proto::Mount;
use crate::store::{Kind, Record, Store};

pub struct Snapshotter {
    layout: Layout,
    store: Store,
    overlay: OverlayOptions,
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
        let s = Snapshotter {
            layout,
            store,
            overlay,
            dirs: Mutex::new(()),
        };
        let n = s.cleanup()?;
        if n > 0 {
            tracing::info!(removed = n, "start-up cleanup removed orphaned directories");
        }
        Ok(s)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock only means another request panicked; the guarded
        // state is on disk and in redb, both of which stay consistent.
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let _g = self.lock();
        // Cheap checks first so a doomed request creates no directory.
        if self.store.get(key).is_ok() {
            return Err(Error::AlreadyExists(format!("snapshot {key:?}")));
        }
        let parent_id = if parent.is_empty() {
            None
        } else {
            Some(self.store.get(parent)?.id)
        };
        let tmp = self.layout.create_temp(kind == Kind::Active, parent_id)?;
        let result = self.store.create(key, parent, kind, labels, |id| {
            self.layout.install(&tmp, id)?;
            crashpoint::hit(crashpoint::PREPARE_INSTALLED);
            Ok(())
        });
        match result {
            Ok((rec, parents)) => Ok(mounts::for_snapshot(
                &self.layout,
                &rec,
                &parents,
                &self.overlay,
            )),
            Err(e) => {
                let _ = crate::layout::remove_tree(&tmp);
                Err(e)
            }
        }
    }

    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let (rec, parents) = self.store.get_with_parents(key)?;
        if rec.kind == Kind::Committed {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is not active or view"
            )));
        }
        Ok(mounts::for_snapshot(
            &self.layout,
            &rec,
            &parents,
            &self.overlay,
        ))
    }

    pub fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<()> {
        let rec = self.store.get(key)?;
        if rec.kind != Kind::Active {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is not active"
            )));
        }
        let usage = disk_usage(&self.layout.fs(rec.id))?;
        self.store.commit(name, key, labels, rec.id, usage)?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        let _g = self.lock();
        let rec = self.store.remove(key)?;
        crashpoint::hit(crashpoint::REMOVE_AFTER_TXN_COMMIT);
        // After the commit: a crash here leaves an orphan for Cleanup.
        if let Err(e) = self.layout.remove(rec.id) {
            tracing::warn!(key, id = rec.id, error = %e, "snapshot removed; its directory is left for cleanup");
        }
        Ok(())
    }

    pub fn stat(&self, key: &str) -> Result<Record> {
        self.store.get(key)
    }

    pub fn update(
        &self,
        key: &str,
        labels: &BTreeMap<String, String>,
        paths: &[String],
    ) -> Result<Record> {
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
        Ok(self
            .store
            .list()?
            .into_iter()
            .filter(|(n, r)| f.matches(n, r))
            .collect())
    }

    pub fn cleanup(&self) -> Result<usize> {
        let _g = self.lock();
        let live = self.store.ids()?;
        crate::cleanup::remove_orphans(&self.layout, &live)
    }
}
