//! Rootless mode: whether berth runs without the host's privileges, and what follows from
//! it before anything is touched: where the state lives, which cgroups can be used, and the
//! limits that cannot be honoured. The CLI only parses `--rootless`; the decision is here.
//!
//! Rootless means euid ≠ 0, or uid 0 inside a user namespace that does not map the whole
//! id range (podman's case: conmon and the runtime run inside podman's user namespace).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::LinuxResources;
use thiserror::Error;

/// The state root of root in the initial user namespace (runc: /run/runc).
pub const SYSTEM_ROOT: &str = "/run/berth";

#[derive(Debug, Error)]
pub enum RootlessError {
    #[error("--rootless {0:?}: expected true, false or auto")]
    Flag(String),
    #[error(
        "XDG_RUNTIME_DIR is not set: as uid {uid} berth keeps its state in $XDG_RUNTIME_DIR/berth \
         (set XDG_RUNTIME_DIR to a directory of that user, or pass --root)"
    )]
    NoRuntimeDir { uid: u32 },
    #[error("XDG_RUNTIME_DIR: {} must be writable by the user (uid {uid}): {source}", path.display())]
    RuntimeDir { path: PathBuf, uid: u32, source: std::io::Error },
    /// A `linux.resources` limit without a cgroup this user may write.
    #[error(
        "{field}: rootless (uid {uid}): cannot set {controller} limit: container could not join or create cgroup \
         (no writable \"{controller}\" cgroup: on this host only root can write that cgroup hierarchy and none \
         is delegated): remove the limit"
    )]
    NoCgroup { field: String, controller: &'static str, uid: u32 },
}

static MODE: OnceLock<bool> = OnceLock::new();

/// runc's parseBoolOrAuto: `None` is auto ("" or "auto"), otherwise Go's ParseBool.
pub fn parse_flag(text: &str) -> Result<Option<bool>, RootlessError> {
    match text {
        "" | "auto" => Ok(None),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
        _ => Err(RootlessError::Flag(text.to_string())),
    }
}

/// Fixes the mode for this process from the `--rootless` flag (`None`: auto). The first
/// call wins; without one, [`active`] detects.
pub fn set(flag: Option<bool>) {
    let _ = MODE.set(flag.unwrap_or_else(detect));
}

/// Whether this berth runs rootless.
pub fn active() -> bool {
    *MODE.get_or_init(detect)
}

/// The automatic decision: euid ≠ 0, or a user namespace that is not fully owned.
pub fn detect() -> bool {
    nix::unistd::geteuid().as_raw() != 0 || in_partial_user_namespace()
}

/// Whether /proc/self/uid_map is anything but the full identity map of the initial user
/// namespace ("0 0 4294967295"). An unreadable map counts as partial: assume less privilege.
pub fn in_partial_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(text) => !is_full_identity(&text),
        Err(_) => true,
    }
}

fn is_full_identity(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map.lines().map(|l| l.split_whitespace().collect()).collect();
    matches!(lines.as_slice(), [l] if l.as_slice() == ["0", "0", "4294967295"])
}

/// The state root when `--root` is not given. As runc: `$XDG_RUNTIME_DIR/berth` when
/// euid ≠ 0 (or uid 0 in a user namespace whose $USER is not root), made 0700 with the
/// sticky bit (XDG: keeps it from being pruned); otherwise /run/berth. Unlike runc, a
/// non-root user without XDG_RUNTIME_DIR gets an error naming it instead of the
/// permission error of /run/berth.
pub fn default_state_root() -> Result<PathBuf, RootlessError> {
    let uid = nix::unistd::geteuid().as_raw();
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let honour = match &xdg {
        None => false,
        Some(_) if uid != 0 => true,
        Some(_) => in_partial_user_namespace() && std::env::var("USER").map_or(true, |u| u != "root"),
    };
    let Some(dir) = xdg.filter(|_| honour) else {
        if uid != 0 {
            return Err(RootlessError::NoRuntimeDir { uid });
        }
        return Ok(PathBuf::from(SYSTEM_ROOT));
    };
    let root = Path::new(&dir).join("berth");
    let fail = |source| RootlessError::RuntimeDir { path: root.clone(), uid, source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&root).map_err(fail)?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700)).map_err(fail)?;
    Ok(root)
}

/// The v1 controller (or the first of them) a `linux.resources` member needs.
fn controller_of(member: &str, inner: &str) -> &'static str {
    match (member, inner) {
        ("memory", _) => "memory",
        ("cpu", "cpus" | "mems") => "cpuset",
        ("cpu", _) => "cpu",
        ("pids", _) => "pids",
        ("blockIO", _) => "blkio",
        ("hugepageLimits", _) => "hugetlb",
        ("network", "priorities") => "net_prio",
        ("network", _) => "net_cls",
        ("rdma", _) => "rdma",
        _ => "unified",
    }
}

/// Checks, in rootless mode, that every limit `linux.resources` requests has a cgroup to go
/// to (`has_controller`: the driver kept a writable directory for it), and returns the
/// resources to apply, without device rules (see below). An empty or absent member requests
/// nothing, so the config of `spec --rootless` passes.
pub fn check_resources(
    resources: &LinuxResources,
    has_controller: &dyn Fn(&str) -> bool,
) -> Result<LinuxResources, RootlessError> {
    let uid = nix::unistd::geteuid().as_raw();
    let value = serde_json::to_value(resources).unwrap_or_default();
    for (member, v) in value.as_object().into_iter().flatten() {
        if member == "devices" || !requests(v) {
            continue;
        }
        // The first member that asks for something names the field.
        let inner = v.as_object().and_then(|o| o.iter().find(|(_, x)| requests(x)).map(|(k, _)| k.as_str()));
        let controller = controller_of(member, inner.unwrap_or(""));
        if !has_controller(controller) {
            let field = match inner {
                Some(i) => format!("linux.resources.{member}.{i}"),
                None => format!("linux.resources.{member}"),
            };
            return Err(RootlessError::NoCgroup { field, controller, uid });
        }
    }
    // Device rules are dropped whatever the cgroup: an unprivileged user may neither attach
    // the eBPF device program of cgroup v2 nor write a v1 devices cgroup, and runc and crun
    // ignore them rootless too; the user namespace already forbids mknod, and the device
    // nodes' own permissions decide access.
    let mut out = resources.clone();
    out.set_devices(None);
    Ok(out)
}

/// Whether a JSON value asks for anything: not null, not an empty list or object, and (for
/// an object) with at least one member that does.
fn requests(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => o.values().any(requests),
        _ => true,
    }
}

/// In rootless mode a process may lower its oom_score_adj only down to the lowest value a
/// privileged process last set for it (the kernel's oom_score_adj_min, inherited, and not
/// shown in /proc): below that takes CAP_SYS_RESOURCE. A containerd shim raises its own
/// value by one above dockerd's, so a rootless Docker container asks for a value below
/// berth's own that the kernel still allows. Whether it does is found out on berth itself
/// (the value set, then put back: raising it is always allowed), so a value the kernel would
/// refuse is refused up front, naming the field, instead of failing in the container's
/// process (runc: "failed to update /proc/self/oom_score_adj").
pub fn check_oom_score_adj(requested: i32) -> Result<(), String> {
    const OWN: &str = "/proc/self/oom_score_adj";
    let current = std::fs::read_to_string(OWN).ok().and_then(|t| t.trim().parse::<i32>().ok()).unwrap_or(0);
    if requested >= current {
        return Ok(());
    }
    match std::fs::write(OWN, requested.to_string()) {
        Ok(()) => {
            let _ = std::fs::write(OWN, current.to_string());
            Ok(())
        }
        Err(e) => Err(format!(
            "process.oomScoreAdj {requested}: rootless: below the lowest value this user may set (berth's is \
             {current}; lowering it further takes CAP_SYS_RESOURCE): {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_parses_like_runc() {
        assert_eq!(parse_flag("auto").unwrap(), None);
        assert_eq!(parse_flag("").unwrap(), None);
        assert_eq!(parse_flag("true").unwrap(), Some(true));
        assert_eq!(parse_flag("1").unwrap(), Some(true));
        assert_eq!(parse_flag("False").unwrap(), Some(false));
        assert!(parse_flag("maybe").unwrap_err().to_string().contains("--rootless"));
    }

    #[test]
    fn only_the_full_identity_map_is_owned() {
        assert!(is_full_identity("         0          0 4294967295\n"));
        assert!(!is_full_identity("         0       1000          1\n"));
        assert!(!is_full_identity("0 0 4294967294\n"));
        assert!(!is_full_identity("0 0 1000\n1000 1000 4294966295\n"));
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn limits_without_a_cgroup_name_their_field() {
        let none = |_: &str| false;
        let e = check_resources(&res(r#"{"memory":{"limit":1048576}}"#), &none).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.memory.limit:"), "{e}");
        let e = check_resources(&res(r#"{"cpu":{"cpus":"0"}}"#), &none).unwrap_err().to_string();
        assert!(e.contains("linux.resources.cpu.cpus") && e.contains("cpuset"), "{e}");
        let e = check_resources(&res(r#"{"pids":{"limit":10}}"#), &none).unwrap_err().to_string();
        assert!(e.contains("linux.resources.pids.limit"), "{e}");
    }

    #[test]
    fn nothing_requested_passes_and_device_rules_are_dropped() {
        let none = |_: &str| false;
        let r = res(r#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{},"hugepageLimits":[]}"#);
        let out = check_resources(&r, &none).unwrap();
        assert!(out.devices().is_none());
        let all = |_: &str| true;
        let out = check_resources(&res(r#"{"memory":{"limit":1048576}}"#), &all).unwrap();
        assert!(out.memory().is_some());
    }
}
