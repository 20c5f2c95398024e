//! Garbage collection of layer directories no record refers to: leftovers
//! of a crash between a directory's creation and its transaction's commit,
//! or between a record's removal and its directory's.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::layout::{remove_tree, Layout};

/// Removes every entry of `snapshots/` whose name is not a live id.
/// Returns how many were removed. The caller must hold the write lock so no
/// directory under construction is taken for an orphan.
pub fn remove_orphans(layout: &Layout, live: &HashSet<u64>) -> Result<usize> {
    let dir = layout.snapshots_dir();
    let mut removed = 0;
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("reading", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("reading", dir, e))?;
        let name = ent.file_name();
        let keep = name.to_str().and_then(|n| n.parse::<u64>().ok()).is_some_and(|id| live.contains(&id));
        if !keep {
            let p = ent.path();
            tracing::info!(path = %p.display(), "removing orphaned snapshot directory");
            remove_tree(&p)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Unmounts and removes idmapped views of snapshots that no longer exist.
pub fn release_orphan_idmaps(layout: &Layout, live: &HashSet<u64>) -> Result<usize> {
    let base = layout.idmapped_base();
    let rd = match std::fs::read_dir(&base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("reading", &base, e)),
    };
    let mut removed = 0;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("reading", &base, e))?;
        let keep = ent.file_name().to_str().and_then(|n| n.parse::<u64>().ok()).is_some_and(|id| live.contains(&id));
        if !keep {
            tracing::info!(path = %ent.path().display(), "releasing orphaned idmapped views");
            crate::idmapped_layers::release(&ent.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
