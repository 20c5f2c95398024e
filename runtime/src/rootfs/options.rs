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
        } else if opt == "symfollow" {
            o.nosymfollow = false;
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

/// Map mount(2) flags to mount_setattr attributes (for binds made with open_tree).
pub fn attrs_from_flags(o: &MountOptions) -> (u64, u64) {
    let mut set = 0u64;
    let mut clr = 0u64;
    let pairs = [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    ];
    for (f, a) in pairs {
        if o.flags.contains(f) {
            set |= a;
        } else if o.cleared.contains(f) {
            clr |= a;
        }
    }
    if o.nosymfollow {
        set |= MOUNT_ATTR_NOSYMFOLLOW;
    }
    // Atime is one field: only touch it when an option named it.
    let atime = if o.flags.contains(MsFlags::MS_NOATIME) {
        Some(MOUNT_ATTR_NOATIME)
    } else if o.flags.contains(MsFlags::MS_STRICTATIME) {
        Some(MOUNT_ATTR_STRICTATIME)
    } else if o.flags.contains(MsFlags::MS_RELATIME) {
        Some(MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(a) = atime {
        clr |= MOUNT_ATTR__ATIME;
        set |= a;
    }
    (set, clr)
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
    fn rootfs_options_attrs_from_flags_maps_set_and_clear() {
        let o = parse(&["bind", "ro", "nosuid", "dev", "noatime"]);
        let (set, clr) = attrs_from_flags(&o);
        assert_eq!(set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME);
        assert_eq!(clr, MOUNT_ATTR_NODEV | MOUNT_ATTR__ATIME);
        let (set, clr) = attrs_from_flags(&parse(&["bind"]));
        assert_eq!((set, clr), (0, 0));
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
