//! Pure checks of the mount-related config, run in the parent before anything
//! is created, so a bad config fails with a message naming the field.

use std::path::{Component, Path};

use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use super::options;
use super::resolve::{clean_container_path, has_nul};
use super::RootfsError;

/// The only places under /proc where something other than procfs may be
/// mounted: the files lxcfs virtualises (runc checkProcMount, CVE-2019-16884).
pub(crate) const PROC_ALLOWLIST: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// The filesystem type of a mount: its `type`, or "bind" when only the
/// options say so (the spec lets `type` be omitted for binds).
pub(crate) fn mount_type(m: &Mount) -> Option<String> {
    match m.typ().as_deref() {
        Some(t) if !t.is_empty() => Some(t.to_string()),
        _ => {
            let bind = m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
            bind.then(|| "bind".to_string())
        }
    }
}

pub(crate) fn is_bind(typ: &str, opts: &options::MountOptions) -> bool {
    typ == "bind" || typ == "rbind" || opts.is_bind()
}

pub(crate) fn mount_field(i: usize, m: &Mount) -> String {
    format!("mounts[{i}].destination {:?}", m.destination())
}

/// Whether a mount of `typ` may go to `dest` (already cleaned). On /proc
/// itself only a fresh procfs or a bind of a procfs is allowed; whether a
/// bind's source is procfs is known only when it is opened
/// (`bind_src_is_proc` is None during pure validation).
pub(crate) fn proc_mount_allowed(
    dest: &Path,
    typ: &str,
    bind: bool,
    bind_src_is_proc: Option<bool>,
) -> Result<(), String> {
    if dest == Path::new("/proc") {
        let ok = typ == "proc" || (bind && bind_src_is_proc != Some(false));
        return if ok { Ok(()) } else { Err("cannot be mounted because it is not of type proc".into()) };
    }
    if !dest.starts_with("/proc") || PROC_ALLOWLIST.iter().any(|p| dest == Path::new(p)) {
        return Ok(());
    }
    Err("cannot be mounted because it is inside /proc".into())
}

fn validate_mount(i: usize, m: &Mount) -> Result<(), RootfsError> {
    let field = mount_field(i, m);
    let dest = m.destination();
    if dest.as_os_str().is_empty() {
        return Err(RootfsError::invalid(format!("mounts[{i}].destination"), "must not be empty"));
    }
    if has_nul(dest) {
        return Err(RootfsError::invalid(format!("mounts[{i}].destination"), "mount field contains null byte"));
    }
    if m.source().as_deref().is_some_and(has_nul) {
        return Err(RootfsError::invalid(format!("mounts[{i}].source"), "mount field contains null byte"));
    }
    let opts_raw = m.options().as_deref().unwrap_or(&[]);
    if let Some(j) = opts_raw.iter().position(|o| o.contains('\0')) {
        return Err(RootfsError::invalid(format!("mounts[{i}].options[{j}]"), "mount field contains null byte"));
    }
    let Some(typ) = mount_type(m) else {
        return Err(RootfsError::invalid(
            format!("mounts[{i}].type"),
            format!("missing for destination {dest:?}, and the options do not make it a bind mount"),
        ));
    };
    if typ.contains('\0') {
        return Err(RootfsError::invalid(format!("mounts[{i}].type"), "mount field contains null byte"));
    }
    let opts = options::parse(opts_raw);
    if is_bind(&typ, &opts) {
        if !opts.data.is_empty() {
            return Err(RootfsError::invalid(
                format!("mounts[{i}].options"),
                format!("bind mounts cannot have any filesystem-specific options applied: {}", opts.data_string()),
            ));
        }
        if m.source().as_deref().is_none_or(|s| s.as_os_str().is_empty()) {
            return Err(RootfsError::invalid(format!("mounts[{i}].source"), "a bind mount needs a source"));
        }
    }
    validate_idmap(i, m, &typ, &opts)?;
    let clean = clean_container_path(dest);
    proc_mount_allowed(&clean, &typ, is_bind(&typ, &opts), None).map_err(|r| RootfsError::invalid(field, r))?;
    Ok(())
}

fn validate_device_path(field: &str, path: &Path) -> Result<(), RootfsError> {
    if has_nul(path) {
        return Err(RootfsError::invalid(field, "contains a null byte"));
    }
    if !path.is_absolute() {
        return Err(RootfsError::invalid(field, format!("{path:?} is not an absolute path")));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(RootfsError::invalid(field, format!("{path:?} must not contain \"..\"")));
    }
    let clean = clean_container_path(path);
    if !clean.starts_with("/dev") || clean == Path::new("/dev") {
        return Err(RootfsError::invalid(field, format!("{path:?} is not under /dev")));
    }
    Ok(())
}

/// Pure checks of `mounts`, `linux.rootfsPropagation`, `linux.devices`,
/// `linux.maskedPaths` and `linux.readonlyPaths`. `bundle` is where relative
/// bind sources are found; validation does not touch the filesystem.
pub fn validate(spec: &Spec, _bundle: &Path) -> Result<(), RootfsError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        validate_mount(i, m)?;
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if let Some(p) = linux.rootfs_propagation().as_deref() {
        if !p.is_empty() && options::root_propagation(p).is_none() {
            return Err(RootfsError::invalid(
                "linux.rootfsPropagation",
                format!("rootfsPropagation={p} is not supported"),
            ));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if d.typ() == LinuxDeviceType::A {
            return Err(RootfsError::invalid(
                format!("linux.devices[{i}].type"),
                "\"a\" is not a device type (want c, b, u or p)",
            ));
        }
        validate_device_path(&format!("linux.devices[{i}].path"), d.path())?;
        if d.typ() != LinuxDeviceType::P && (d.major() < 0 || d.minor() < 0 || d.major() > 0xfff || d.minor() > 0xfffff)
        {
            return Err(RootfsError::invalid(
                format!("linux.devices[{i}]"),
                format!("major {} / minor {} out of range", d.major(), d.minor()),
            ));
        }
    }
    for (name, list) in [("maskedPaths", linux.masked_paths()), ("readonlyPaths", linux.readonly_paths())] {
        for (i, p) in list.iter().flatten().enumerate() {
            if p.contains('\0') || !p.starts_with('/') {
                return Err(RootfsError::invalid(
                    format!("linux.{name}[{i}]"),
                    format!("{p:?} is not an absolute path"),
                ));
            }
        }
    }
    Ok(())
}

/// With `--no-pivot` the host's old root stays underneath the container's;
/// runc refuses a private propagation there (it would stop the host's
/// unmounts from reaching the container's copies), and so do we. The CLI
/// calls this when `--no-pivot` is given.
pub fn validate_no_pivot(spec: &Spec) -> Result<(), RootfsError> {
    let p = spec.linux().as_ref().and_then(|l| l.rootfs_propagation().clone()).unwrap_or_default();
    if p == "private" || p == "rprivate" {
        return Err(RootfsError::invalid(
            "linux.rootfsPropagation",
            "rootfsPropagation of [r]private is not safe without pivot_root",
        ));
    }
    Ok(())
}

/// B7: id-mapping applies to bind mounts only, per-mount maps come in pairs, and a mount
/// without its own maps borrows the container's, which then must exist.
fn validate_idmap(i: usize, m: &Mount, typ: &str, opts: &options::MountOptions) -> Result<(), RootfsError> {
    let uid = m.uid_mappings().as_deref().unwrap_or(&[]);
    let gid = m.gid_mappings().as_deref().unwrap_or(&[]);
    if super::idmapped::wants(m).is_none() && !opts.idmap {
        return Ok(());
    }
    if !is_bind(typ, opts) {
        return Err(RootfsError::invalid(format!("mounts[{i}].options"), "idmap needs a bind mount"));
    }
    if uid.is_empty() != gid.is_empty() {
        return Err(RootfsError::invalid(
            format!("mounts[{i}]"),
            "an id-mapped mount needs both uidMappings and gidMappings",
        ));
    }
    for (field, maps) in [(format!("mounts[{i}].uidMappings"), uid), (format!("mounts[{i}].gidMappings"), gid)] {
        crate::id_mappings::validate(&field, maps).map_err(|msg| RootfsError::invalid(field.clone(), msg))?;
    }
    Ok(())
}
