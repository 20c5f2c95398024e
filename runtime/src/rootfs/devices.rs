//! /dev population: default nodes, `linux.devices`, the standard symlinks and
//! /dev/ptmx. Every node is created relative to a directory fd resolved
//! inside the root, so a `dev` symlink in the image cannot aim mknod at the
//! host (CVE-2026-41579, CVE-2026-47766).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, makedev, mknodat, umask, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::resolve::{self, clean_container_path};
use super::{sys_err, RootfsError};
use crate::sys::mount as sys;

struct Node<'a> {
    field: String,
    path: &'a Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Spec entries must match an existing file exactly (config-linux.md);
    /// defaults on a non-tmpfs /dev keep whatever the image has, like runc.
    strict: bool,
}

const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn kind_of(t: LinuxDeviceType) -> SFlag {
    match t {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    }
}

fn matches(st: &FileStat, n: &Node) -> bool {
    let kind = st.st_mode & libc::S_IFMT;
    if kind != n.kind.bits() {
        return false;
    }
    n.kind == SFlag::S_IFIFO || st.st_rdev == makedev(n.major, n.minor)
}

/// When mknod is refused (a user namespace), bind the host's node instead.
fn bind_host_node(parent: BorrowedFd, name: &str, n: &Node) -> Result<(), RootfsError> {
    let host = nix::fcntl::open(n.path, OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .map_err(|e| RootfsError::sys(&n.field, format!("open host {}", n.path.display()), e))?;
    let st = fstat(&host).map_err(sys_err(&n.field, "stat host device"))?;
    if !matches(&st, n) {
        return Err(RootfsError::invalid(&n.field, "host device to bind does not match type/major/minor"));
    }
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    match openat(parent, name, flags, Mode::from_bits_truncate(0o644)) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(RootfsError::sys(&n.field, "create bind target", e)),
    }
    let target =
        resolve::open_beneath(parent, name.as_ref(), OFlag::O_PATH).map_err(sys_err(&n.field, "open bind target"))?;
    let tree = sys::open_tree_fd(host.as_fd(), false).map_err(sys_err(&n.field, "open_tree device"))?;
    sys::move_mount_fd(tree.as_fd(), target.as_fd()).map_err(sys_err(&n.field, "bind device"))
}

/// The directories nodes go into, each resolved (and made) inside the root once: most
/// nodes share /dev.
#[derive(Default)]
struct Parents(Vec<(PathBuf, OwnedFd)>);

impl Parents {
    fn get(&mut self, root: BorrowedFd, path: &Path) -> nix::Result<BorrowedFd<'_>> {
        let i = match self.0.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                let fd = resolve::mkdir_all_in_root(root, path, Mode::from_bits_truncate(0o755))?;
                self.0.push((path.to_path_buf(), fd));
                self.0.len() - 1
            }
        };
        Ok(self.0[i].1.as_fd())
    }
}

fn create(root: BorrowedFd, parents: &mut Parents, n: &Node) -> Result<(), RootfsError> {
    let path = clean_container_path(n.path);
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name().and_then(|s| s.to_str())) else {
        return Err(RootfsError::invalid(&n.field, "bad device path"));
    };
    let parent = parents.get(root, parent_path).map_err(sys_err(&n.field, "create parent directory"))?;
    let perm = Mode::from_bits_truncate(n.mode & 0o7777);
    match mknodat(parent, name, n.kind, perm, makedev(n.major, n.minor)) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            let st = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys_err(&n.field, "stat existing"))?;
            if matches(&st, n) || !n.strict {
                return Ok(());
            }
            return Err(RootfsError::invalid(
                &n.field,
                format!("{} already exists with a different type or device number", n.path.display()),
            ));
        }
        Err(Errno::EPERM) => return bind_host_node(parent, name, n),
        Err(e) => return Err(RootfsError::sys(&n.field, "mknod", e)),
    }
    fchownat(parent, name, Some(Uid::from_raw(n.uid)), Some(Gid::from_raw(n.gid)), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(sys_err(&n.field, "chown"))
}

fn spec_node(i: usize, d: &LinuxDevice) -> Node<'_> {
    Node {
        field: format!("linux.devices[{i}]"),
        path: d.path(),
        kind: kind_of(d.typ()),
        major: d.major().max(0) as u64,
        minor: d.minor().max(0) as u64,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
        strict: true,
    }
}

/// Create the default and configured device nodes, the /dev symlinks and the
/// /dev/ptmx → pts/ptmx link.
pub(crate) fn setup_dev(root: BorrowedFd, spec: &Spec) -> Result<(), RootfsError> {
    let devs: &[LinuxDevice] = spec.linux().as_ref().and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    let mut nodes: Vec<Node> = Vec::with_capacity(DEFAULTS.len() + devs.len());
    for (p, major, minor) in DEFAULTS {
        let path = Path::new(p);
        if devs.iter().any(|d| clean_container_path(d.path()) == path) {
            continue;
        }
        nodes.push(Node {
            field: format!("default device {p}"),
            path,
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
            strict: false,
        });
    }
    // /dev/ptmx is always the link to pts/ptmx made below, as runc makes it: a node asked
    // for there is not made (rootless, a bind there could not be replaced by the link).
    let ptmx = Path::new("/dev/ptmx");
    nodes.extend(
        devs.iter().enumerate().filter(|(_, d)| clean_container_path(d.path()) != ptmx).map(|(i, d)| spec_node(i, d)),
    );

    // fileMode must land exactly, not filtered by the runtime's umask.
    let old = umask(Mode::empty());
    let mut parents = Parents::default();
    let result = nodes.iter().try_for_each(|n| create(root, &mut parents, n));
    umask(old);
    result?;

    let dev = parents.get(root, Path::new("/dev")).map_err(sys_err("/dev", "create /dev"))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(RootfsError::sys(format!("/dev/{name}"), "symlink", e)),
        }
    }
    match unlinkat(dev, "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(RootfsError::sys("/dev/ptmx", "remove", e)),
    }
    symlinkat("pts/ptmx", dev, "ptmx").map_err(sys_err("/dev/ptmx", "symlink"))?;
    Ok(())
}
