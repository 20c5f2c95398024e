//! The release berth is linked in the order runtime/text-order.txt names (docs/performance.md,
//! memory). lld skips, without a word, the names a build does not have, and the names carry
//! hashes that follow the toolchain and the features cargo unifies over the packages it
//! builds: a `cargo build -p berth` and the workspace build `make build` runs name a third
//! of the same functions differently. A berth linked past its order still works, but every
//! `create` then maps about 1.8 MiB more text (peak RSS 2384 → 4176 KiB on the bench's
//! bundle), so the order is checked against the binary the other tests run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

/// The release berth: `BERTH` (as `make conformance` sets it) or the workspace's.
fn release_berth() -> PathBuf {
    std::env::var_os("BERTH").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-gnu/release/berth")
    })
}

/// The names runtime/text-order.txt lists, and those the release berth defines.
fn order_and_symbols() -> (String, String) {
    let berth = release_berth();
    let order_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime/text-order.txt");
    let order = std::fs::read_to_string(&order_path).expect("read runtime/text-order.txt");
    let out = Command::new("nm").arg("--defined-only").arg(&berth).output().expect("run nm (binutils)");
    assert!(out.status.success(), "nm {}: {}", berth.display(), String::from_utf8_lossy(&out.stderr));
    (order, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn listed(order: &str) -> Vec<&str> {
    order.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

fn defined(symbols: &str) -> HashSet<&str> {
    symbols.lines().filter_map(|l| l.split_whitespace().nth(2)).collect()
}

/// A legacy-mangled name without its hash (`_ZN5berth9container6create17h…E` →
/// `_ZN5berth9container6create`); None for other manglings.
fn path_of(name: &str) -> Option<&str> {
    let body = name.strip_suffix('E')?;
    let (path, hash) = body.split_at(body.len().checked_sub(19)?);
    (hash.starts_with("17h") && hash[3..].bytes().all(|b| b.is_ascii_hexdigit())).then_some(path)
}

#[test]
fn the_release_berth_defines_the_functions_its_text_order_names() {
    let berth = release_berth();
    let (order, symbols) = order_and_symbols();
    let wanted = listed(&order);
    assert!(wanted.len() > 100, "runtime/text-order.txt names only {} functions", wanted.len());
    let defined = defined(&symbols);

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

/// A function's legacy symbol hash covers its type, so changing a signature renames it and
/// lld, not finding the old name, puts the function wherever it likes. A handful of such
/// functions on `create`'s path is far below the 5 % above and still spread its code: with
/// 14 of them (`container::create`, `state::Store::load` and `save`, `cli::run::run`, …)
/// `create`'s code lay in 22 windows of 64 KiB instead of 12 and its peak RSS rose from
/// 1696 to 2208 KiB. A name the order lists that the binary defines only under another hash
/// (one function of that path, so not one instance of a generic among others) has moved.
#[test]
fn no_function_the_text_order_names_has_moved_to_another_symbol_hash() {
    let (order, symbols) = order_and_symbols();
    let defined = defined(&symbols);
    let mut by_path: HashMap<&str, Vec<&str>> = HashMap::new();
    for name in &defined {
        if let Some(path) = path_of(name) {
            by_path.entry(path).or_default().push(name);
        }
    }
    let moved: Vec<String> = listed(&order)
        .into_iter()
        .filter(|n| !defined.contains(n))
        .filter_map(|n| match by_path.get(path_of(n)?).map(Vec::as_slice) {
            Some([now]) => Some(format!("{n} (now {now})")),
            _ => None,
        })
        .collect();
    // One moved function costs at most one window of fault-around; allow two.
    assert!(
        moved.len() <= 2,
        "{} functions runtime/text-order.txt names are defined under another hash (their \
         signatures changed), so create's code is spread again: run scripts/text-order.sh write. \
         Moved:\n{}",
        moved.len(),
        moved.join("\n")
    );
}

#[test]
fn a_symbol_path_is_its_name_without_the_hash() {
    assert_eq!(path_of("_ZN5berth9container6create17h275ce665d8ddc636E"), Some("_ZN5berth9container6create"));
    assert_eq!(path_of("_RNvXsq_NtCslNYArtu3iFV_5alloc6string.1331"), None);
    assert_eq!(path_of("E"), None);
}
