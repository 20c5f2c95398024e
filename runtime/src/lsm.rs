//! The Linux security modules a container's process is put under, as runc does it:
//! an AppArmor profile and an SELinux process label entered at execve, the session
//! keyring labelled for SELinux, and the SELinux mount label given to the filesystems
//! berth mounts for the container. Also whether the host has either module enabled, which
//! validation and `features` ask.
//!
//! The process writes its own /proc/thread-self/attr files (an LSM lets a task change
//! only its own attributes) through the procfs of the root it is in: after pivot_root
//! that is the container's /proc. A rootfs could put a fake file there
//! (CVE-2019-16884), so the open goes through `open_proc_beneath`: a procfs verified at
//! its root, nothing crossed but procfs itself (no bind mount over an attr file), no
//! magic link followed.

use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use oci_spec::runtime::Spec;

/// The extended attribute holding a file's SELinux context.
pub const SELINUX_XATTR: &str = "security.selinux";

/// selinuxfs's magic (linux/magic.h); nix does not name it.
const SELINUX_MAGIC: u64 = 0xf97c_ff8c;

/// AppArmor is enabled on this host: its securityfs directory is there and the module
/// parameter says `Y` (runc's isEnabled).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// SELinux is enabled on this host: selinuxfs is mounted read-write at /sys/fs/selinux
/// and this process has a context other than the unlabelled kernel's (go-selinux's
/// GetEnabled, which runc asks). Permissive counts as enabled: labels still apply.
pub fn selinux_enabled() -> bool {
    let selinuxfs = Path::new("/sys/fs/selinux");
    let on_selinuxfs = nix::sys::statfs::statfs(selinuxfs).is_ok_and(|s| s.filesystem_type().0 as u64 == SELINUX_MAGIC);
    let writable =
        nix::sys::statvfs::statvfs(selinuxfs).is_ok_and(|s| !s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    on_selinuxfs
        && writable
        && std::fs::read("/proc/self/attr/current")
            .is_ok_and(|c| c.split(|b| *b == 0 || *b == b'\n').next() != Some(b"kernel".as_slice()))
}

/// The value of a label field, if it asks for anything (an empty string does not).
fn wanted(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// `linux.mountLabel`, if set.
pub fn mount_label(spec: &Spec) -> Option<&str> {
    spec.linux().as_ref().and_then(|l| wanted(l.mount_label()))
}

/// What is wrong with an LSM field of the config on this host, as (field, reason):
/// a profile or label asked for where its module is not enabled (runc fails these too:
/// the write to /proc/self/attr/exec, the SELinux check of its validator, the mount
/// refusing `context=`), or a value the writes cannot carry.
pub fn check(
    apparmor_profile: &Option<String>,
    selinux_label: &Option<String>,
    mount_label: &Option<String>,
) -> Result<(), (&'static str, String)> {
    check_with(apparmor_profile, selinux_label, mount_label, apparmor_enabled, selinux_enabled)
}

fn check_with(
    apparmor_profile: &Option<String>,
    selinux_label: &Option<String>,
    mount_label: &Option<String>,
    apparmor_on: impl Fn() -> bool,
    selinux_on: impl Fn() -> bool,
) -> Result<(), (&'static str, String)> {
    let fields = [
        ("process.apparmorProfile", wanted(apparmor_profile), "AppArmor"),
        ("process.selinuxLabel", wanted(selinux_label), "SELinux"),
        ("linux.mountLabel", wanted(mount_label), "SELinux"),
    ];
    for (field, value, module) in fields {
        let Some(value) = value else { continue };
        // One write(2) is one command to the LSM: a NUL or newline would end it early.
        if value.contains(['\0', '\n']) {
            return Err((field, format!("{value:?} contains a NUL byte or a newline")));
        }
        // The mount data quotes the label (it may hold commas: s0:c1,c2).
        if field == "linux.mountLabel" && value.contains('"') {
            return Err((field, format!("{value:?} contains a double quote")));
        }
        let enabled = if module == "AppArmor" { apparmor_on() } else { selinux_on() };
        if !enabled {
            return Err((field, format!("{module} is not enabled on this host")));
        }
    }
    Ok(())
}

/// Whether a filesystem of type `typ` from `mounts` gets the mount label as `context=`
/// mount data: runc labels every type but proc and sysfs (whose labels the kernel
/// fixes) and mqueue (whose root it labels by xattr after the mount instead). Bind mounts and
/// cgroupfs take no data of this kind and are not mounted through here.
pub fn takes_mount_label(typ: &str) -> bool {
    !matches!(typ, "proc" | "sysfs" | "mqueue")
}

/// The mount data with the label as go-selinux's FormatMountLabel puts it:
/// `context="<label>"` after any other options.
pub fn with_mount_label(data: &str, label: &str) -> String {
    if data.is_empty() {
        format!("context=\"{label}\"")
    } else {
        format!("{data},context=\"{label}\"")
    }
}

/// Writes one attribute of the calling thread, in one write(2).
fn write_attr(name: &str, value: &[u8]) -> io::Result<()> {
    let path = format!("thread-self/attr/{name}");
    let fd = crate::rootfs::resolve::open_proc_beneath(Path::new(&path), OFlag::O_WRONLY).map_err(|e| match e {
        // The procfs check or RESOLVE_NO_XDEV refused the path: say which way it is wrong.
        Errno::EXDEV => io::Error::other(format!(
            "/proc/{path} is not procfs's own file (no procfs mounted at /proc, or a mount over part of the path)"
        )),
        e => io::Error::from(e),
    })?;
    let n = nix::unistd::write(&fd, value)?;
    if n != value.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short write to /proc/{path}")));
    }
    Ok(())
}

/// The AppArmor profile the next execve enters (libapparmor's aa_change_onexec):
/// `exec <profile>` to the AppArmor attr directory, or on kernels before 5.8, which have
/// none, to the shared attr/exec.
pub fn apparmor_exec(profile: &str) -> io::Result<()> {
    let command = format!("exec {profile}");
    match write_attr("apparmor/exec", command.as_bytes()) {
        Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => write_attr("exec", command.as_bytes()),
        r => r,
    }
}

/// The SELinux context the next execve enters.
pub fn selinux_exec(label: &str) -> io::Result<()> {
    write_attr("exec", label.as_bytes())
}

/// The SELinux context keys (keyrings) this thread creates get; empty: the default again.
pub fn selinux_keycreate(label: &str) -> io::Result<()> {
    write_attr("keycreate", label.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn mount_label_goes_after_the_data_quoted_as_go_selinux_does() {
        let l = "system_u:object_r:container_file_t:s0:c1,c2";
        assert_eq!(with_mount_label("", l), "context=\"system_u:object_r:container_file_t:s0:c1,c2\"");
        assert_eq!(
            with_mount_label("mode=755,size=65536k", l),
            "mode=755,size=65536k,context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
    }

    #[test]
    fn mount_label_skips_proc_sysfs_and_mqueue_like_runc() {
        for typ in ["tmpfs", "devpts", "overlay", "ramfs"] {
            assert!(takes_mount_label(typ), "{typ}");
        }
        for typ in ["proc", "sysfs", "mqueue"] {
            assert!(!takes_mount_label(typ), "{typ}");
        }
    }

    #[test]
    fn a_label_where_its_module_is_off_is_refused_naming_the_field() {
        let on = || true;
        let off = || false;
        assert!(check_with(&None, &None, &None, off, off).is_ok());
        assert!(check_with(&s(""), &s(""), &s(""), off, off).is_ok(), "empty asks for nothing");
        let (f, why) = check_with(&s("unconfined"), &None, &None, off, on).unwrap_err();
        assert_eq!((f, why.as_str()), ("process.apparmorProfile", "AppArmor is not enabled on this host"));
        assert!(check_with(&s("unconfined"), &None, &None, on, off).is_ok());
        let (f, _) = check_with(&None, &s("system_u:system_r:container_t:s0"), &None, on, off).unwrap_err();
        assert_eq!(f, "process.selinuxLabel");
        let (f, _) = check_with(&None, &None, &s("system_u:object_r:container_file_t:s0"), on, off).unwrap_err();
        assert_eq!(f, "linux.mountLabel");
        assert!(check_with(&None, &s("a:b:c:s0"), &s("a:b:c:s0:c1,c2"), off, on).is_ok());
    }

    /// The writes reach the kernel (this thread's own attrs through the host's procfs):
    /// where no module takes them they fail instead of landing in some file.
    #[test]
    fn attr_writes_fail_where_no_module_takes_them() {
        if !apparmor_enabled() && !selinux_enabled() {
            assert!(apparmor_exec("unconfined").is_err());
            assert!(selinux_exec("system_u:system_r:container_t:s0").is_err());
        }
    }

    #[test]
    fn values_that_would_break_the_write_or_the_mount_data_are_refused() {
        let on = || true;
        assert_eq!(check_with(&s("a\nexec b"), &None, &None, on, on).unwrap_err().0, "process.apparmorProfile");
        assert_eq!(check_with(&None, &s("a\0b"), &None, on, on).unwrap_err().0, "process.selinuxLabel");
        assert_eq!(check_with(&None, &None, &s("a\",x=\"b"), on, on).unwrap_err().0, "linux.mountLabel");
    }
}
