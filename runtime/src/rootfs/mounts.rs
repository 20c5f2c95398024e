//! One `mounts[i]` entry: resolve the destination inside the root by fd,
//! create it, and mount onto that fd (T3; CVE-2021-30465, CVE-2024-45310).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, Mode};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, TMPFS_MAGIC};
use nix::sys::statvfs::fstatvfs;
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions, MS_NOSYMFOLLOW};
use super::resolve::{self, clean_container_path, Walked};
use super::validate::{is_bind, mount_field, mount_type, proc_mount_allowed, PROC_ALLOWLIST};
use super::{cgroup, copyup, CgroupMount, RootfsError};
use crate::sys::mount::{self as sys, MountAttr};

pub(crate) struct Ctx<'a> {
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    pub cgroup_mounts: &'a [CgroupMount],
    pub cgroupns: bool,
    /// The container has a user namespace (new or joined).
    pub in_user_ns: bool,
    /// Asks `berth create` for a bind source (see [`super::source`]).
    pub host_open: Option<super::source::HostOpen<'a>>,
    /// `linux.mountLabel` (validation made sure SELinux is enabled when it is set).
    pub mount_label: Option<&'a str>,
}

pub(crate) struct Outcome {
    pub dest: PathBuf,
    pub bind: bool,
}

const DIR_MODE: u32 = 0o755;

fn is_dir(fd: BorrowedFd) -> nix::Result<bool> {
    Ok(fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Destination directory, created if missing, resolved inside the root.
pub(crate) fn dest_dir(root: BorrowedFd, dest: &Path) -> nix::Result<OwnedFd> {
    resolve::mkdir_all_in_root(root, dest, Mode::from_bits_truncate(DIR_MODE))
}

/// Destination file for a bind of a non-directory: created as an empty
/// regular file if missing, never through a link out of the root.
pub(crate) fn dest_file(root: BorrowedFd, dest: &Path) -> nix::Result<OwnedFd> {
    if let Some(fd) = resolve::existing_in_root(root, dest, OFlag::O_PATH) {
        return Ok(fd);
    }
    let mut tries = 0;
    loop {
        match resolve::walk_in_root(root, dest, Some(Mode::from_bits_truncate(DIR_MODE)))? {
            Walked::Found { fd, .. } => return Ok(fd),
            Walked::Dir(fd) => return Ok(fd),
            Walked::Missing { parent, name } => {
                let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
                match openat(&parent, Path::new(&name), flags, Mode::from_bits_truncate(0o644)) {
                    // The fd of the file we just created: no second lookup
                    // a racer could redirect.
                    Ok(f) => return Ok(f),
                    Err(Errno::EEXIST) if tries < 8 => tries += 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// /proc and /sys must be real directories in the rootfs (CVE-2023-27561):
/// a link there would carry procfs (and later label writes) elsewhere.
fn check_ordinary_dir(root: BorrowedFd, dest: &Path, field: &str) -> Result<(), RootfsError> {
    let name = resolve::in_root_relative(dest);
    match resolve::open_beneath(root, name.as_os_str(), OFlag::O_PATH) {
        Ok(fd) => {
            if !is_dir(fd.as_fd()).map_err(super::sys_err(field, "stat"))? {
                return Err(RootfsError::invalid(field, "must be mounted on ordinary directory"));
            }
            Ok(())
        }
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(RootfsError::sys(field, "open", e)),
    }
}

/// The permission bits (with setuid/setgid/sticky) of `dest` inside the root,
/// or None if it does not exist yet.
fn existing_mode(root: BorrowedFd, dest: &Path) -> nix::Result<Option<u32>> {
    match resolve::open_in_root(root, dest, OFlag::O_PATH, Mode::empty()) {
        Ok(fd) => Ok(Some(fstat(&fd)?.st_mode & 0o7777)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A destination that reaches into procfs through links is judged by where
/// it lands, not by its spelling (CVE-2019-16884).
fn check_not_in_proc(target: BorrowedFd, dest: &Path, typ: &str, field: &str) -> Result<(), RootfsError> {
    let on_proc = fstatfs(target).map(|s| s.filesystem_type() == PROC_SUPER_MAGIC).unwrap_or(false);
    if on_proc && typ != "proc" && !PROC_ALLOWLIST.iter().any(|p| dest == Path::new(p)) {
        return Err(RootfsError::invalid(field, "cannot be mounted because it is inside /proc"));
    }
    Ok(())
}

fn apply_propagation(mnt: BorrowedFd, props: &[MsFlags]) -> nix::Result<()> {
    for p in props {
        let attr = MountAttr { propagation: (*p & !MsFlags::MS_REC).bits(), ..Default::default() };
        sys::mount_setattr_fd(mnt, p.contains(MsFlags::MS_REC), &attr)?;
    }
    Ok(())
}

fn bind(
    ctx: &Ctx,
    field: &str,
    index: Option<usize>,
    source: &Path,
    dest: &Path,
    opts: &MountOptions,
    idmap: bool,
) -> Result<(), RootfsError> {
    let source = if source.is_absolute() { source.to_path_buf() } else { ctx.bundle.join(source) };
    let from_host = |why: Option<Errno>| match (ctx.host_open, index) {
        (Some(host_open), Some(i)) => {
            host_open(i).map_err(|source| RootfsError::HostOpen { field: field.to_string(), source })
        }
        _ => Err(match why {
            Some(e) => RootfsError::sys(field, format!("open bind source {}", source.display()), e),
            None => RootfsError::invalid(field, "an id-mapped mount needs `berth create` to map it"),
        }),
    };
    // An id-mapped tree comes whole from `berth create` (idmapped.rs).
    let src = if idmap {
        from_host(None)?
    } else {
        match nix::fcntl::open(&source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            // Unreachable from our user namespace: `berth create` opens it (source.rs).
            Err(e) if ctx.in_user_ns => from_host(Some(e))?,
            Err(e) => return Err(RootfsError::sys(field, format!("open bind source {}", source.display()), e)),
        }
    };
    let src_is_dir = is_dir(src.as_fd()).map_err(super::sys_err(field, "stat bind source"))?;
    let src_is_proc = fstatfs(&src).map(|s| s.filesystem_type() == PROC_SUPER_MAGIC).unwrap_or(false);
    proc_mount_allowed(dest, "bind", true, Some(src_is_proc)).map_err(|r| RootfsError::invalid(field, r))?;
    let target = if src_is_dir { dest_dir(ctx.root, dest) } else { dest_file(ctx.root, dest) }
        .map_err(super::sys_err(field, "create mount point"))?;

    check_not_in_proc(target.as_fd(), dest, "bind", field)?;
    // An id-mapped source is a detached tree already.
    let cloned;
    let tree = if idmap {
        src.as_fd()
    } else {
        cloned = sys::open_tree_fd(src.as_fd(), opts.is_rbind()).map_err(super::sys_err(field, "open_tree"))?;
        cloned.as_fd()
    };
    if let Some((set, clr)) = options::bind_attrs(opts) {
        let attr = MountAttr { attr_set: set, attr_clr: clr, ..Default::default() };
        if let Err(e) = sys::mount_setattr_fd(tree, false, &attr) {
            if e != Errno::EPERM {
                return Err(RootfsError::sys(field, "set mount flags", e));
            }
            // The source's mount has flags locked (it comes from a mount namespace more
            // privileged than the container's user namespace): like runc, keep those the
            // options do not name, and refuse to pretend to clear one they do.
            let src_flags = fstatvfs(&src).map_err(super::sys_err(field, "statvfs bind source"))?;
            let src_flags = options::flags_of_mount(src_flags.flags());
            let (set, clr) = options::keep_source_locked(opts, (set, clr), src_flags)
                .map_err(|l| RootfsError::sys(field, l.to_string(), e))?;
            let attr = MountAttr { attr_set: set, attr_clr: clr, ..Default::default() };
            sys::mount_setattr_fd(tree, false, &attr).map_err(super::sys_err(field, "set mount flags"))?;
        }
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        let attr = MountAttr { attr_set: opts.rec_set, attr_clr: opts.rec_clr, ..Default::default() };
        sys::mount_setattr_fd(tree, true, &attr).map_err(super::sys_err(field, "set recursive mount flags"))?;
    }
    sys::move_mount_fd(tree, target.as_fd()).map_err(super::sys_err(field, "move_mount"))?;
    apply_propagation(tree, &opts.propagation).map_err(super::sys_err(field, "set propagation"))?;
    Ok(())
}

fn other(ctx: &Ctx, field: &str, m: &Mount, typ: &str, dest: &Path, opts: &MountOptions) -> Result<(), RootfsError> {
    // A tmpfs on an existing directory takes that directory's mode (runc):
    // "mode=" goes first, so one in the options still wins.
    let inherited_mode = if typ == "tmpfs" {
        existing_mode(ctx.root, dest).map_err(super::sys_err(field, "stat mount point"))?
    } else {
        None
    };
    let target = dest_dir(ctx.root, dest).map_err(super::sys_err(field, "create mount point"))?;
    check_not_in_proc(target.as_fd(), dest, typ, field)?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let mut flags = opts.flags;
    let copyup = opts.tmpcopyup && typ == "tmpfs";
    if dest == Path::new("/dev") || copyup {
        // Devices and nested mounts go in later; finalize() makes /dev
        // read-only at the end when the options ask for it (as runc).
        flags.remove(MsFlags::MS_RDONLY);
    }
    if opts.nosymfollow {
        flags |= MsFlags::from_bits_retain(MS_NOSYMFOLLOW);
    }
    let mut data = opts.data_string();
    if let Some(mode) = inherited_mode {
        data = if data.is_empty() { format!("mode={mode:04o}") } else { format!("mode={mode:04o},{data}") };
    }
    if let Some(label) = ctx.mount_label.filter(|_| crate::lsm::takes_mount_label(typ)) {
        data = crate::lsm::with_mount_label(&data, label);
    }
    mount(
        Some(&source),
        sys::fd_path(target.as_fd()).as_str(),
        Some(typ),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| RootfsError::sys(field, format!("mount {typ}"), e))?;
    if let Some(label) = ctx.mount_label.filter(|_| typ == "mqueue") {
        // mqueue takes no context= option: runc labels its root by xattr instead.
        let mnt = resolve::open_in_root(ctx.root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
            .map_err(super::sys_err(field, "reopen mqueue"))?;
        sys::set_xattr_fd(mnt.as_fd(), crate::lsm::SELINUX_XATTR, label.as_bytes())
            .map_err(super::sys_err(field, "label mqueue (linux.mountLabel)"))?;
    }
    if copyup {
        let mnt = resolve::open_in_root(ctx.root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
            .map_err(super::sys_err(field, "reopen tmpfs"))?;
        if fstatfs(&mnt).map(|s| s.filesystem_type() != TMPFS_MAGIC).unwrap_or(true) {
            return Err(RootfsError::invalid(field, "tmpfs moved away while it was being set up"));
        }
        // `target` still names the covered directory: its old content.
        copyup::copy_up(target.as_fd(), mnt.as_fd()).map_err(super::sys_err(field, "tmpcopyup"))?;
        if opts.readonly() {
            let attr = MountAttr { attr_set: sys::MOUNT_ATTR_RDONLY, ..Default::default() };
            sys::mount_setattr_fd(mnt.as_fd(), false, &attr).map_err(super::sys_err(field, "remount read-only"))?;
        }
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 || !opts.propagation.is_empty() {
        // The fd we mounted onto names the covered directory; look the path
        // up again (inside the root) to reach the new mount.
        let mnt = resolve::open_in_root(ctx.root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
            .map_err(super::sys_err(field, "reopen mount"))?;
        if opts.rec_set != 0 || opts.rec_clr != 0 {
            let attr = MountAttr { attr_set: opts.rec_set, attr_clr: opts.rec_clr, ..Default::default() };
            sys::mount_setattr_fd(mnt.as_fd(), true, &attr)
                .map_err(super::sys_err(field, "set recursive mount flags"))?;
        }
        apply_propagation(mnt.as_fd(), &opts.propagation).map_err(super::sys_err(field, "set propagation"))?;
    }
    Ok(())
}

/// Perform `mounts[i]`.
pub(crate) fn mount_entry(ctx: &Ctx, i: usize, m: &Mount) -> Result<Outcome, RootfsError> {
    let field = mount_field(i, m);
    let typ = mount_type(m).ok_or_else(|| RootfsError::invalid(format!("mounts[{i}].type"), "missing"))?;
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let dest = clean_container_path(m.destination());
    let bind = is_bind(&typ, &opts);
    proc_mount_allowed(&dest, &typ, bind, None).map_err(|r| RootfsError::invalid(&field, r))?;
    if dest == Path::new("/proc") || dest == Path::new("/sys") {
        check_ordinary_dir(ctx.root, &dest, &field)?;
    }
    if bind {
        let Some(source) = m.source() else {
            return Err(RootfsError::invalid(format!("mounts[{i}].source"), "a bind mount needs a source"));
        };
        let idmap = super::idmapped::wants(m).is_some();
        if dest == Path::new("/sys") && opts.readonly() && opts.flags.contains(MsFlags::MS_REC) {
            // The rootless form of /sys (`spec --rootless`: rbind of the host's /sys, ro)
            // brings the host's cgroupfs along: read-only all the way, as the sysfs
            // fallback below, or a user's delegated cgroup would be writable from inside
            // (CVE-2023-25809).
            let mut o = opts.clone();
            o.rec_set |= sys::MOUNT_ATTR_RDONLY;
            self::bind(ctx, &field, Some(i), source, &dest, &o, idmap)?;
        } else {
            self::bind(ctx, &field, Some(i), source, &dest, &opts, idmap)?;
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        cgroup::mount_cgroup(ctx, &field, &dest, &opts)?;
    } else {
        match other(ctx, &field, m, &typ, &dest, &opts) {
            // Without a network namespace of its own (e.g. in a user
            // namespace) the kernel refuses a fresh sysfs; like runc, bind
            // the runtime's /sys instead, with the same flags.
            Err(RootfsError::Sys { errno: Errno::EPERM | Errno::EBUSY, .. }) if typ == "sysfs" => {
                let mut o = opts.clone();
                o.flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC);
                if o.readonly() {
                    // The bind brings the runtime's submounts (cgroupfs…)
                    // along: a read-only /sys must be read-only all the way.
                    o.rec_set |= sys::MOUNT_ATTR_RDONLY;
                }
                self::bind(ctx, &field, None, Path::new("/sys"), &dest, &o, false)?;
            }
            r => r?,
        }
    }
    Ok(Outcome { dest, bind })
}
