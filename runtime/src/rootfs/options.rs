//! Mount option strings → mount(2) flags, propagation, recursive attributes and
//! filesystem data, with runc's vocabulary (libcontainer/specconv parseMountOptions).

use nix::mount::MsFlags;

use crate::sys::mount::{
    MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
};

/// MS_NOSYMFOLLOW (Linux 5.10); not in nix's MsFlags.
pub const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// The parsed form of one `mounts[i].options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags passed to mount(2).
    pub flags: MsFlags,
    /// Flags the options asked to clear (`rw`, `suid`, `dev`, …): on a bind
    /// they matter because the source's flags would otherwise be inherited.
    pub cleared: MsFlags,
    /// MS_NOSYMFOLLOW requested (kept apart: MsFlags cannot carry it).
    pub nosymfollow: bool,
    /// Propagation changes in the order given.
    pub propagation: Vec<MsFlags>,
    /// `rro`, `rnosuid`, … applied with mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clr: u64,
    /// `idmap` / `ridmap` seen.
    pub idmap: bool,
    /// `tmpcopyup`: fill a tmpfs with the destination's previous content.
    pub tmpcopyup: bool,
    /// Filesystem-specific options, joined with ',' for mount(2).
    pub data: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            nosymfollow: false,
            propagation: Vec::new(),
            rec_set: 0,
            rec_clr: 0,
            idmap: false,
            tmpcopyup: false,
            data: Vec::new(),
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
    pub fn is_rbind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC)
    }
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
    pub fn readonly(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }
}

fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match opt {
        "async" => (false, F::MS_SYNCHRONOUS),
        "atime" => (false, F::MS_NOATIME),
        "bind" => (true, F::MS_BIND),
        "defaults" => (true, F::empty()),
        "dev" => (false, F::MS_NODEV),
        "diratime" => (false, F::MS_NODIRATIME),
        "dirsync" => (true, F::MS_DIRSYNC),
        "exec" => (false, F::MS_NOEXEC),
        "iversion" => (true, F::MS_I_VERSION),
        "noiversion" => (false, F::MS_I_VERSION),
        "lazytime" => (true, F::MS_LAZYTIME),
        "nolazytime" => (false, F::MS_LAZYTIME),
        "loud" => (false, F::MS_SILENT),
        "mand" => (true, F::MS_MANDLOCK),
        "nomand" => (false, F::MS_MANDLOCK),
        "noatime" => (true, F::MS_NOATIME),
        "nodev" => (true, F::MS_NODEV),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "noexec" => (true, F::MS_NOEXEC),
        "nosuid" => (true, F::MS_NOSUID),
        "norelatime" => (false, F::MS_RELATIME),
        "relatime" => (true, F::MS_RELATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "strictatime" => (true, F::MS_STRICTATIME),
        "rbind" => (true, F::MS_BIND | F::MS_REC),
        "remount" => (true, F::MS_REMOUNT),
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "silent" => (true, F::MS_SILENT),
        "suid" => (false, F::MS_NOSUID),
        "sync" => (true, F::MS_SYNCHRONOUS),
        _ => return None,
    })
}

fn propagation(opt: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match opt {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// (clear, set) for mount_setattr, as runc's recAttrFlags.
fn rec_attr(opt: &str) -> Option<(u64, u64)> {
    Some(match opt {
        "rro" => (0, MOUNT_ATTR_RDONLY),
        "rrw" => (MOUNT_ATTR_RDONLY, 0),
        "rnosuid" => (0, MOUNT_ATTR_NOSUID),
        "rsuid" => (MOUNT_ATTR_NOSUID, 0),
        "rnodev" => (0, MOUNT_ATTR_NODEV),
        "rdev" => (MOUNT_ATTR_NODEV, 0),
        "rnoexec" => (0, MOUNT_ATTR_NOEXEC),
        "rexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rnodiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rrelatime" => (MOUNT_ATTR__ATIME, MOUNT_ATTR_RELATIME),
        "rnorelatime" => (MOUNT_ATTR__ATIME, 0),
        "rnoatime" => (MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME),
        "ratime" => (MOUNT_ATTR__ATIME, 0),
        "rstrictatime" => (MOUNT_ATTR__ATIME, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (MOUNT_ATTR__ATIME, 0),
        "rnosymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        _ => return None,
    })
}

/// Parse option strings. Unknown ones go to the data string, as runc does.
pub fn parse<S: AsRef<str>>(opts: &[S]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in opts {
        let opt = opt.as_ref();
        if let Some((set, f)) = flag(opt) {
            if set {
                o.flags.insert(f);
                o.cleared.remove(f);
            } else {
                o.flags.remove(f);
                o.cleared.insert(f);
            }
        } else if let Some(p) = propagation(opt) {
            o.propagation.push(p);
        } else if let Some((clr, set)) = rec_attr(opt) {
            o.rec_clr |= clr;
            o.rec_set = (o.rec_set & !clr) | set;
        } else if opt == "nosymfollow" {
            o.nosymfollow = true;
            o.cleared.remove(nosymfollow_flag());
        } else if opt == "symfollow" {
            o.nosymfollow = false;
            o.cleared.insert(nosymfollow_flag());
        } else if opt == "idmap" || opt == "ridmap" {
            o.idmap = true;
        } else if opt == "tmpcopyup" {
            o.tmpcopyup = true;
        } else {
            o.data.push(opt.to_string());
        }
    }
    o
}

/// MS_NOSYMFOLLOW as an `MsFlags` (in [`MountOptions::cleared`] when `symfollow` is named).
fn nosymfollow_flag() -> MsFlags {
    MsFlags::from_bits_retain(MS_NOSYMFOLLOW)
}

/// The per-mount flags other than the atime ones, and their mount_setattr attributes.
const PLAIN: [(MsFlags, u64); 4] = [
    (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
    (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
    (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
    (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
];

/// The atime flags: one of noatime, relatime and strictatime, with nodiratime on top.
const ATIME: MsFlags =
    MsFlags::MS_NOATIME.union(MsFlags::MS_RELATIME).union(MsFlags::MS_STRICTATIME).union(MsFlags::MS_NODIRATIME);

/// The flags the kernel locks on the mounts a less privileged user namespace sees.
const LOCKABLE: MsFlags =
    MsFlags::MS_RDONLY.union(MsFlags::MS_NOSUID).union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC).union(ATIME);

/// What a bind's options ask of its mount's flags, as (set, clear) for mount_setattr on
/// the top of the bound tree, by runc's rule (1.2 and later). Options that name no flag
/// (only `bind` or `rbind`, propagation, the recursive `r*` attributes) leave the source's
/// flags as they are: None. Any flag named, even one that only clears (`rw`, `dev`), gives
/// the mount the flags named and no other, as `mount -o remount,bind,<flags>` does:
/// read-write, suid, dev, exec and symlinks followed unless named. The atime setting is the
/// exception, as with mount(8): it stays the source's unless an option sets one (`noatime`,
/// `relatime`, `strictatime`, `nodiratime`), and is then what the kernel makes of them:
/// relatime unless noatime or strictatime, with nodiratime on top. So an option that only
/// clears an atime flag (`atime`, `norelatime`) changes nothing of it.
pub fn bind_attrs(o: &MountOptions) -> Option<(u64, u64)> {
    let named = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if named.is_empty() && o.cleared.is_empty() && !o.nosymfollow {
        return None;
    }
    let (mut set, mut clr) = (0u64, 0u64);
    for (f, a) in PLAIN {
        if o.flags.contains(f) {
            set |= a;
        } else {
            clr |= a;
        }
    }
    if o.nosymfollow {
        set |= MOUNT_ATTR_NOSYMFOLLOW;
    } else {
        clr |= MOUNT_ATTR_NOSYMFOLLOW;
    }
    if o.flags.intersects(ATIME) {
        clr |= MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME;
        set |= if o.flags.contains(MsFlags::MS_STRICTATIME) {
            MOUNT_ATTR_STRICTATIME
        } else if o.flags.contains(MsFlags::MS_NOATIME) {
            MOUNT_ATTR_NOATIME
        } else {
            MOUNT_ATTR_RELATIME
        };
        if o.flags.contains(MsFlags::MS_NODIRATIME) {
            set |= MOUNT_ATTR_NODIRATIME;
        }
    }
    Some((set, clr))
}

/// A mount's flags as mount(2) flags, from its statvfs `f_flag`. statvfs has no
/// strictatime: a mount with neither noatime nor relatime has it.
pub fn flags_of_mount(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags as S;
    let pairs = [
        (S::ST_RDONLY, MsFlags::MS_RDONLY),
        (S::ST_NOSUID, MsFlags::MS_NOSUID),
        (S::ST_NODEV, MsFlags::MS_NODEV),
        (S::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (S::ST_NOATIME, MsFlags::MS_NOATIME),
        (S::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (S::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    let mut out = pairs.iter().filter(|(s, _)| f.contains(*s)).fold(MsFlags::empty(), |acc, (_, m)| acc | *m);
    if !out.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        out |= MsFlags::MS_STRICTATIME;
    }
    out
}

/// The option names that set `f`'s lockable flags, for messages ("ro,nodev").
fn flag_names(f: &MsFlags) -> String {
    let names = ["ro", "nosuid", "nodev", "noexec", "noatime", "relatime", "strictatime", "nodiratime"];
    names.into_iter().filter(|n| flag(n).is_some_and(|(sets, m)| sets && f.contains(m))).collect::<Vec<_>>().join(",")
}

/// Why a bind cannot have the flags its options name on a source whose flags the kernel
/// has locked (the container's user namespace is less privileged than the source's mount).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockedFlags {
    /// An option clears these flags, which the source has locked.
    #[error("cannot clear {} locked on the source's mount", flag_names(.0))]
    Cleared(MsFlags),
    /// The options set an atime other than the source's locked one (this is the source's).
    #[error("cannot change the atime flags {} locked on the source's mount", flag_names(.0))]
    Atime(MsFlags),
}

/// runc's second try after the kernel refused [`bind_attrs`]'s flags (EPERM): `src` (the
/// source mount's flags, [`flags_of_mount`]) may have flags locked, and the lockable ones
/// the options did not name are kept. A mount that would not be what the options ask is
/// refused instead: an option clears a flag the source has, or sets an atime other than
/// the source's.
pub fn keep_source_locked(o: &MountOptions, attrs: (u64, u64), src: MsFlags) -> Result<(u64, u64), LockedFlags> {
    let cannot_clear = src & o.cleared & LOCKABLE;
    if !cannot_clear.is_empty() {
        return Err(LockedFlags::Cleared(cannot_clear));
    }
    let asked = o.flags & ATIME;
    if !asked.is_empty() && asked != src & ATIME {
        return Err(LockedFlags::Atime(src & ATIME));
    }
    let (mut set, mut clr) = attrs;
    for (f, a) in PLAIN {
        if src.contains(f) {
            set |= a;
            clr &= !a;
        }
    }
    Ok((set, clr))
}

/// Parse a `linux.rootfsPropagation` value.
pub fn root_propagation(value: &str) -> Option<MsFlags> {
    propagation(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_options_bind_ro_nosuid_sets_flags() {
        let o = parse(&["rbind", "ro", "nosuid", "nodev"]);
        assert!(o.is_bind() && o.is_rbind());
        assert!(o.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV));
        assert!(o.data.is_empty());
    }

    #[test]
    fn rootfs_options_later_option_wins() {
        let o = parse(&["ro", "rw"]);
        assert!(!o.readonly());
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        let o = parse(&["rw", "ro"]);
        assert!(o.readonly());
        assert!(!o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn rootfs_options_unknown_go_to_data() {
        let o = parse(&["nosuid", "size=65536k", "mode=755", "newinstance"]);
        assert_eq!(o.data_string(), "size=65536k,mode=755,newinstance");
        assert!(o.flags.contains(MsFlags::MS_NOSUID));
    }

    #[test]
    fn rootfs_options_propagation_in_order() {
        let o = parse(&["rprivate", "shared"]);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SHARED]);
        assert!(o.data.is_empty());
    }

    #[test]
    fn rootfs_options_recursive_attrs() {
        let o = parse(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(o.rec_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME);
        assert_eq!(o.rec_clr, MOUNT_ATTR__ATIME);
        let o = parse(&["rro", "rrw"]);
        assert_eq!(o.rec_set, 0);
        assert_eq!(o.rec_clr, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn bind_options_naming_no_flag_keep_the_source_flags() {
        for opts in [&["bind"][..], &["rbind", "rprivate"], &["rbind", "rro", "rnosuid"], &["bind", "remount"]] {
            assert_eq!(bind_attrs(&parse(opts)), None, "{opts:?}");
        }
    }

    #[test]
    fn bind_options_naming_a_flag_clear_every_flag_not_named_but_atime() {
        let (set, clr) = bind_attrs(&parse(&["bind", "ro"])).unwrap();
        assert_eq!(set, MOUNT_ATTR_RDONLY);
        assert_eq!(clr, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSYMFOLLOW);
        // Only a clearing option named: still exactly what is named.
        let all_plain = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        assert_eq!(bind_attrs(&parse(&["bind", "dev"])), Some((0, all_plain | MOUNT_ATTR_NOSYMFOLLOW)));
        assert_eq!(bind_attrs(&parse(&["bind", "symfollow"])), Some((0, all_plain | MOUNT_ATTR_NOSYMFOLLOW)));
        assert_eq!(bind_attrs(&parse(&["bind", "nosymfollow"])), Some((MOUNT_ATTR_NOSYMFOLLOW, all_plain)));
        // Clearing an atime flag does not touch the atime setting (mount(8) does the same).
        assert_eq!(bind_attrs(&parse(&["bind", "atime"])), Some((0, all_plain | MOUNT_ATTR_NOSYMFOLLOW)));
    }

    #[test]
    fn bind_atime_options_set_what_the_kernel_makes_of_them() {
        let atime = |opts: &[&str]| {
            let (set, clr) = bind_attrs(&parse(opts)).unwrap();
            assert_eq!(clr & (MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME), MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME);
            set & (MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME)
        };
        assert_eq!(atime(&["bind", "relatime"]), MOUNT_ATTR_RELATIME);
        assert_eq!(atime(&["bind", "noatime"]), MOUNT_ATTR_NOATIME);
        assert_eq!(atime(&["bind", "strictatime", "noatime"]), MOUNT_ATTR_STRICTATIME);
        // nodiratime implies relatime, even with norelatime (as the kernel: runc's FIXME).
        assert_eq!(atime(&["bind", "nodiratime"]), MOUNT_ATTR_RELATIME | MOUNT_ATTR_NODIRATIME);
        assert_eq!(atime(&["bind", "nodiratime", "norelatime"]), MOUNT_ATTR_RELATIME | MOUNT_ATTR_NODIRATIME);
        assert_eq!(atime(&["bind", "nodiratime", "strictatime"]), MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NODIRATIME);
    }

    #[test]
    fn bind_on_a_locked_source_keeps_its_flags_unless_an_option_clears_one() {
        use nix::sys::statvfs::FsFlags as S;
        let src = flags_of_mount(S::ST_RDONLY | S::ST_NODEV | S::ST_NOATIME);
        assert_eq!(src, MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOATIME);
        assert_eq!(flags_of_mount(S::empty()), MsFlags::MS_STRICTATIME);

        let o = parse(&["bind", "nosuid"]);
        let kept = keep_source_locked(&o, bind_attrs(&o).unwrap(), src).unwrap();
        assert_eq!(
            kept,
            (MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSYMFOLLOW)
        );

        let o = parse(&["bind", "rw", "nosuid"]);
        assert_eq!(keep_source_locked(&o, bind_attrs(&o).unwrap(), src), Err(LockedFlags::Cleared(MsFlags::MS_RDONLY)));
        let o = parse(&["bind", "dev", "atime"]);
        let err = keep_source_locked(&o, bind_attrs(&o).unwrap(), src);
        assert_eq!(err, Err(LockedFlags::Cleared(MsFlags::MS_NODEV | MsFlags::MS_NOATIME)));
        let o = parse(&["bind", "relatime"]);
        assert_eq!(keep_source_locked(&o, bind_attrs(&o).unwrap(), src), Err(LockedFlags::Atime(MsFlags::MS_NOATIME)));
        let o = parse(&["bind", "noatime"]);
        assert!(keep_source_locked(&o, bind_attrs(&o).unwrap(), src).is_ok());
        assert_eq!(
            LockedFlags::Cleared(MsFlags::MS_RDONLY | MsFlags::MS_NODEV).to_string(),
            "cannot clear ro,nodev locked on the source's mount"
        );
    }

    #[test]
    fn rootfs_options_idmap_and_tmpcopyup_not_data() {
        let o = parse(&["idmap", "tmpcopyup", "nosymfollow"]);
        assert!(o.idmap && o.tmpcopyup && o.nosymfollow && o.data.is_empty());
    }

    #[test]
    fn rootfs_root_propagation_values() {
        assert_eq!(root_propagation("rslave"), Some(MsFlags::MS_SLAVE | MsFlags::MS_REC));
        assert_eq!(root_propagation("bogus"), None);
    }
}
