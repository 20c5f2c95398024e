//! The pids controller, the same files on cgroup v1 and v2.

use std::path::Path;

use crate::file;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pids {
    /// pids.current.
    pub current: u64,
    /// pids.max: `u64::MAX` for "max" (no limit), 0 when the file is absent.
    pub limit: u64,
}

pub fn pids(dir: &Path) -> Pids {
    Pids { current: file::value(dir, "pids.current"), limit: file::value(dir, "pids.max") }
}
