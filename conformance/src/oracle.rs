//! Running one test body against berth and the reference runtimes (runc, crun) where
//! they are installed, each in its own [`Case`].

use crate::case::Case;
use crate::runtime::Runtime;
use std::path::Path;

/// The reference runtimes this machine has: (label, binary).
pub const REFERENCES: [(&str, &str); 2] = [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")];

/// Runs `f` with a case named `{name}_{label}` for berth, then runc and crun.
pub fn each_runtime(name: &str, f: impl FnMut(&mut Case, &str)) {
    each_runtime_but(&[], name, f)
}

/// `each_runtime` without the runtimes in `skip` (where they differ for a reason of their
/// own, given at the call).
pub fn each_runtime_but(skip: &[&str], name: &str, mut f: impl FnMut(&mut Case, &str)) {
    let all =
        std::iter::once(("berth", None)).chain(REFERENCES.iter().map(|(l, b)| (*l, Some(*b))));
    for (label, bin) in all {
        if skip.contains(&label) || bin.is_some_and(|b| !Path::new(b).exists()) {
            continue;
        }
        let mut c = Case::new(&format!("{name}_{label}"));
        if let Some(b) = bin {
            c.rt = Runtime::with_binary(Path::new(b), &c.dir.join("root"));
        }
        f(&mut c, label);
    }
}
