//! `--systemd-cgroup`'s linux.cgroupsPath, "slice:prefix:name" as runc reads it: the unit
//! (`prefix-name.scope`, or the name itself when it is a slice), the slice it goes in, and
//! the cgroup directory systemd gives that unit (a "-" in a slice name nests it:
//! `a-b.slice` lives in `a.slice/a-b.slice`).

use super::super::CgroupError;

/// Slice and scope prefix used when config.json has no cgroupsPath (runc uses "runc").
pub const DEFAULT_SLICE: &str = "system.slice";
pub const DEFAULT_PREFIX: &str = "berth";

/// Where the container's unit goes, from linux.cgroupsPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnitPath {
    /// The unit berth starts: "prefix-name.scope", or "name.slice".
    pub unit: String,
    /// The slice it goes in ("-.slice" is the root slice).
    pub slice: String,
    /// The unit's cgroup, from the hierarchy's root ("/system.slice/berth-c1.scope").
    pub cgroup: String,
}

impl UnitPath {
    /// Whether the unit is a slice (it gets no process of its own at start).
    pub(crate) fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }

    /// The slice's own cgroup ("" for the root slice).
    pub(crate) fn slice_cgroup(&self) -> Result<String, CgroupError> {
        expand_slice(&self.slice, &self.slice)
    }
}

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

/// Parses `slice:prefix:name`, or takes runc's default (`system.slice:<prefix>:<id>`, with
/// berth's prefix) when `cgroups_path` is absent or empty.
pub(crate) fn parse(id: &str, cgroups_path: Option<&str>) -> Result<UnitPath, CgroupError> {
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
    let slice = if slice.is_empty() { DEFAULT_SLICE } else { slice };
    let parent = expand_slice(&spec, slice)?;
    // A name that is a slice is the unit itself (systemd places it by its own name, runc
    // only adds Wants= on the given slice); anything else becomes a scope in the slice.
    let (unit, cgroup) = if name.ends_with(".slice") {
        (name.to_string(), expand_slice(&spec, name)?)
    } else {
        let unit = if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") };
        let cgroup = format!("{parent}/{unit}");
        (unit, cgroup)
    };
    Ok(UnitPath { unit, slice: slice.to_string(), cgroup })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_like_systemd() {
        assert_eq!(expand_slice("x", "system.slice").expect("ok"), "/system.slice");
        assert_eq!(expand_slice("x", "a-b-c.slice").expect("ok"), "/a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(
            expand_slice("x", "kubepods-burstable-podX.slice").expect("ok"),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podX.slice"
        );
        assert_eq!(expand_slice("x", "-.slice").expect("ok"), "");
        for bad in ["a", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice", ".slice"] {
            assert!(expand_slice("x", bad).is_err(), "{bad}");
        }
    }

    fn cgroup(id: &str, p: Option<&str>) -> String {
        parse(id, p).expect("parses").cgroup
    }

    #[test]
    fn cgroups_paths() {
        assert_eq!(cgroup("c1", Some("system.slice:docker:abc")), "/system.slice/docker-abc.scope");
        assert_eq!(
            cgroup("c1", Some("kubepods-besteffort.slice:cri-containerd:x")),
            "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-x.scope"
        );
        assert_eq!(cgroup("c1", None), "/system.slice/berth-c1.scope");
        assert_eq!(cgroup("c1", Some("")), "/system.slice/berth-c1.scope");
        assert_eq!(cgroup("c1", Some(":p:n")), "/system.slice/p-n.scope");
        assert_eq!(cgroup("c1", Some("-.slice::n")), "/n.scope");
        assert_eq!(cgroup("c1", Some("a.slice::a-b.slice")), "/a.slice/a-b.slice");
        assert!(parse("c1", Some("/abs/path")).is_err());
        assert!(parse("c1", Some("a.slice:p:../x")).is_err());
        assert!(parse("c1", Some("a.slice:p:")).is_err());
        assert!(parse("c1", Some("a:b")).is_err());
        assert!(parse("c1", Some("nota-slice:p:n")).is_err());
    }

    #[test]
    fn units_and_slices() {
        let u = parse("c1", Some("kubepods-burstable-podX.slice:cri-containerd:abc")).expect("parses");
        assert_eq!(u.unit, "cri-containerd-abc.scope");
        assert_eq!(u.slice, "kubepods-burstable-podX.slice");
        assert!(!u.is_slice());
        assert_eq!(
            u.slice_cgroup().expect("slice"),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podX.slice"
        );
        let d = parse("c1", None).expect("default");
        assert_eq!((d.unit.as_str(), d.slice.as_str()), ("berth-c1.scope", "system.slice"));
        let s = parse("c1", Some("a.slice::a-b.slice")).expect("slice unit");
        assert!(s.is_slice());
        assert_eq!((s.unit.as_str(), s.slice.as_str()), ("a-b.slice", "a.slice"));
    }
}
