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
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/proc","type":"tmpfs","source":"tmpfs"}]"#));
    assert!(e.contains("not of type proc"), "{e}");
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/proc/self/attr","type":"tmpfs","source":"t"}]"#));
    assert!(e.contains("inside /proc"), "{e}");
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/x/../proc/sys","type":"tmpfs","source":"t"}]"#));
    assert!(e.contains("inside /proc"), "{e}");
    let e = validate_err(&spec_with_mounts(r#"[{"destination":"/proc/sys","type":"proc","source":"proc"}]"#));
    assert!(e.contains("inside /proc"), "{e}");
}

#[test]
fn rootfs_validate_allows_lxcfs_files_and_defers_proc_binds() {
    let s = spec_with_mounts(
        r#"[{"destination":"/proc","source":"/proc","options":["rbind"]},
            {"destination":"/proc/meminfo","source":"/var/lib/lxcfs/proc/meminfo","options":["bind"]},
            {"destination":"/proc/sys/kernel/ns_last_pid","source":"/x","options":["bind"]}]"#,
    );
    assert!(validate(&s, Path::new("/b")).is_ok());
}

#[test]
fn rootfs_validate_rejects_idmap_on_tmpfs_and_half_maps() {
    let e = validate_err(&spec_with_mounts(
        r#"[{"destination":"/x","type":"tmpfs","source":"tmpfs","options":["idmap"]}]"#,
    ));
    assert!(e.contains("mounts[0].options: idmap needs a bind mount"), "{e}");
    let e = validate_err(&spec_with_mounts(
        r#"[{"destination":"/x","source":"/y","options":["bind","idmap"],"uidMappings":[{"containerID":0,"hostID":1,"size":1}]}]"#,
    ));
    assert!(e.contains("both uidMappings and gidMappings"), "{e}");
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
        let e = validate_err(&spec_with_linux(&format!(
            r#"{{"devices":[{{"path":"{p}","type":"c","major":1,"minor":3}}]}}"#
        )));
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

/// walk_in_root must land on the same inode as the kernel's RESOLVE_IN_ROOT
/// for every path over a tree of absolute, relative, `..`-heavy and looping
/// links (the differential check of SECURITY.md §4 item 3, on a fixed tree).
#[test]
fn rootfs_walk_in_root_agrees_with_openat2_in_root() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use nix::fcntl::OFlag;
    use nix::sys::stat::{fstat, Mode};

    use super::resolve::{open_dir, open_in_root, walk_in_root, Walked};

    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    std::fs::create_dir_all(r.join("a/b/c")).expect("dirs");
    std::fs::create_dir_all(r.join("etc")).expect("etc");
    std::fs::write(r.join("a/b/c/file"), "x").expect("file");
    std::fs::write(r.join("etc/passwd"), "inner").expect("passwd");
    symlink("/a/b", r.join("abs")).expect("abs");
    symlink("../../../../../../..", r.join("a/up")).expect("up");
    symlink("b/c/../c/./", r.join("a/rel")).expect("rel");
    symlink("loop2", r.join("loop1")).expect("loop1");
    symlink("loop1", r.join("loop2")).expect("loop2");
    symlink("/", r.join("a/b/toroot")).expect("toroot");
    symlink("../../etc/passwd", r.join("a/b/pw")).expect("pw");
    symlink("/etc/passwd", r.join("a/b/c/abspw")).expect("abspw");
    symlink("/a/up/a/rel/file", r.join("chain")).expect("chain");
    // Targets that name a directory ("/" or "/." at the end): ENOTDIR on a file, as the
    // kernel says (found by fuzz-ci: "f/." was taken as "f").
    symlink("file/.", r.join("a/b/c/filedot")).expect("filedot");
    symlink("file/", r.join("a/b/c/fileslash")).expect("fileslash");
    symlink("c/.", r.join("a/b/cdot")).expect("cdot");

    let root = open_dir(r).expect("root");
    let id = |fd: &std::os::fd::OwnedFd| fstat(fd).map(|s| (s.st_dev, s.st_ino)).expect("fstat");
    let paths = [
        "/",
        "a",
        "/a/b/c/file",
        "abs/c/file",
        "a/up",
        "a/up/etc/passwd",
        "/a/rel/file",
        "../../a/b",
        "a/b/toroot/a/b/c",
        "a/b/pw",
        "a/b/c/abspw",
        "chain",
        "a/b/c/../../../etc/passwd",
        "/a/up/../../abs",
        "loop1",
        "missing",
        "a/missing",
        "a/b/c/file/x",
        "abs/../../../etc",
        "a/b/c/filedot",
        "a/b/c/fileslash",
        "/a/b/c/filedot/x",
        "a/b/cdot",
        "a/b/cdot/file",
    ];
    for p in paths {
        let want = open_in_root(root.as_fd(), Path::new(p), OFlag::O_PATH, Mode::empty()).map(|f| id(&f));
        let got = walk_in_root(root.as_fd(), Path::new(p), None).map(|w| match w {
            Walked::Found { fd, .. } | Walked::Dir(fd) => Some(id(&fd)),
            Walked::Missing { .. } => None,
        });
        match (want, got) {
            (Ok(w), Ok(Some(g))) => assert_eq!(w, g, "{p}"),
            (Err(nix::errno::Errno::ENOENT), Ok(None) | Err(nix::errno::Errno::ENOENT)) => {}
            (Err(w), Err(g)) => assert_eq!(w, g, "{p}"),
            (w, g) => panic!("{p}: openat2 {w:?} vs walk {:?}", g.map(|x| x.is_some())),
        }
    }
}

#[cfg(test)]
mod root;

/// Randomised form of the differential check: random trees of dirs, files
/// and links (absolute, relative, `..`, loops, dangling), random paths; the
/// fd walker and RESOLVE_IN_ROOT must agree on every one.
#[test]
fn rootfs_walk_in_root_agrees_with_openat2_on_random_trees() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use nix::errno::Errno;
    use nix::fcntl::OFlag;
    use nix::sys::stat::{fstat, Mode};

    use super::resolve::{open_dir, open_in_root, walk_in_root, Walked};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
            v[(self.next() % v.len() as u64) as usize]
        }
    }
    const NAMES: &[&str] = &["a", "b", "c", "d", "e"];
    const PARTS: &[&str] = &["a", "b", "c", "d", "e", "..", ".", "x"];

    let mut agreed_found = 0;
    let mut agreed_err = 0;
    for seed in [0x9e3779b97f4a7c15u64, 0xdeadbeefcafef00d, 0x1234567, 42, 7777777] {
        let mut rng = Rng(seed);
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path().to_path_buf();
        let rel = |rng: &mut Rng, n: u64| -> String {
            let k = 1 + rng.next() % n;
            (0..k).map(|_| rng.pick(PARTS)).collect::<Vec<_>>().join("/")
        };
        // Build: a few levels of entries, each a dir, file or link.
        let mut dirs = vec![r.clone()];
        for _ in 0..60 {
            let parent = dirs[(rng.next() % dirs.len() as u64) as usize].clone();
            let p = parent.join(rng.pick(NAMES));
            if p.symlink_metadata().is_ok() {
                continue;
            }
            match rng.next() % 4 {
                0 | 1 => {
                    std::fs::create_dir(&p).expect("mkdir");
                    dirs.push(p);
                }
                2 => std::fs::write(&p, "f").expect("file"),
                _ => {
                    let t = rel(&mut rng, 4);
                    let t = if rng.next().is_multiple_of(2) { format!("/{t}") } else { t };
                    symlink(t, &p).expect("symlink");
                }
            }
        }
        let root = open_dir(&r).expect("root");
        let id = |fd: &std::os::fd::OwnedFd| fstat(fd).map(|s| (s.st_dev, s.st_ino)).expect("fstat");
        for _ in 0..400 {
            let p = rel(&mut rng, 6);
            let p = if rng.next().is_multiple_of(2) { format!("/{p}") } else { p };
            let path = Path::new(&p);
            let want = open_in_root(root.as_fd(), path, OFlag::O_PATH, Mode::empty()).map(|f| id(&f));
            let got = walk_in_root(root.as_fd(), path, None).map(|w| match w {
                Walked::Found { fd, .. } | Walked::Dir(fd) => Some(id(&fd)),
                Walked::Missing { .. } => None,
            });
            match (want, got) {
                (Ok(w), Ok(Some(g))) => {
                    assert_eq!(w, g, "seed {seed:#x} path {p}");
                    agreed_found += 1;
                }
                (Err(Errno::ENOENT), Ok(None) | Err(Errno::ENOENT)) => agreed_err += 1,
                (Err(w), Err(g)) => {
                    assert_eq!(w, g, "seed {seed:#x} path {p}");
                    agreed_err += 1;
                }
                (w, g) => panic!("seed {seed:#x} path {p}: openat2 {w:?} vs walk {:?}", g.map(|x| x.is_some())),
            }
        }
    }
    // The trees must exercise both outcomes for the comparison to mean anything.
    assert!(agreed_found > 200 && agreed_err > 200, "found {agreed_found}, errors {agreed_err}");
}
