//! Namespaces: which to create with clone3, which to join by path, and checking a path
//! really is a namespace of the expected type before anything is created (spec: MUST error).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use thiserror::Error;

const NSFS_MAGIC: i64 = 0x6e73_6673;
// _IO(0xb7, 0x3) from <linux/nsfs.h>.

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace file that is not what the config says, or a failed setns. Messages name
/// the path; the caller adds the field.
#[derive(Debug, Error)]
pub enum NsError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("statfs {}: {source}", path.display())]
    Statfs { path: PathBuf, source: Errno },
    #[error("{} is not a namespace file", path.display())]
    NotNamespace { path: PathBuf },
    #[error("{}: cannot read the namespace type: {source}", path.display())]
    Type { path: PathBuf, source: std::io::Error },
    #[error("{} is not a namespace of type {kind}", path.display())]
    WrongType { path: PathBuf, kind: &'static str },
    #[error("joining {kind} namespace {}: {source}", path.display())]
    Join { kind: &'static str, path: PathBuf, source: Errno },
    #[error("opening /proc/self/ns/pid_for_children: {0}")]
    OwnPid(#[source] std::io::Error),
    #[error("restoring the pid namespace: {0}")]
    RestorePid(#[source] Errno),
}

/// Opens a namespace file and checks that it is an nsfs inode of type `t`.
pub fn open_checked(t: LinuxNamespaceType, path: &Path) -> Result<OwnedFd, NsError> {
    let file = File::open(path).map_err(|source| NsError::Open { path: path.into(), source })?;
    let fs = nix::sys::statfs::fstatfs(file.as_fd()).map_err(|source| NsError::Statfs { path: path.into(), source })?;
    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(NsError::NotNamespace { path: path.into() });
    }
    let kind = crate::sys::ns::ns_type(file.as_fd()).map_err(|source| NsError::Type { path: path.into(), source })?;
    if kind != clone_flag(t).bits() {
        return Err(NsError::WrongType { path: path.into(), kind: proc_name(t) });
    }
    Ok(file.into())
}

pub fn check_path(t: LinuxNamespaceType, path: &Path) -> Result<(), NsError> {
    open_checked(t, path).map(drop)
}

/// The namespaces of a spec split into those to create and those to join.
pub struct Plan {
    /// CLONE_NEW* flags for clone3 (everything new except cgroup, which is unshared by the
    /// child once it sits in its cgroup, so that cgroup becomes its root). Empty when
    /// `staged`: the namespaces are then made by the first child with unshare.
    pub clone_flags: CloneFlags,
    pub new_cgroupns: bool,
    /// Namespaces joined by path, in the order to join them (user first, mount last); pid
    /// is joined by the parent unless `staged`.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    pub pid_path: Option<PathBuf>,
    /// A user or time namespace is involved: the init is made in two steps (see
    /// `init::stage`). The first child joins by path, unshares a new user namespace
    /// alone and waits for the parent to write its id maps, unshares the rest (so they are
    /// owned by that user namespace) and a time namespace whose offsets must be written
    /// before any process enters it, then forks the real init as the parent's child.
    pub staged: bool,
    /// The flags the first child unshares after the user namespace (staged only).
    pub unshare_flags: CloneFlags,
    pub new_user: bool,
}

impl Plan {
    /// The init runs in a user namespace other than the runtime's (new or joined).
    pub fn in_user_ns(&self) -> bool {
        self.new_user || self.join.iter().any(|(t, _)| *t == LinuxNamespaceType::User)
    }

    /// linux.namespaces names a namespace to join by path (the pid namespace included,
    /// which the parent may join instead of the init).
    pub fn joins_by_path(&self) -> bool {
        !self.join.is_empty() || self.pid_path.is_some()
    }
}

pub fn plan(spec: &Spec) -> Plan {
    let mut p = Plan {
        clone_flags: CloneFlags::empty(),
        new_cgroupns: false,
        join: Vec::new(),
        pid_path: None,
        staged: false,
        unshare_flags: CloneFlags::empty(),
        new_user: false,
    };
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    for ns in namespaces {
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Pid, Some(path)) => p.pid_path = Some(path.clone()),
            (t, Some(path)) => p.join.push((t, path.clone())),
            (LinuxNamespaceType::Cgroup, None) => p.new_cgroupns = true,
            (t, None) => p.clone_flags |= clone_flag(t),
        }
    }
    let user_or_time = CloneFlags::CLONE_NEWUSER | clone_flag(LinuxNamespaceType::Time);
    // Rootless, a pid namespace joined by path is joined by the first child too: berth
    // could enter it (it owns its user namespace) but not come back to its own pid
    // namespace when that belongs to a user namespace above (podman's), and every later
    // child of berth (the hooks) would be born in the container's.
    p.staged = p.clone_flags.intersects(user_or_time)
        || p.join.iter().any(|(t, _)| matches!(t, LinuxNamespaceType::User | LinuxNamespaceType::Time))
        || (p.pid_path.is_some() && crate::rootless::active());
    if p.staged {
        p.new_user = p.clone_flags.contains(CloneFlags::CLONE_NEWUSER);
        p.unshare_flags = p.clone_flags - CloneFlags::CLONE_NEWUSER;
        p.clone_flags = CloneFlags::empty();
        if let Some(path) = p.pid_path.take() {
            // setns on a pid namespace sets pid_for_children: the forked init lands in it.
            p.join.push((LinuxNamespaceType::Pid, path));
        }
    }
    // The order `join` keeps among the others: the user namespace apart (see there), the
    // mount namespace last, so the process leaves the runtime's mounts last.
    p.join.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    p
}

impl Plan {
    /// The container stays in the runtime's mount namespace (linux.namespaces has no
    /// `mount` entry): its rootfs is then set up there and entered with chroot, and the
    /// mounts made for it must be taken down by `delete`.
    pub fn shares_mount_ns(&self) -> bool {
        !(self.clone_flags | self.unshare_flags).contains(CloneFlags::CLONE_NEWNS)
            && !self.join.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount)
    }
}

/// Joins the namespaces of `plan.join` (in the child, before it sets anything up).
pub fn join(plan: &Plan) -> Result<(), NsError> {
    // Every path is opened first, in the runtime's own mount namespace.
    let mut user = None;
    let mut others = Vec::new();
    for (t, path) in &plan.join {
        let fd = open_checked(*t, path)?;
        if *t == LinuxNamespaceType::User {
            user = Some((*t, path, fd));
        } else {
            others.push((*t, path, fd));
        }
    }
    let enter = |(t, path, fd): (LinuxNamespaceType, &PathBuf, OwnedFd)| {
        nix::sched::setns(fd, clone_flag(t)).map_err(|source| NsError::Join {
            kind: proc_name(t),
            path: path.clone(),
            source,
        })
    };
    // runc's order: what the runtime may join as it is goes first, so that a namespace the
    // joined user namespace does not own (a network namespace made on the host, as for a
    // Kubernetes pod with its own user namespace) is joined with the runtime's privileges;
    // then the user namespace; then what needed it (a rootless runtime's).
    let mut later = Vec::new();
    for ns in others {
        if user.is_none() {
            enter(ns)?;
            continue;
        }
        match nix::sched::setns(&ns.2, clone_flag(ns.0)) {
            Ok(()) => {}
            Err(Errno::EPERM) => later.push(ns),
            Err(source) => return Err(NsError::Join { kind: proc_name(ns.0), path: ns.1.clone(), source }),
        }
    }
    if let Some(ns) = user {
        enter(ns)?;
    }
    later.into_iter().try_for_each(enter)
}

/// Sets this process's pid_for_children to the namespace at `path` and returns a handle to
/// the previous one, so the caller can restore it after cloning the container's init.
pub fn enter_pid_for_children(path: &Path) -> Result<OwnedFd, NsError> {
    let previous: OwnedFd = File::open("/proc/self/ns/pid_for_children").map_err(NsError::OwnPid)?.into();
    let target = open_checked(LinuxNamespaceType::Pid, path)?;
    nix::sched::setns(target, CloneFlags::CLONE_NEWPID).map_err(|source| NsError::Join {
        kind: proc_name(LinuxNamespaceType::Pid),
        path: path.into(),
        source,
    })?;
    Ok(previous)
}

pub fn restore_pid_for_children(previous: OwnedFd) -> Result<(), NsError> {
    nix::sched::setns(previous, CloneFlags::CLONE_NEWPID).map_err(NsError::RestorePid)
}

/// The namespaces of process `pid` that differ from ours, as CLONE_NEW* flags: what a
/// process must join to be in the same namespaces (joining one it is already in would be
/// refused for the user namespace).
pub fn differing_from_self(pid: i32) -> std::io::Result<CloneFlags> {
    use std::os::unix::fs::MetadataExt;
    const ALL: [LinuxNamespaceType; 8] = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
    ];
    let mut flags = CloneFlags::empty();
    for t in ALL {
        let name = proc_name(t);
        let theirs = match std::fs::metadata(format!("/proc/{pid}/ns/{name}")) {
            Ok(m) => m,
            // A kernel without this namespace type.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            flags |= clone_flag(t);
        }
    }
    Ok(flags)
}
