//! Running one test body against berth and the reference runtimes (runc, crun), so a
//! test states behaviour the others share, or names the runtime that differs and why.

use crate::case::Case;
use crate::runtime::Runtime;
use std::path::Path;

/// The reference runtimes installed on this host.
pub const REFERENCES: [(&str, &str); 2] = [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")];

/// Runs `f` with a fresh case for berth (or `$BERTH`), then for each installed reference
/// runtime not named in `skip`. `f` gets the runtime's label for its messages.
pub fn each_runtime_but(skip: &[&str], name: &str, mut f: impl FnMut(&mut Case, &str)) {
    let mut c = Case::new(&format!("{name}_berth"));
    f(&mut c, "berth");
    drop(c);
    for (label, bin) in REFERENCES {
        if skip.contains(&label) || !Path::new(bin).exists() {
            continue;
        }
        let mut c = Case::new(&format!("{name}_{label}"));
        c.rt = Runtime::with_binary(Path::new(bin), &c.dir.join("root"));
        f(&mut c, label);
    }
}

/// [`each_runtime_but`] with every reference runtime.
pub fn each_runtime(name: &str, f: impl FnMut(&mut Case, &str)) {
    each_runtime_but(&[], name, f)
}
