//! Path resolution scoped to a container root (T3) and to a verified procfs (T4).
//!
//! Everything here works on descriptors: a string path is walked once, each
//! step relative to an fd we already hold, so a symlink (absolute, `..`-heavy
//! or swapped in by a racing process) can never lead the runtime out of the root.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

/// Linux's own limit on symlinks followed during one lookup.
const MAX_SYMLINKS: usize = 40;
/// Components visited in one walk, links and retries included.
const MAX_STEPS: usize = 4096;

/// The path as components relative to `/`, with `.` dropped. `..` is kept:
/// its meaning depends on the symlinks before it, resolved during the walk.
fn relative_components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// `path` made relative to the root (leading `/` stripped); `.` for the root itself.
pub fn in_root_relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path.components().filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_))).collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Lexical clean of a container path, anchored at `/` (as runc's CleanPath):
/// `..` can never climb above `/`.
pub fn clean_container_path(path: &Path) -> PathBuf {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    let mut p = PathBuf::from("/");
    p.extend(out);
    p
}

fn openat2_retry(dir: BorrowedFd, path: &Path, how: OpenHow) -> nix::Result<OwnedFd> {
    // RESOLVE_IN_ROOT/BENEATH return EAGAIN when a concurrent rename might have
    // moved something across the root boundary; the kernel asks us to retry.
    let mut tries = 0;
    loop {
        match openat2(dir, path, how) {
            Err(Errno::EAGAIN) if tries < 32 => tries += 1,
            r => return r,
        }
    }
}

/// Open `path` inside `root`: absolute symlinks and `..` are clamped to `root`
/// (openat2 RESOLVE_IN_ROOT), magic links are refused.
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2_retry(root, &in_root_relative(path), how)
}

/// `path` inside `root` if it is there already, in one call: most mount points exist in the
/// image (/proc, /dev, /sys). The kernel's RESOLVE_IN_ROOT is what [`walk_in_root`] mirrors
/// one component at a time (the rootfs tests hold the two to the same inode), so its answer
/// is the walk's. None on any error: the walk then creates what is missing, or fails with
/// its own error as before.
pub(crate) fn existing_in_root(root: BorrowedFd, path: &Path, flags: OFlag) -> Option<OwnedFd> {
    open_in_root(root, path, flags, Mode::empty()).ok()
}

/// Open exactly one name in `dir` without following anything.
fn open_one(dir: BorrowedFd, name: &OsStr, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2_retry(dir, Path::new(name), how)
}

/// Where a walk inside the root ended.
pub enum Walked {
    /// The final component exists and is not a symlink: its O_PATH fd.
    Found { parent: OwnedFd, name: OsString, fd: OwnedFd },
    /// The final component does not exist (or is a dangling link target's
    /// last name); its would-be parent dir fd and name.
    Missing { parent: OwnedFd, name: OsString },
    /// The path ended on a directory reached through `.`/`..`/a link to a
    /// directory, or named the root itself.
    Dir(OwnedFd),
}

/// Walk `path` inside `root`, following symlinks the way RESOLVE_IN_ROOT does
/// but one component at a time, so intermediate directories can be created
/// (with `mkdir`) by fd, including those a dangling link points at.
pub fn walk_in_root(root: BorrowedFd, path: &Path, mkdir: Option<Mode>) -> nix::Result<Walked> {
    let mut stack: Vec<OwnedFd> = vec![open_one(root, OsStr::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)?];
    let mut rest = relative_components(path);
    let mut links = 0usize;
    // Bounds the mkdir/re-walk retries a racing process could otherwise
    // keep going forever.
    let mut steps = 0usize;
    while let Some(comp) = rest.pop_front() {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(Errno::ELOOP);
        }
        if comp == "." {
            // Only kept after a symlink's target (above): the directory on top stays.
            continue;
        }
        if comp == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let last = rest.is_empty();
        let cur = stack.last().ok_or(Errno::EINVAL)?.as_fd();
        match open_one(cur, &comp, OFlag::O_PATH) {
            Ok(fd) => {
                let st = fstat(&fd)?;
                let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
                if kind == SFlag::S_IFLNK {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    let target = readlinkat(&fd, "")?;
                    let target = Path::new(&target);
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    let mut new_rest = relative_components(target);
                    // A target ending in "/" or "/." names a directory (the kernel says
                    // ENOTDIR where its last component is not one): a "." kept after it
                    // makes that component an intermediate one, which must be a directory.
                    let raw = target.as_os_str().as_encoded_bytes();
                    if raw.ends_with(b"/") || raw.ends_with(b"/.") {
                        new_rest.push_back(OsString::from("."));
                    }
                    new_rest.extend(rest.drain(..));
                    rest = new_rest;
                    // A link to "/" or "." leaves nothing to walk: the result
                    // is the directory on top of the stack (after the loop).
                    continue;
                }
                if last {
                    let parent = stack.pop().ok_or(Errno::EINVAL)?;
                    return Ok(Walked::Found { parent, name: comp, fd });
                }
                if kind != SFlag::S_IFDIR {
                    return Err(Errno::ENOTDIR);
                }
                stack.push(fd);
            }
            Err(Errno::ENOENT) => {
                if last {
                    let parent = stack.pop().ok_or(Errno::EINVAL)?;
                    return Ok(Walked::Missing { parent, name: comp });
                }
                let Some(mode) = mkdir else {
                    return Err(Errno::ENOENT);
                };
                match mkdirat(cur, Path::new(&comp), mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                // Re-walk this name: if a racer swapped in a symlink we follow
                // it inside the root like any other link.
                rest.push_front(comp);
            }
            Err(e) => return Err(e),
        }
    }
    let fd = stack.pop().ok_or(Errno::EINVAL)?;
    Ok(Walked::Dir(fd))
}

/// Create every missing directory of `path` inside `root` and return an
/// O_PATH|O_DIRECTORY fd of the last one. Never follows a link out of `root`
/// (CVE-2024-45310): links are resolved inside it, dangling ones by creating
/// their target inside the root.
pub fn mkdir_all_in_root(root: BorrowedFd, path: &Path, mode: Mode) -> nix::Result<OwnedFd> {
    if let Some(fd) = existing_in_root(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        return Ok(fd);
    }
    let mut tries = 0;
    loop {
        match walk_in_root(root, path, Some(mode))? {
            Walked::Dir(fd) => return Ok(fd),
            Walked::Found { fd, .. } => {
                let st = fstat(&fd)?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(Errno::ENOTDIR);
                }
                return Ok(fd);
            }
            Walked::Missing { parent, name } => {
                match mkdirat(&parent, Path::new(&name), mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                match open_one(parent.as_fd(), &name, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                    Ok(fd) => return Ok(fd),
                    // Someone replaced the new dir with a link: walk again, inside the root.
                    Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) if tries < 8 => tries += 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Open the host's /proc, check it really is procfs at its root, then open
/// `path` beneath it without crossing mounts or following magic links (T4).
/// `path` is relative to /proc, e.g. "sys/net/ipv4/ip_forward".
pub fn open_proc_beneath(path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let proc_root = nix::fcntl::open(
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    verify_procfs_root(proc_root.as_fd())?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV);
    let rel = path.strip_prefix("/proc").unwrap_or(path);
    openat2_retry(proc_root.as_fd(), &in_root_relative(rel), how)
}

/// A procfs root has PROC_SUPER_MAGIC and inode 1; anything else (a bind of a
/// subdirectory, a tmpfs with fake files) is refused.
pub fn verify_procfs_root(fd: BorrowedFd) -> nix::Result<()> {
    if fstatfs(fd)?.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(Errno::EXDEV);
    }
    if fstat(fd)?.st_ino != 1 {
        return Err(Errno::EXDEV);
    }
    Ok(())
}

/// Bytes of a path for error messages and NUL checks.
pub fn has_nul(p: &Path) -> bool {
    p.as_os_str().as_bytes().contains(&0)
}

/// O_PATH fd of a directory named by a trusted (host-side or already-rooted) path.
pub fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
}

/// Open one name in `dir`, never following a link (a link yields ELOOP,
/// or an fd of the link itself with O_PATH).
pub(crate) fn open_beneath(dir: BorrowedFd, name: &OsStr, flags: OFlag) -> nix::Result<OwnedFd> {
    open_one(dir, name, flags)
}
