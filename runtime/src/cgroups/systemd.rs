//! `--systemd-cgroup`: linux.cgroupsPath in systemd's "slice:prefix:name" form, turned
//! into the cgroup directory systemd itself would give the unit. berth has no D-Bus
//! client: it makes and manages that directory through cgroupfs like any other path.

use super::CgroupError;

/// Slice and scope prefix used when config.json has no cgroupsPath (runc uses "runc").
pub const DEFAULT_SLICE: &str = "system.slice";
pub const DEFAULT_PREFIX: &str = "berth";

fn invalid(path: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidPath { path: path.to_string(), reason: reason.into() }
}

/// "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" (the root slice) → "".
pub(crate) fn expand_slice(whole: &str, slice: &str) -> Result<String, CgroupError> {
    let Some(name) = slice.strip_suffix(".slice") else {
        return Err(invalid(whole, format!("slice {slice:?} does not end in \".slice\"")));
    };
    if name == "-" {
        return Ok(String::new());
    }
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(invalid(whole, format!("{slice:?} is not a valid systemd slice name")));
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

fn check_unit_part(whole: &str, what: &str, s: &str) -> Result<(), CgroupError> {
    if s.contains('/') || s.contains('\0') || s == "." || s == ".." {
        return Err(invalid(whole, format!("{what} {s:?} cannot be part of a systemd unit name")));
    }
    Ok(())
}

/// The absolute cgroup path (from the hierarchy root) of `slice:prefix:name`, or of the
/// default `system.slice:berth:<id>` when `cgroups_path` is absent.
pub(crate) fn to_path(id: &str, cgroups_path: Option<&str>) -> Result<String, CgroupError> {
    let spec = match cgroups_path.filter(|p| !p.is_empty()) {
        Some(p) => p.to_string(),
        None => format!("{DEFAULT_SLICE}:{DEFAULT_PREFIX}:{id}"),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(&spec, "expected \"slice:prefix:name\" with --systemd-cgroup"));
    };
    check_unit_part(&spec, "prefix", prefix)?;
    check_unit_part(&spec, "name", name)?;
    if name.is_empty() {
        return Err(invalid(&spec, "the unit name is empty"));
    }
    let parent = expand_slice(&spec, if slice.is_empty() { DEFAULT_SLICE } else { slice })?;
    // A name that is a slice is the unit itself; anything else becomes a scope.
    let unit = if name.ends_with(".slice") {
        expand_slice(&spec, name)?.rsplit('/').next().unwrap_or(name).to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{parent}/{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_like_systemd() {
        assert_eq!(expand_slice("x", "system.slice").expect("ok"), "/system.slice");
        assert_eq!(expand_slice("x", "a-b-c.slice").expect("ok"), "/a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(expand_slice("x", "-.slice").expect("ok"), "");
        for bad in ["a", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice", ".slice"] {
            assert!(expand_slice("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgroups_paths() {
        assert_eq!(to_path("c1", Some("system.slice:docker:abc")).expect("ok"), "/system.slice/docker-abc.scope");
        assert_eq!(
            to_path("c1", Some("kubepods-besteffort.slice:cri-containerd:x")).expect("ok"),
            "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-x.scope"
        );
        assert_eq!(to_path("c1", None).expect("ok"), "/system.slice/berth-c1.scope");
        assert_eq!(to_path("c1", Some(":p:n")).expect("ok"), "/system.slice/p-n.scope");
        assert_eq!(to_path("c1", Some("-.slice::n")).expect("ok"), "/n.scope");
        assert_eq!(to_path("c1", Some("a.slice::a-b.slice")).expect("ok"), "/a.slice/a-b.slice");
        assert!(to_path("c1", Some("/abs/path")).is_err());
        assert!(to_path("c1", Some("a.slice:p:../x")).is_err());
        assert!(to_path("c1", Some("a.slice:p:")).is_err());
    }
}
