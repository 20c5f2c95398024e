//! The rootfs path resolver, differential: a small tree of dirs, files and symlinks is built
//! in a temp dir, then `walk_in_root` (berth's fd-by-fd walk, runtime/src/rootfs/resolve.rs)
//! must land where the kernel's `openat2(RESOLVE_IN_ROOT)` does, or fail the same way.
//!
//! Input: lines; each but the last builds one entry, the last is the path to resolve:
//!   `d<path>` a directory, `f<path>` a file, `l<path> <target>` a symlink (target: any bytes).
//! Entries are created only under directories made earlier in the same input (never through
//! a link), so building the tree cannot write outside it.
#![no_main]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth::rootfs::resolve::{open_dir, walk_in_root, Walked};
use libfuzzer_sys::fuzz_target;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::fstat;

const MAX_ENTRIES: usize = 64;

fn base() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("berth-fuzz-resolve-{}", std::process::id())))
}

fn id(fd: &OwnedFd) -> (u64, u64) {
    let st = fstat(fd).expect("fstat");
    (st.st_dev, st.st_ino)
}

/// The components of an entry's path if it is one we may create: plain names only.
fn plain(path: &[u8]) -> Option<Vec<&[u8]>> {
    let parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    let ok = !parts.is_empty()
        && parts.iter().all(|p| !p.is_empty() && *p != b"." && *p != b".." && p.len() <= 255 && !p.contains(&0));
    ok.then_some(parts)
}

fn build(root: &Path, entries: &[&[u8]]) {
    // Directories made so far, relative to root ("" is root itself).
    let mut dirs: HashSet<Vec<u8>> = HashSet::from([Vec::new()]);
    for e in entries.iter().take(MAX_ENTRIES) {
        let Some((&kind, rest)) = e.split_first() else {
            continue;
        };
        let (path, target) = match kind {
            b'l' => match rest.iter().position(|b| *b == b' ') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => continue,
            },
            b'd' | b'f' => (rest, None),
            _ => continue,
        };
        let Some(parts) = plain(path) else { continue };
        let parent = parts[..parts.len() - 1].join(&b'/');
        if !dirs.contains(&parent) {
            continue;
        }
        let p = root.join(OsStr::from_bytes(path));
        if p.symlink_metadata().is_ok() {
            continue;
        }
        match (kind, target) {
            (b'd', _) => {
                if std::fs::create_dir(&p).is_ok() {
                    dirs.insert(path.to_vec());
                }
            }
            (b'f', _) => {
                let _ = std::fs::write(&p, "f");
            }
            (_, Some(t)) if !t.is_empty() && !t.contains(&0) && t.len() < 4096 => {
                let _ = symlink(OsStr::from_bytes(t), &p);
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let Some((path, entries)) = lines.split_last() else {
        return;
    };
    if path.contains(&0) || path.len() >= 4096 {
        return;
    }
    let root = base().join("root");
    let _ = std::fs::remove_dir_all(base());
    std::fs::create_dir_all(&root).expect("fuzz root");
    build(&root, entries);

    let rootfd = open_dir(&root).expect("open root");
    let path = Path::new(OsStr::from_bytes(path));
    // berth takes paths as Rust's `Path::components` (like runc's filepath.Clean): a trailing
    // "/" or "/." is dropped, so "link-to-file/" is the file, where the kernel says ENOTDIR;
    // and "" is the root itself (in_root_relative), where the kernel says ENOENT. The oracle
    // gets the path as berth reads it.
    let mut bytes = path.as_os_str().as_bytes();
    while bytes.len() > 1 && (bytes.ends_with(b"/") || bytes.ends_with(b"/.")) {
        bytes = bytes.strip_suffix(b"/").or_else(|| bytes.strip_suffix(b"/.")).unwrap_or(bytes);
    }
    let oracle_path = if bytes.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(bytes)) };
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let want = loop {
        match openat2(rootfd.as_fd(), oracle_path, how) {
            Err(Errno::EAGAIN) => continue,
            r => break r.map(|f| id(&f)),
        }
    };
    let got = walk_in_root(rootfd.as_fd(), path, None).map(|w| match w {
        Walked::Found { fd, .. } | Walked::Dir(fd) => Some(id(&fd)),
        Walked::Missing { .. } => None,
    });
    match (want, got) {
        (Ok(w), Ok(Some(g))) => assert_eq!(w, g, "walk_in_root and openat2 opened different files for {path:?}"),
        // A missing last component: the walk reports where it would go, the kernel ENOENT.
        (Err(Errno::ENOENT), Ok(None) | Err(Errno::ENOENT)) => {}
        (Err(w), Err(g)) => assert_eq!(w, g, "walk_in_root and openat2 fail differently for {path:?}"),
        (w, g) => panic!("{path:?}: openat2 {w:?} vs walk_in_root {:?}", g.map(|x| x.is_some())),
    }
});
