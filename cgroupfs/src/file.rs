//! Reading one interface file of a cgroup directory; a missing or unreadable file reads as
//! zero or empty (a controller that is not there has nothing to report).

use std::collections::BTreeMap;
use std::path::Path;

use crate::parse;

pub(crate) fn text(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A single value ([`parse::value`]: "max" is `u64::MAX`), 0 when absent or not a number.
pub(crate) fn value(dir: &Path, file: &str) -> u64 {
    text(dir, file).and_then(|t| parse::value(&t)).unwrap_or(0)
}

pub(crate) fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    text(dir, file).map(|t| parse::flat_keyed(&t)).unwrap_or_default()
}

/// The value of `key` in a flat-keyed map, 0 when absent.
pub(crate) fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// One entry per huge page size; `read` is given the name of that size's file `<name>`
/// ("hugetlb.2MB.<name>").
pub(crate) fn per_page_size<T>(sizes: Vec<String>, read: impl Fn(&dyn Fn(&str) -> String) -> T) -> BTreeMap<String, T> {
    sizes
        .into_iter()
        .map(|size| {
            let t = read(&|name: &str| format!("hugetlb.{size}.{name}"));
            (size, t)
        })
        .collect()
}
