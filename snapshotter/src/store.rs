//! Snapshot metadata in redb. Every state change is one write transaction;
//! directory work that a record depends on happens inside the transaction,
//! before its commit (see `layout.rs`), and directory removal after it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// key → JSON [`Record`]
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// (parent key, child key): answers "has children?" without a scan.
const CHILDREN: TableDefinition<(&str, &str), ()> = TableDefinition::new("children");
/// "next_id" → last id handed out; ids are never reused once committed.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    View,
    Active,
    Committed,
}

impl Kind {
    pub fn as_filter_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub kind: Kind,
    pub parent: String,
    pub labels: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub created: u128,
    pub updated: u128,
    /// Usage frozen at commit; 0 while active.
    pub size: i64,
    pub inodes: i64,
}

pub fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

pub struct Store {
    db: Database,
}

fn decode(bytes: &[u8]) -> Result<Record> {
    Ok(serde_json::from_slice(bytes)?)
}

fn encode(r: &Record) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(r)?)
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(SNAPSHOTS)?;
        tx.open_table(CHILDREN)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(Store { db })
    }

    pub fn get(&self, key: &str) -> Result<Record> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        let v = t.get(key)?.ok_or_else(|| Error::NotFound(format!("snapshot {key:?}")))?;
        decode(v.value())
    }

    /// The record and the ids of its ancestors, nearest parent first: the
    /// order overlayfs wants for `lowerdir`.
    pub fn get_with_parents(&self, key: &str) -> Result<(Record, Vec<u64>)> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        let v = t.get(key)?.ok_or_else(|| Error::NotFound(format!("snapshot {key:?}")))?;
        let rec = decode(v.value())?;
        let ids = parent_ids(&t, &rec.parent)?;
        Ok((rec, ids))
    }

    /// Records a new active or view snapshot. `install` receives the new id
    /// and must put the layer directory in place; it runs inside the
    /// transaction, so a failure there leaves no record.
    pub fn create(
        &self,
        key: &str,
        parent: &str,
        kind: Kind,
        labels: BTreeMap<String, String>,
        install: impl FnOnce(u64) -> Result<()>,
    ) -> Result<(Record, Vec<u64>)> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("empty snapshot key".into()));
        }
        let tx = self.db.begin_write()?;
        let rec;
        let ids;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            if t.get(key)?.is_some() {
                return Err(Error::AlreadyExists(format!("snapshot {key:?}")));
            }
            ids = if parent.is_empty() {
                Vec::new()
            } else {
                let pv = t.get(parent)?.ok_or_else(|| Error::NotFound(format!("parent snapshot {parent:?}")))?;
                let prec = decode(pv.value())?;
                if prec.kind != Kind::Committed {
                    return Err(Error::InvalidArgument(format!("parent {parent:?} is not a committed snapshot")));
                }
                let mut ids = vec![prec.id];
                ids.extend(parent_ids(&t, &prec.parent)?);
                ids
            };
            let mut meta = tx.open_table(META)?;
            let id = meta.get("next_id")?.map(|v| v.value()).unwrap_or(0) + 1;
            meta.insert("next_id", id)?;
            let now = now_nanos();
            rec =
                Record { id, kind, parent: parent.to_string(), labels, created: now, updated: now, size: 0, inodes: 0 };
            t.insert(key, encode(&rec)?.as_slice())?;
            if !parent.is_empty() {
                tx.open_table(CHILDREN)?.insert((parent, key), ())?;
            }
            install(id)?;
        }
        tx.commit()?;
        Ok((rec, ids))
    }

    /// Turns active `key` into committed `name`, keeping its id (and so its
    /// directory). Labels are replaced by the commit's, as containerd does.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        labels: BTreeMap<String, String>,
        expected_id: u64,
        usage: (i64, i64),
    ) -> Result<Record> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("empty snapshot name".into()));
        }
        let tx = self.db.begin_write()?;
        let rec;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            let old = {
                let v = t.get(key)?.ok_or_else(|| Error::NotFound(format!("active snapshot {key:?}")))?;
                decode(v.value())?
            };
            if old.kind != Kind::Active {
                return Err(Error::FailedPrecondition(format!("snapshot {key:?} is not active")));
            }
            if old.id != expected_id {
                return Err(Error::FailedPrecondition(format!("snapshot {key:?} changed during commit")));
            }
            if t.get(name)?.is_some() {
                return Err(Error::AlreadyExists(format!("snapshot {name:?}")));
            }
            let now = now_nanos();
            rec = Record {
                kind: Kind::Committed,
                labels,
                created: now,
                updated: now,
                size: usage.0,
                inodes: usage.1,
                ..old
            };
            t.remove(key)?;
            t.insert(name, encode(&rec)?.as_slice())?;
            if !rec.parent.is_empty() {
                let mut c = tx.open_table(CHILDREN)?;
                c.remove((rec.parent.as_str(), key))?;
                c.insert((rec.parent.as_str(), name), ())?;
            }
        }
        crate::crashpoint::hit(crate::crashpoint::COMMIT_BEFORE_TXN_COMMIT);
        tx.commit()?;
        Ok(rec)
    }

    /// Deletes the record; the caller removes the directory afterwards.
    pub fn remove(&self, key: &str) -> Result<Record> {
        let tx = self.db.begin_write()?;
        let rec;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            rec = {
                let v = t.get(key)?.ok_or_else(|| Error::NotFound(format!("snapshot {key:?}")))?;
                decode(v.value())?
            };
            let mut c = tx.open_table(CHILDREN)?;
            let has_child =
                c.range::<(&str, &str)>((key, "")..)?.next().transpose()?.is_some_and(|(k, _)| k.value().0 == key);
            if has_child {
                return Err(Error::FailedPrecondition(format!("cannot remove snapshot {key:?} with child")));
            }
            t.remove(key)?;
            if !rec.parent.is_empty() {
                c.remove((rec.parent.as_str(), key))?;
            }
        }
        tx.commit()?;
        Ok(rec)
    }

    /// Applies containerd's Update semantics: no paths replaces all labels;
    /// `labels` replaces all; `labels.<k>` sets one (an absent or empty
    /// value deletes it); any other path is immutable.
    pub fn update_labels(&self, key: &str, labels: &BTreeMap<String, String>, paths: &[String]) -> Result<Record> {
        let mut set_all = paths.is_empty();
        let mut single = Vec::new();
        for p in paths {
            if let Some(k) = p.strip_prefix("labels.") {
                single.push(k);
            } else if p == "labels" {
                set_all = true;
            } else {
                return Err(Error::InvalidArgument(format!("cannot update {p:?} field on snapshot {key:?}")));
            }
        }
        let tx = self.db.begin_write()?;
        let rec;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            let mut r = {
                let v = t.get(key)?.ok_or_else(|| Error::NotFound(format!("snapshot {key:?}")))?;
                decode(v.value())?
            };
            if set_all {
                r.labels = labels.clone();
            }
            for k in single {
                match labels.get(k) {
                    Some(v) if !v.is_empty() => {
                        r.labels.insert(k.to_string(), v.clone());
                    }
                    _ => {
                        r.labels.remove(k);
                    }
                }
            }
            r.updated = now_nanos();
            t.insert(key, encode(&r)?.as_slice())?;
            rec = r;
        }
        tx.commit()?;
        Ok(rec)
    }

    pub fn list(&self) -> Result<Vec<(String, Record)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), decode(v.value())?));
        }
        Ok(out)
    }

    pub fn ids(&self) -> Result<HashSet<u64>> {
        Ok(self.list()?.into_iter().map(|(_, r)| r.id).collect())
    }
}

fn parent_ids<T: ReadableTable<&'static str, &'static [u8]>>(t: &T, first: &str) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let mut cur = first.to_string();
    while !cur.is_empty() {
        let v = t.get(cur.as_str())?.ok_or_else(|| Error::Db(format!("snapshot chain broken at {cur:?}")))?;
        let r = decode(v.value())?;
        ids.push(r.id);
        // A cycle cannot be written through this API; bound the walk anyway
        // so a corrupted database cannot hang a request.
        if ids.len() > 100_000 {
            return Err(Error::Db("parent chain too long".into()));
        }
        cur = r.parent;
    }
    Ok(ids)
}
