//! The container's root filesystem: validate the mount config, build the
//! mount tree inside the container's mount namespace, create /dev, switch
//! root, and apply maskedPaths/readonlyPaths/root.readonly.
//!
//! Call order (from the container init, inside its new mount namespace):
//! [`validate`] (parent) → [`prepare`] → createContainer hooks, console →
//! [`Rootfs::enter`] → [`finalize`].
//! Without a mount namespace of its own the same calls run in the runtime's
//! mount namespace and enter with chroot ([`shared_ns`]).
//!
//! Contract with the caller:
//! - [`prepare`] needs the runtime's (host) /proc mounted at /proc: it names
//!   the fds it resolved inside the rootfs as `/proc/self/fd/N` for mount(2),
//!   and checks first that /proc is a procfs root.
//! - [`prepare`] asks `host_open` for each id-mapped tree and, in a user
//!   namespace, for a bind source it cannot open itself (see [`source`]).
//! - The only fd held between the calls is the O_PATH, O_CLOEXEC fd of the
//!   rootfs inside [`Rootfs`]; [`Rootfs::enter`] consumes and closes it, so
//!   after it returns no fd of ours points at a host path.
//! - [`finalize`] uses only fds opened inside the new root and the new mount
//!   API (open_tree, move_mount, mount_setattr, fsopen); it does not need the
//!   container's /proc.
//! - Mount flags differ from runc in one way: a bind mount keeps the source
//!   mount's nosuid/nodev/noexec/ro unless an option clears them (`suid`,
//!   `dev`, `exec`, `rw`); runc's remount drops flags it was not given.
//! - A `cgroup` mount is read-only unless its options say `rw` explicitly.

mod cgroup;
mod console;
mod copyup;
mod devices;
pub mod idmapped;
mod masks;
mod mounts;
pub mod options;
mod pivot;
pub mod resolve;
pub mod shared_ns;
pub mod source;
mod validate;

#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

pub use validate::{validate, validate_no_pivot};

/// Every error names the config field (or the step) it comes from.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The configuration asks for something berth refuses.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A system call failed while applying `field`.
    #[error("{field}: {op}: {errno}")]
    Sys {
        field: String,
        op: String,
        #[source]
        errno: Errno,
    },
    /// `berth create` could not open the bind source of `field` for the init.
    #[error("{field}: {source}")]
    HostOpen {
        field: String,
        #[source]
        source: source::HostOpenError,
    },
}

impl RootfsError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RootfsError::Invalid { field: field.into(), reason: reason.into() }
    }
    pub(crate) fn sys(field: impl Into<String>, op: impl Into<String>, errno: Errno) -> Self {
        RootfsError::Sys { field: field.into(), op: op.into(), errno }
    }
}

/// `map_err` helper: `.map_err(sys_err(&field, "mount"))`.
pub(crate) fn sys_err<'a>(field: &'a str, op: &'a str) -> impl FnOnce(Errno) -> RootfsError + 'a {
    move |e| RootfsError::sys(field, op, e)
}

/// One cgroup hierarchy to show under a `type: "cgroup"` mount (from the cgroups manager).
pub use crate::cgroups::CgroupMount;

/// What [`prepare`] needs.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute and canonical (no symlinks): the caller resolves `root.path`
    /// against the bundle first.
    pub rootfs: &'a Path,
    /// Relative bind-mount sources are resolved against it.
    pub bundle: &'a Path,
    pub cgroup_mounts: Vec<CgroupMount>,
    /// The container has its own cgroup namespace: mount cgroupfs fresh
    /// instead of binding the host directories.
    pub cgroupns: bool,
    /// No mount namespace of its own: set up in the runtime's, enter with chroot
    /// (see [`shared_ns`]).
    pub shares_mount_ns: bool,
    /// The container has a user namespace (new or joined).
    pub in_user_ns: bool,
    /// Asks `berth create` for a bind source: one the init cannot open in a user namespace,
    /// and every id-mapped one (see [`source`]).
    pub host_open: Option<source::HostOpen<'a>>,
}

/// The prepared root, held by an O_PATH fd of the rootfs bind mount.
#[derive(Debug)]
pub struct Rootfs {
    root: OwnedFd,
    /// The rootfs path, only for --no-pivot's mountinfo filtering.
    path: PathBuf,
    /// `linux.rootfsPropagation` if given, re-applied to `/` after the pivot.
    propagation: Option<MsFlags>,
    /// Entered with chroot in the runtime's mount namespace (see [`shared_ns`]).
    shares_mount_ns: bool,
}

/// Build the container's mount tree. Runs in the child, inside its new mount
/// namespace, with the host's /proc still visible (mounts target
/// `/proc/self/fd/N` of fds resolved inside the rootfs).
pub fn prepare(cfg: &RootfsConfig) -> Result<Rootfs, RootfsError> {
    if !cfg.rootfs.is_absolute() {
        return Err(RootfsError::invalid("root.path", format!("{} is not absolute", cfg.rootfs.display())));
    }
    let propagation = match cfg.spec.linux().as_ref().and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => None,
        Some(p) => Some(options::root_propagation(p).ok_or_else(|| {
            RootfsError::invalid("linux.rootfsPropagation", format!("rootfsPropagation={p} is not supported"))
        })?),
    };
    // Mount targets are named through /proc/self/fd/N: make sure that /proc
    // is a real procfs before trusting it to name our fds.
    let proc = resolve::open_dir(Path::new("/proc")).map_err(sys_err("/proc", "open host /proc"))?;
    resolve::verify_procfs_root(proc.as_fd())
        .map_err(|_| RootfsError::invalid("/proc", "the runtime's /proc is not a procfs root"))?;
    drop(proc);
    if cfg.shares_mount_ns {
        shared_ns::prepare_root(cfg.rootfs, propagation)?;
    } else {
        pivot::prepare_root(cfg.rootfs, propagation)?;
    }
    let root = resolve::open_dir(cfg.rootfs)
        .map_err(|e| RootfsError::sys("root.path", format!("open {}", cfg.rootfs.display()), e))?;

    let ctx = mounts::Ctx {
        root: root.as_fd(),
        bundle: cfg.bundle,
        cgroup_mounts: &cfg.cgroup_mounts,
        cgroupns: cfg.cgroupns,
        in_user_ns: cfg.in_user_ns,
        host_open: cfg.host_open,
        mount_label: crate::lsm::mount_label(cfg.spec),
    };
    let mut dev_is_bind = false;
    for (i, m) in cfg.spec.mounts().iter().flatten().enumerate() {
        let outcome = mounts::mount_entry(&ctx, i, m)?;
        if outcome.dest == Path::new("/dev") {
            dev_is_bind = outcome.bind;
        }
    }
    if !dev_is_bind {
        devices::setup_dev(root.as_fd(), cfg.spec)?;
    }
    Ok(Rootfs { root, path: cfg.rootfs.to_path_buf(), propagation, shares_mount_ns: cfg.shares_mount_ns })
}

/// Opens the devpts ptmx of the root at `root` (for `exec --tty`, which runs inside the
/// container's mount namespace), verified as for the init's terminal.
pub fn open_ptmx_in(root: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, RootfsError> {
    console::open_ptmx(root)
}

impl Rootfs {
    /// The O_PATH fd of the rootfs (for callers that resolve paths with
    /// [`resolve::open_in_root`] before entering, e.g. to check the cwd).
    pub fn root_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Open the container's /dev/ptmx (normally → pts/ptmx), resolved inside
    /// the root and verified to be the devpts ptmx (char 5:2) before it is
    /// opened O_RDWR|O_NOCTTY|O_CLOEXEC.
    pub fn open_ptmx(&self) -> Result<OwnedFd, RootfsError> {
        console::open_ptmx(self.root.as_fd())
    }

    /// Bind the pty peer (from ioctl TIOCGPTPEER) onto `<root>/dev/console`,
    /// created as a regular file without following links (CVE-2025-52565).
    pub fn mount_console(&self, peer: std::os::fd::BorrowedFd) -> Result<(), RootfsError> {
        console::mount_console(self.root.as_fd(), peer)
    }

    /// Make the rootfs `/` and chdir into it: pivot_root, or with `no_pivot`
    /// MS_MOVE + chroot. Consumes the root fd, so no fd to a host path is held
    /// afterwards.
    pub fn enter(self, no_pivot: bool) -> Result<(), RootfsError> {
        if self.shares_mount_ns {
            return shared_ns::enter(self.root);
        }
        pivot::enter(self.root, &self.path, no_pivot, self.propagation)
    }
}

/// After [`Rootfs::enter`]: readonlyPaths, maskedPaths, /dev read-only if its
/// mount asked for `ro`, and `root.readonly`, in runc's order. Every step
/// works on fds opened inside the new root with the new mount API, so it does
/// not depend on the container's /proc being mounted.
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let root = resolve::open_dir(Path::new("/")).map_err(sys_err("root", "open /"))?;
    if let Some(linux) = spec.linux() {
        for (i, p) in linux.readonly_paths().iter().flatten().enumerate() {
            masks::readonly_path(root.as_fd(), &format!("linux.readonlyPaths[{i}]"), Path::new(p))?;
        }
        let masked = linux.masked_paths().as_deref().unwrap_or(&[]);
        if !masked.is_empty() {
            masks::mask_paths(root.as_fd(), masked, crate::lsm::mount_label(spec))?;
        }
    }
    let dev_ro = spec.mounts().iter().flatten().any(|m| {
        resolve::clean_container_path(m.destination()) == Path::new("/dev")
            && options::parse(m.options().as_deref().unwrap_or(&[])).readonly()
    });
    if dev_ro {
        let dev =
            resolve::open_in_root(root.as_fd(), Path::new("/dev"), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
                .map_err(sys_err("mounts \"/dev\"", "open /dev"))?;
        masks::set_readonly(dev.as_fd(), false).map_err(sys_err("mounts \"/dev\"", "remount read-only"))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        masks::set_readonly(root.as_fd(), false).map_err(sys_err("root.readonly", "remount / read-only"))?;
    }
    // `unbindable`/`runbindable` last: the binds above need a bindable tree.
    let unbindable = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(options::root_propagation)
        .filter(|p| p.contains(MsFlags::MS_UNBINDABLE));
    if let Some(p) = unbindable {
        nix::mount::mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .map_err(sys_err("linux.rootfsPropagation", "set propagation of new /"))?;
    }
    Ok(())
}

/// The config's bind mounts as (destination, absolute source): what a checkpoint must
/// treat as coming from outside the container.
pub fn bind_mounts(spec: &Spec, bundle: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let typ = validate::mount_type(m).unwrap_or_default();
        let opts: Vec<&str> = m.options().iter().flatten().map(String::as_str).collect();
        if !validate::is_bind(&typ, &options::parse(&opts)) {
            continue;
        }
        let Some(source) = m.source() else { continue };
        let source = if source.is_absolute() { source.clone() } else { bundle.join(source) };
        out.push((resolve::clean_container_path(m.destination()), source));
    }
    out
}
