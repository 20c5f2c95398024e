//! Tests of the rootfs module. Pure ones run anywhere; `root_` ones need root
//! and do their work in a forked child with its own mount namespace, so every
//! mount vanishes with the child.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::*;

fn spec(json: &str) -> Spec {
    match serde_json::from_str(json) {
        Ok(s) => s,
        Err(e) => panic!("bad test spec: {e}\n{json}"),
    }
}

fn spec_with_mounts(mounts: &str) -> Spec {
    spec(&format!(r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs"}},"mounts":{mounts}}}"#))
}

fn spec_with_linux(linux: &str) -> Spec {
    spec(&format!(r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs"}},"linux":{linux}}}"#))
}

fn validate_err(s: &Spec) -> String {
    match validate(s, Path::new("/bundle")) {
        Ok(()) => panic!("validate accepted a bad spec"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn rootfs_validate_accepts_default_like_config() {
    let s = spec_with_mounts(
        r#"[{"destination":"/proc","type":"proc","source":"proc"},
            {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]},
            {"destination":"/etc/hosts","source":"/etc/hosts","options":["rbind","ro"]},
            {"destination":"/proc/cpuinfo","type":"bind","source":"/x","options":["bind"]}]"#,
    );
    assert!(validate(&s, Path::new("/b")).is_ok());
}

#[test]
fn rootfs_validate_rejects_empty_destination() {
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"","type":"tmpfs"}]"#));
    assert!(e.contains("mounts[0].destination") && e.contains("empty"), "{e}");
}

#[test]
fn rootfs_validate_rejects_nul_in_destination() {
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/a\u0000b","type":"tmpfs"}]"#));
    assert!(e.contains("mounts[0].destination") && e.contains("null byte"), "{e}");
}

#[test]
fn rootfs_validate_rejects_missing_type_without_bind() {
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/x","source":"/y","options":["ro"]}]"#));
    assert!(e.contains("mounts[0].type"), "{e}");
}

#[test]
fn rootfs_validate_infers_bind_from_options() {
    let s = spec_with_mounts(r#"[{"destination":"/x","source":"/y","options":["rbind"]}]"#);
    assert!(validate(&s, Path::new("/b")).is_ok());
}

#[test]
fn rootfs_validate_rejects_bind_with_fs_data() {
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/x","source":"/y","options":["bind","size=10k"]}]"#));
    assert!(e.contains("mounts[0].options") && e.contains("filesystem-specific"), "{e}");
}

#[test]
fn rootfs_validate_rejects_non_proc_on_proc() {
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/proc","type":"bind","source":"/tmp","options":["bind"]}]"#));
    assert!(e.contains("not of type proc"), "{e}");
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/proc/self/attr","type":"tmpfs","source":"t"}]"#));
    assert!(e.contains("inside /proc"), "{e}");
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/x/../proc/sys","type":"tmpfs","source":"t"}]"#));
    assert!(e.contains("inside /proc"), "{e}");
}

#[test]
fn rootfs_validate_rejects_idmap() {
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/x","source":"/y","options":["bind","idmap"]}]"#));
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn rootfs_validate_rejects_unknown_root_propagation() {
    let e = validate_err(&spec_with_linux(r#"{"rootfsPropagation":"bogus"}"#));
    assert!(e.contains("rootfsPropagation=bogus is not supported"), "{e}");
}

#[test]
fn rootfs_validate_no_pivot_rejects_private_propagation() {
    let s = spec_with_linux(r#"{"rootfsPropagation":"rprivate"}"#);
    assert!(validate(&s, Path::new("/b")).is_ok());
    let e = validate_no_pivot(&s).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("not safe without pivot_root"), "{e}");
    assert!(validate_no_pivot(&spec_with_linux(r#"{"rootfsPropagation":"rslave"}"#)).is_ok());
}

#[test]
fn rootfs_validate_rejects_device_type_a() {
    let e = validate_err(&spec_with_linux(r#"{"devices":[{"path":"/dev/x","type":"a","major":1,"minor":3}]}"#));
    assert!(e.contains("linux.devices[0].type"), "{e}");
}

#[test]
fn rootfs_validate_rejects_bad_device_paths() {
    for p in ["dev/x", "/dev/../etc/x", "/etc/x", "/dev"] {
        let e = validate_err(&spec_with_linux(&format!(r#"{{"devices":[{{"path":"{p}","type":"c","major":1,"minor":3}}]}}"#)));
        assert!(e.contains("linux.devices[0].path"), "{p}: {e}");
    }
}

#[test]
fn rootfs_validate_rejects_relative_masked_path() {
    let e = validate_err(&spec_with_linux(r#"{"maskedPaths":["proc/kcore"]}"#));
    assert!(e.contains("linux.maskedPaths[0]"), "{e}");
}

#[test]
fn rootfs_clean_container_path_never_climbs_above_root() {
    use super::resolve::clean_container_path as c;
    assert_eq!(c(Path::new("/../../etc")), Path::new("/etc"));
    assert_eq!(c(Path::new("tmp")), Path::new("/tmp"));
    assert_eq!(c(Path::new("/a/./b/../c/")), Path::new("/a/c"));
    assert_eq!(c(Path::new("")), Path::new("/"));
}

#[cfg(test)]
mod root;
