//! linux.cgroupsPath: where the container's cgroup goes, relative to each hierarchy's root.

use super::CgroupError;

/// The container's cgroup, relative to each hierarchy's root ("/a/b").
/// runc's cgroupfs rules: absolute → as is; relative → under our own
/// cgroup; absent → our own cgroup + id.
pub(crate) fn resolve_rel(own_path: &str, id: &str, cgroups_path: Option<&str>) -> Result<String, CgroupError> {
    let requested = match cgroups_path {
        Some(p) if !p.is_empty() => p,
        _ => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
                return Err(CgroupError::InvalidPath {
                    path: id.to_string(),
                    reason: "container id is not usable as a cgroup name".into(),
                });
            }
            return Ok(normalize(&format!("{own_path}/{id}")));
        }
    };
    if !requested.starts_with('/') && requested.split(':').count() == 3 {
        return Err(CgroupError::SystemdPathUnsupported(requested.to_string()));
    }
    if requested.contains('\0') {
        return Err(CgroupError::InvalidPath {
            path: requested.escape_debug().to_string(),
            reason: "contains a NUL byte".into(),
        });
    }
    if requested.split('/').any(|c| c == "..") {
        return Err(CgroupError::InvalidPath { path: requested.to_string(), reason: "\"..\" is not allowed".into() });
    }
    let joined =
        if requested.starts_with('/') { normalize(requested) } else { normalize(&format!("{own_path}/{requested}")) };
    if joined == "/" {
        return Err(CgroupError::InvalidPath {
            path: requested.to_string(),
            reason: "resolves to the root cgroup".into(),
        });
    }
    Ok(joined)
}

/// Collapses "//" and "." (".." is rejected before we get here).
fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(resolve_rel("/user/x", "c1", None).unwrap(), "/user/x/c1");
        assert_eq!(resolve_rel("/", "c1", None).unwrap(), "/c1");
        assert_eq!(resolve_rel("/", "c1", Some("")).unwrap(), "/c1");
        assert_eq!(resolve_rel("/own", "c1", Some("/abs/p")).unwrap(), "/abs/p");
        assert_eq!(resolve_rel("/own", "c1", Some("rel/./p")).unwrap(), "/own/rel/p");
        assert_eq!(resolve_rel("/own", "c1", Some("//a//b/")).unwrap(), "/a/b");
        assert!(matches!(
            resolve_rel("/", "c1", Some("system.slice:docker:abc")),
            Err(CgroupError::SystemdPathUnsupported(_))
        ));
        assert!(resolve_rel("/", "c1", Some("/a/../b")).is_err());
        assert!(resolve_rel("/", "c1", Some("a/\0b")).is_err());
        assert!(resolve_rel("/", "c1", Some("/")).is_err());
        assert!(resolve_rel("/", "..", None).is_err());
        assert!(resolve_rel("/", "a/b", None).is_err());
    }
}
