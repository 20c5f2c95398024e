//! Whether a recorded cgroup is frozen, read straight from the record's JSON: `list` asks
//! this of every container, and reopening the manager would first build the whole record
//! (ten hierarchies of four strings each on a v1 host, and every directory `create` made).
//! Here only the hierarchies' directories are kept, borrowed from the JSON, and whether
//! each carries the freezer.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::{v1, v2, CgroupError, CgroupVersion};

/// The part of a [`super::CgroupState`] that tells where its freezer is.
#[derive(Debug, Deserialize)]
pub struct RecordedFreezer<'a> {
    #[serde(borrow)]
    hierarchies: Vec<Hierarchy<'a>>,
    /// A systemd unit's cgroup is a cgroup2 one, whatever `version` says (as
    /// [`super::from_state`] reopens it).
    #[serde(default)]
    systemd: Option<IgnoredAny>,
    version: CgroupVersion,
}

#[derive(Debug, Deserialize)]
struct Hierarchy<'a> {
    #[serde(borrow)]
    dir: Cow<'a, str>,
    #[serde(rename = "subsystems", deserialize_with = "has_freezer")]
    freezer: bool,
}

impl RecordedFreezer<'_> {
    /// Whether the freezer holds the cgroup, as [`super::Manager::is_frozen`] says it.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        if self.systemd.is_some() || self.version == CgroupVersion::V2 {
            let h = self.hierarchies.first().ok_or_else(|| CgroupError::Discovery("no cgroup2 directory".into()))?;
            return v2::events_frozen(Path::new(&*h.dir));
        }
        let h = self
            .hierarchies
            .iter()
            .find(|h| h.freezer)
            .ok_or_else(|| CgroupError::Discovery("no cgroup v1 freezer hierarchy is mounted".into()))?;
        v1::state_frozen(Path::new(&*h.dir))
    }
}

/// Whether a hierarchy's `subsystems` list has "freezer", without collecting it.
fn has_freezer<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct AnyFreezer;
    impl<'de> Visitor<'de> for AnyFreezer {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of controller names")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(IsFreezer(is)) = seq.next_element()? {
                found |= is;
            }
            Ok(found)
        }
    }
    d.deserialize_seq(AnyFreezer)
}

/// One controller name: whether it is "freezer" (borrowed or unescaped, never copied).
struct IsFreezer(bool);

impl<'de> Deserialize<'de> for IsFreezer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = IsFreezer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a controller name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IsFreezer, E> {
                Ok(IsFreezer(v == "freezer"))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of a hybrid host's container, as berth writes it: the freezer is found
    /// among the v1 hierarchies; a v2 or systemd record uses its first directory.
    #[test]
    fn the_freezer_is_found_as_the_manager_finds_it() {
        let old = include_str!("../testdata/state-v1-hybrid.json");
        let v: serde_json::Value = serde_json::from_str(old).unwrap();
        let json = serde_json::to_string(&v["cgroup"]).unwrap();
        let rf: RecordedFreezer = serde_json::from_str(&json).unwrap();
        let full: super::super::CgroupState = serde_json::from_str(&json).unwrap();
        let want = full.hierarchies.iter().find(|h| h.has("freezer")).unwrap();
        let got = rf.hierarchies.iter().find(|h| h.freezer).unwrap();
        assert_eq!(Path::new(&*got.dir), want.dir);
        assert!(matches!(got.dir, Cow::Borrowed(_)), "borrowed from the JSON, not copied");
        assert_eq!(rf.hierarchies.iter().filter(|h| h.freezer).count(), 1);

        let v2: RecordedFreezer =
            serde_json::from_str(r#"{"hierarchies":[{"dir":"/sys/fs/cgroup/x","mount_point":"/sys/fs/cgroup","name":"","subsystems":[]}],"version":"v2"}"#)
                .unwrap();
        assert!(v2.version == CgroupVersion::V2 && !v2.hierarchies[0].freezer);
        let e = v2.is_frozen().unwrap_err().to_string();
        assert!(e.contains("/sys/fs/cgroup/x/cgroup.events"), "{e}");
    }
}
