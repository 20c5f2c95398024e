//! The release berth is linked in the order runtime/text-order.txt names (docs/performance.md,
//! memory). lld skips, without a word, the names a build does not have, and the names carry
//! hashes that follow the toolchain and the features cargo unifies over the packages it
//! builds: a `cargo build -p berth` and the workspace build `make build` runs name a third
//! of the same functions differently. A berth linked past its order still works, but every
//! `create` then maps about 1.8 MiB more text (peak RSS 2384 → 4176 KiB on the bench's
//! bundle), so the order is checked against the binary the other tests run.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

/// The release berth: `BERTH` (as `make conformance` sets it) or the workspace's.
fn release_berth() -> PathBuf {
    std::env::var_os("BERTH").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-gnu/release/berth")
    })
}

#[test]
fn the_release_berth_defines_the_functions_its_text_order_names() {
    let berth = release_berth();
    let order_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime/text-order.txt");
    let order = std::fs::read_to_string(&order_path).expect("read runtime/text-order.txt");
    let wanted: Vec<&str> = order.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(wanted.len() > 100, "runtime/text-order.txt names only {} functions", wanted.len());

    let out = Command::new("nm").arg("--defined-only").arg(&berth).output().expect("run nm (binutils)");
    assert!(out.status.success(), "nm {}: {}", berth.display(), String::from_utf8_lossy(&out.stderr));
    let symbols = String::from_utf8_lossy(&out.stdout);
    let defined: HashSet<&str> = symbols.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();

    let missing: Vec<&str> = wanted.iter().copied().filter(|n| !defined.contains(n)).collect();
    // A few names may go with code removed since the order was written; a build whose
    // hashes moved on misses hundreds.
    assert!(
        missing.len() * 20 <= wanted.len(),
        "{} of the {} functions runtime/text-order.txt names are not defined in {} (first: {}): \
         its symbol names have moved on (a new toolchain, or other features unified over the \
         workspace); run scripts/text-order.sh write",
        missing.len(),
        wanted.len(),
        berth.display(),
        missing.first().copied().unwrap_or("")
    );
}
