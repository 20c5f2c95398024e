//! Loading and validating a bundle's config.json. Every error names the field it is about;
//! anything berth does not implement yet is refused here, before anything is created, so a
//! security setting is never silently ignored.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SpecError {
    #[error("JSON specification file {0} not found")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: config cannot be null")]
    Null { path: PathBuf },
    #[error("{path}: {field}: {msg}")]
    Decode { path: PathBuf, field: String, msg: String },
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("{field}: not supported by berth yet")]
    Unsupported { field: String },
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> SpecError {
    SpecError::Invalid { field: field.into(), msg: msg.into() }
}

fn unsupported(field: impl Into<String>) -> SpecError {
    SpecError::Unsupported { field: field.into() }
}

/// A loaded config.json with the warnings found while reading it.
pub struct Loaded {
    pub spec: Spec,
    pub warnings: Vec<String>,
}

/// Reads and decodes `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Loaded, SpecError> {
    let path = bundle.join("config.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SpecError::NotFound(path)),
        Err(e) => return Err(SpecError::Read { path, source: e }),
    };
    let mut value: Value =
        serde_json::from_slice(&bytes).map_err(|e| SpecError::Json { path: path.clone(), source: e })?;
    if value.is_null() {
        return Err(SpecError::Null { path });
    }
    let warnings = drop_unknown_capabilities(&mut value);
    drop_empty_namespace_paths(&mut value);
    if let Some(process) = value.get_mut("process") {
        accept_spec_scheduler_flags(process);
    }
    if let Some(seccomp) = value.pointer("/linux/seccomp") {
        crate::seccomp::check_names(seccomp)?;
    }
    let mut spec: Spec = serde_path_to_error::deserialize(value).map_err(|e| SpecError::Decode {
        path: path.clone(),
        field: e.path().to_string(),
        msg: e.inner().to_string(),
    })?;
    destinations_in_container(&mut spec, bundle);
    Ok(Loaded { spec, warnings })
}

/// runc (1.2 on) reads a mount destination spelled as a path under the rootfs on the host,
/// `<bundle>/<root.path>/mnt`, as that path in the container, `/mnt`; configs written
/// against a runc bundle (its bats suite's mount tests among them) name destinations so.
/// The comparison is lexical, against the bundle joined with `root.path`, as runc's.
fn destinations_in_container(spec: &mut Spec, bundle: &Path) {
    let Some(root) = spec.root().as_ref().map(|r| bundle.join(r.path())) else { return };
    let root = crate::rootfs::resolve::clean_container_path(&root);
    if root == Path::new("/") {
        return;
    }
    for m in spec.mounts_mut().iter_mut().flatten() {
        let dest = crate::rootfs::resolve::clean_container_path(m.destination());
        if let Ok(inside) = dest.strip_prefix(&root) {
            m.set_destination(Path::new("/").join(inside));
        }
    }
}

/// runtime-spec names two of the scheduler flags `SCHED_FLAG_RESET_ON_FORK` and
/// `SCHED_FLAG_DL_OVERRUN`, which oci-spec's types know as `SCHED_RESET_ON_FORK` and
/// `SCHED_FLAG_D_L_OVERRUN`: `process.scheduler.flags` is read under either name.
pub(crate) fn accept_spec_scheduler_flags(process: &mut Value) {
    let Some(flags) = process.pointer_mut("/scheduler/flags").and_then(Value::as_array_mut) else { return };
    for flag in flags {
        let typed = match flag.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *flag = Value::from(typed);
    }
}

/// runtime-spec config.md: an unknown capability SHOULD be logged as a warning and MUST NOT
/// fail the container (runc does the same). Drop them before typed decoding.
fn drop_unknown_capabilities(value: &mut Value) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(caps) = value.pointer_mut("/process/capabilities").and_then(Value::as_object_mut) else {
        return warnings;
    };
    for (set, list) in caps.iter_mut() {
        let Some(items) = list.as_array_mut() else { continue };
        items.retain(|item| {
            let known = serde_json::from_value::<oci_spec::runtime::Capability>(item.clone()).is_ok();
            if !known {
                warnings.push(format!("process.capabilities.{set}: ignoring unknown capability {item}"));
            }
            known
        });
    }
    warnings
}

/// config-linux.md: without `path` a namespace is new; runc (and runtime-tools' generator)
/// treat `"path": ""` the same way, so it must not be read as a path to join.
fn drop_empty_namespace_paths(value: &mut Value) {
    let Some(list) = value.pointer_mut("/linux/namespaces").and_then(Value::as_array_mut) else { return };
    for ns in list.iter_mut().filter_map(Value::as_object_mut) {
        if ns.get("path").and_then(Value::as_str) == Some("") {
            ns.remove("path");
        }
    }
}

/// What validation resolved from the spec.
#[derive(Debug)]
pub struct Validated {
    /// The rootfs, absolute and free of symlinks.
    pub rootfs: PathBuf,
}

/// Checks the spec against what runtime-spec requires and what berth implements.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<Validated, SpecError> {
    validate_version(spec.version())?;
    let rootfs = validate_root(spec, bundle)?;
    validate_process(spec)?;
    validate_linux(spec)?;
    validate_mount_extensions(spec)?;
    Ok(Validated { rootfs })
}

fn validate_version(version: &str) -> Result<(), SpecError> {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        return Err(invalid("ociVersion", format!("{version:?} is not a SemVer version")));
    }
    if parts[0] != "1" {
        return Err(invalid("ociVersion", format!("{version:?}: berth supports runtime-spec 1.x")));
    }
    Ok(())
}

fn validate_root(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec.root().as_ref().ok_or_else(|| invalid("root", "root must be specified"))?;
    let given = root.path();
    if given.as_os_str().is_empty() {
        return Err(invalid("root.path", "must not be empty"));
    }
    // A relative root.path is relative to the bundle, not to our working directory.
    let joined = if given.is_absolute() { given.clone() } else { bundle.join(given) };
    let meta = fs::symlink_metadata(&joined)
        .map_err(|e| invalid("root.path", format!("invalid rootfs {}: {e}", joined.display())))?;
    if meta.file_type().is_symlink() {
        return Err(invalid("root.path", format!("invalid rootfs {}: is a symlink", joined.display())));
    }
    if !meta.is_dir() {
        return Err(invalid("root.path", format!("invalid rootfs {}: not a directory", joined.display())));
    }
    let canonical = fs::canonicalize(&joined)
        .map_err(|e| invalid("root.path", format!("invalid rootfs {}: {e}", joined.display())))?;
    if canonical == Path::new("/") {
        return Err(invalid("root.path", "the host's / cannot be a container's rootfs"));
    }
    Ok(canonical)
}

fn validate_process(spec: &Spec) -> Result<(), SpecError> {
    let process = spec.process().as_ref().ok_or_else(|| invalid("process", "process property must not be empty"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(invalid("process.args", "args must not be empty")),
    }
    if process.command_line().is_some() {
        return Err(invalid("process.commandLine", "is a Windows field"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid("process.cwd", format!("{:?} must be an absolute path", process.cwd())));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') || e.starts_with('=') || e.contains('\0') {
                return Err(invalid(format!("process.env[{i}]"), format!("{e:?} is not of the form KEY=value")));
            }
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid("process.oomScoreAdj", format!("{adj} is outside -1000..1000")));
        }
    }
    if let Some(rlimits) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, rl) in rlimits.iter().enumerate() {
            if !seen.insert(format!("{:?}", rl.typ())) {
                return Err(invalid(format!("process.rlimits[{i}].type"), format!("duplicate rlimit {:?}", rl.typ())));
            }
            if rl.soft() > rl.hard() {
                return Err(invalid(
                    format!("process.rlimits[{i}]"),
                    format!("soft limit {} is above hard limit {}", rl.soft(), rl.hard()),
                ));
            }
        }
    }
    let mount_label = spec.linux().as_ref().and_then(|l| l.mount_label().clone());
    crate::lsm::check(process.apparmor_profile(), process.selinux_label(), &mount_label)
        .map_err(|(f, m)| invalid(f, m))?;
    let field_err = |(field, msg): crate::kernel_attrs::FieldError| invalid(field, msg);
    if let Some(s) = process.scheduler() {
        crate::kernel_attrs::validate_scheduler(s).map_err(field_err)?;
    }
    crate::kernel_attrs::validate_io_priority(process).map_err(field_err)?;
    crate::kernel_attrs::validate_cpu_affinity(process).map_err(field_err)?;
    Ok(())
}

/// The namespace types a spec asks for, new or joined.
pub fn namespace_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| ns.iter().map(|n| n.typ()).collect())
        .unwrap_or_default()
}

fn validate_linux(spec: &Spec) -> Result<(), SpecError> {
    let linux =
        spec.linux().as_ref().ok_or_else(|| invalid("linux", "berth runs Linux containers: linux must be present"))?;
    let namespaces = linux.namespaces().as_deref().unwrap_or(&[]);
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(format!("linux.namespaces[{i}]"), format!("duplicated namespace {}", ns.typ())));
        }
        if let Some(path) = ns.path() {
            if path.as_os_str().as_encoded_bytes().contains(&b',') {
                return Err(invalid(format!("linux.namespaces[{i}].path"), "must not contain a comma"));
            }
            crate::namespaces::check_path(ns.typ(), path)
                .map_err(|e| invalid(format!("linux.namespaces[{i}].path"), e.to_string()))?;
        }
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    let new_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t && n.path().is_none());

    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname", "unable to set hostname without a UTS namespace"));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("domainname", "unable to set domainname without a UTS namespace"));
    }
    // Without a mount namespace the container shares the runtime's (as with runc): its
    // rootfs is set up there and entered with chroot. Masking would hide host paths.
    if !has(LinuxNamespaceType::Mount) {
        if linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(invalid("linux.maskedPaths", "masked paths need a mount namespace"));
        }
        if linux.readonly_paths().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(invalid("linux.readonlyPaths", "read-only paths need a mount namespace"));
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            validate_sysctl(key, &new_ns, &has)?;
        }
    }
    validate_user_namespace(linux, namespaces)?;
    if linux.intel_rdt().is_some() && !Path::new("/sys/fs/resctrl").is_dir() {
        return Err(invalid("linux.intelRdt", "resctrl is not available on this host"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    if let Some(p) = linux.personality() {
        crate::kernel_attrs::validate_personality(p).map_err(|(f, m)| invalid(f, m))?;
    }
    if let Some(p) = linux.memory_policy() {
        crate::kernel_attrs::validate_memory_policy(p).map_err(|(f, m)| invalid(f, m))?;
    }
    if let Some(devices) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) {
        if !new_ns(LinuxNamespaceType::Network) {
            return Err(invalid("linux.netDevices", "moving network devices needs a new network namespace"));
        }
        crate::netdev::validate(devices).map_err(|(f, m)| invalid(f, m))?;
    }
    if let Some(offsets) = linux.time_offsets().as_ref().filter(|d| !d.is_empty()) {
        if !new_ns(LinuxNamespaceType::Time) {
            return Err(invalid("linux.timeOffsets", "time offsets need a new time namespace"));
        }
        for (clock, o) in offsets {
            if clock != "monotonic" && clock != "boottime" {
                return Err(invalid(
                    format!("linux.timeOffsets[{clock:?}]"),
                    "only monotonic and boottime can be offset",
                ));
            }
            if o.nanosecs().unwrap_or(0) >= 1_000_000_000 {
                return Err(invalid(format!("linux.timeOffsets[{clock:?}].nanosecs"), "must be below 1000000000"));
            }
        }
    }
    Ok(())
}

/// A new user namespace needs both maps with root mapped; a joined one takes no maps; maps
/// without a user namespace are refused (runc ignores them, which hides a mistake).
fn validate_user_namespace(
    linux: &oci_spec::runtime::Linux,
    namespaces: &[oci_spec::runtime::LinuxNamespace],
) -> Result<(), SpecError> {
    let uid = linux.uid_mappings().as_deref().unwrap_or(&[]);
    let gid = linux.gid_mappings().as_deref().unwrap_or(&[]);
    let user = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::User);
    match user {
        None if !uid.is_empty() => {
            return Err(invalid("linux.uidMappings", "mappings need a user namespace in linux.namespaces"))
        }
        None if !gid.is_empty() => {
            return Err(invalid("linux.gidMappings", "mappings need a user namespace in linux.namespaces"))
        }
        None => return Ok(()),
        Some(ns) if ns.path().is_some() => {
            let path = ns.path().as_deref().unwrap_or(Path::new(""));
            return crate::id_mappings::check_joined(path, uid, gid).map_err(|(f, m)| invalid(f, m));
        }
        Some(_) => {}
    }
    for (field, maps) in [("linux.uidMappings", uid), ("linux.gidMappings", gid)] {
        if maps.is_empty() {
            return Err(invalid(field, "a new user namespace needs both uidMappings and gidMappings"));
        }
        crate::id_mappings::validate(field, maps).map_err(|m| match m.split_once(": ") {
            Some((f, msg)) => invalid(f, msg),
            None => invalid(field, m),
        })?;
        if !crate::id_mappings::maps_id(maps, 0) {
            return Err(invalid(field, "container id 0 (root) must be mapped"));
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only in a namespace the container owns
/// (runc's validator rules), or the write would change the host.
fn validate_sysctl(
    key: &str,
    new_ns: &dyn Fn(LinuxNamespaceType) -> bool,
    has: &dyn Fn(LinuxNamespaceType) -> bool,
) -> Result<(), SpecError> {
    let field = format!("linux.sysctl[{key:?}]");
    if key.is_empty() || key.contains("..") || key.starts_with('/') || key.contains('\0') {
        return Err(invalid(field, "not a sysctl name"));
    }
    let ipc = key.starts_with("fs.mqueue.")
        || matches!(
            key,
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        );
    if ipc {
        if !new_ns(LinuxNamespaceType::Ipc) && !has(LinuxNamespaceType::Ipc) {
            return Err(invalid(field, "sysctl is in the IPC namespace, but the container has none of its own"));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if !has(LinuxNamespaceType::Network) {
            return Err(invalid(field, "sysctl is in the network namespace, but the container uses the host's"));
        }
        return Ok(());
    }
    if matches!(key, "kernel.hostname" | "kernel.domainname") {
        if !has(LinuxNamespaceType::Uts) {
            return Err(invalid(field, "sysctl is in the UTS namespace, but the container uses the host's"));
        }
        return Ok(());
    }
    Err(invalid(field, "sysctl is not in a separate kernel namespace"))
}

fn validate_mount_extensions(spec: &Spec) -> Result<(), SpecError> {
    let linux = spec.linux().as_ref();
    let joins_userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some()));
    // Without maps of its own the mount takes the joined user namespace's, or these.
    let container_maps =
        joins_userns || linux.is_some_and(|l| l.uid_mappings().as_ref().is_some_and(|v| !v.is_empty()));
    for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        let own = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if crate::rootfs::idmapped::wants(m).is_some() && !own && !container_maps {
            return Err(invalid(
                format!("mounts[{i}].options"),
                "idmap without the mount's own uidMappings/gidMappings needs linux.uidMappings/gidMappings or a user namespace to join",
            ));
        }
    }
    Ok(())
}

/// The cgroup resources to apply: the spec's, with runc's default device rules appended
/// after the spec's own, so the devices every container gets stay usable under a deny-all
/// (as runc does). `linux.devices` entries get no rule of their own: a config that creates
/// a node but does not allow it in `linux.resources.devices` keeps it unusable, as with runc.
pub fn cgroup_resources(spec: &Spec) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType as T};
    let linux = spec.linux().as_ref();
    let mut res = linux.and_then(|l| l.resources().clone()).unwrap_or_default();
    let rule = |typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let mut rules = res.devices().clone().unwrap_or_default();
    rules.extend([
        rule(T::C, None, None, "m"),
        rule(T::B, None, None, "m"),
        rule(T::C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(T::C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(T::C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(T::C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(T::C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(T::C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(T::C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(T::C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(T::C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]);
    res.set_devices(Some(rules));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_must_be_semver_1x() {
        assert!(validate_version("1.0.2").is_ok());
        assert!(validate_version("1.3.0-rc.1").is_ok());
        for bad in ["", "0.1.0", "2.0.0", "banana", "1.0"] {
            let e = validate_version(bad).unwrap_err().to_string();
            assert!(e.starts_with("ociVersion"), "{e}");
        }
    }

    #[test]
    fn unknown_capabilities_are_dropped_with_a_warning() {
        let mut v = serde_json::json!({"process": {"capabilities": {"bounding": ["CAP_KILL", "CAP_FOO"]}}});
        let w = drop_unknown_capabilities(&mut v);
        assert_eq!(v["process"]["capabilities"]["bounding"], serde_json::json!(["CAP_KILL"]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("CAP_FOO"));
    }

    #[test]
    fn empty_namespace_path_means_a_new_namespace() {
        let mut v =
            serde_json::json!({"linux": {"namespaces": [{"type": "pid", "path": ""}, {"type": "net", "path": "/x"}]}});
        drop_empty_namespace_paths(&mut v);
        assert_eq!(v["linux"]["namespaces"], serde_json::json!([{"type": "pid"}, {"type": "net", "path": "/x"}]));
    }

    #[test]
    fn a_destination_spelled_under_the_host_rootfs_is_that_path_in_the_container() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/b/rootfs/mnt/x", "type": "bind", "source": "/s"},
                {"destination": "/b/rootfs/../rootfs/final/", "type": "bind", "source": "/s"},
                {"destination": "/b/rootfs", "type": "tmpfs"},
                {"destination": "/b/rootfs2/mnt", "type": "tmpfs"},
                {"destination": "/tmp", "type": "tmpfs"}
            ]
        }))
        .unwrap();
        destinations_in_container(&mut spec, Path::new("/b"));
        let dests: Vec<_> = spec.mounts().iter().flatten().map(|m| m.destination().clone()).collect();
        let want = ["/mnt/x", "/final", "/", "/b/rootfs2/mnt", "/tmp"];
        assert_eq!(dests, want.iter().map(PathBuf::from).collect::<Vec<_>>());
    }

    #[test]
    fn sysctl_outside_a_namespace_is_refused() {
        let none = |_t: LinuxNamespaceType| false;
        let all = |_t: LinuxNamespaceType| true;
        assert!(validate_sysctl("net.ipv4.ip_forward", &all, &all).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", &none, &none).is_err());
        assert!(validate_sysctl("kernel.shmmax", &all, &all).is_ok());
        assert!(validate_sysctl("kernel.panic", &all, &all).unwrap_err().to_string().contains("kernel.panic"));
        assert!(validate_sysctl("../x", &all, &all).is_err());
    }
}
