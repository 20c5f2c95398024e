//! config.json `mounts`, `root.readonly`, `rootfsPropagation`, `--no-pivot`.

use conformance::Case;
use conformance::{each_runtime, each_runtime_but};
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;

/// The /proc/mounts line for a mount point inside the container.
fn mount_line<'a>(mounts: &'a str, dest: &str) -> &'a str {
    mounts
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("{dest} not mounted:\n{mounts}"))
}

fn opts(line: &str) -> Vec<&str> {
    line.split(' ').nth(3).unwrap_or("").split(',').collect()
}

#[test]
fn bind_mount_rw_is_shared_with_host() {
    let mut c = Case::new("mnt_bind_rw");
    let src = c.dir.join("vol");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("in"), "from-host\n").unwrap();
    c.bundle.add_mount(json!({"destination": "/vol", "type": "bind", "source": src, "options": ["rbind", "rw"]}));
    let out = c.sh_ok("cat /vol/in; echo from-ctr > /vol/out");
    assert_eq!(out, "from-host\n");
    assert_eq!(fs::read_to_string(src.join("out")).unwrap(), "from-ctr\n");
}

#[test]
fn bind_mount_ro_nosuid_nodev_noexec_flags_apply() {
    let mut c = Case::new("mnt_bind_flags");
    let src = c.dir.join("vol");
    fs::create_dir_all(&src).unwrap();
    c.bundle.add_mount(json!({"destination": "/vol", "type": "bind", "source": src, "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
    let out = c.sh_ok("cat /proc/mounts; touch /vol/x 2>&1 && echo WROTE || echo ROFS");
    let line = mount_line(&out, "/vol");
    let o = opts(line);
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(o.contains(&f), "{f} missing on /vol: {line}");
    }
    assert!(out.trim_end().ends_with("ROFS"), "{out}");
    assert!(!src.join("x").exists());
}

/// A bind whose options name a flag carries the flags named and no other: the source's
/// nosuid, nodev and noexec are not inherited by a `ro` bind (runc remounts it with exactly
/// the flags given). One that names none keeps the source's flags. crun 1.28 keeps the
/// source's flags the options do not name (`ro,nosuid,nodev,noexec`): not compared.
#[test]
fn bind_naming_a_flag_carries_only_the_flags_named() {
    each_runtime_but(&["crun"], "mnt_bind_named", |c, rt| {
        let src = c.dir.join("vol");
        c.host_mount(&src, &["-o remount,bind,nosuid,nodev,noexec"]);
        c.bundle.add_mount(json!({"destination": "/named", "type": "bind", "source": src, "options": ["bind", "ro"]}));
        c.bundle.add_mount(
            json!({"destination": "/unnamed", "type": "bind", "source": src, "options": ["rbind", "rprivate"]}),
        );
        let out = c.sh_ok("cat /proc/mounts");
        let named = opts(mount_line(&out, "/named"));
        assert!(named.contains(&"ro"), "{rt}: /named: {named:?}");
        for f in ["nosuid", "nodev", "noexec"] {
            assert!(!named.contains(&f), "{rt}: /named inherited {f} from its source: {named:?}");
        }
        let unnamed = opts(mount_line(&out, "/unnamed"));
        for f in ["rw", "nosuid", "nodev", "noexec"] {
            assert!(unnamed.contains(&f), "{rt}: /unnamed lost the source's {f}: {unnamed:?}");
        }
    });
}

/// An option that only clears a flag (`dev`) is a flag named too: the bind of a read-only,
/// noexec source comes out read-write and exec, except the atime setting, which a bind
/// keeps unless an option sets one (runc 1.2 and later; 1.1 kept every source flag).
#[test]
fn bind_naming_only_a_clearing_flag_clears_the_source_flags_but_atime() {
    each_runtime_but(&["runc<1.3"], "mnt_bind_clearing", |c, rt| {
        let src = c.dir.join("vol");
        c.host_mount(&src, &["-o remount,bind,ro,noexec,noatime"]);
        c.bundle.add_mount(json!({"destination": "/vol", "type": "bind", "source": src, "options": ["bind", "dev"]}));
        let out = c.sh_ok("cat /proc/mounts; touch /vol/x && echo WROTE");
        let o = opts(mount_line(&out, "/vol"));
        assert!(o.contains(&"rw") && !o.contains(&"noexec"), "{rt}: /vol: {o:?}");
        assert!(o.contains(&"noatime"), "{rt}: /vol did not keep the source's noatime: {o:?}");
        assert!(out.trim_end().ends_with("WROTE"), "{rt}: {out}");
    });
}

#[test]
fn bind_mount_of_a_file() {
    let mut c = Case::new("mnt_bind_file");
    let src = c.dir.join("hostfile");
    fs::write(&src, "file-content\n").unwrap();
    c.bundle.add_mount(
        json!({"destination": "/etc/mounted-file", "type": "bind", "source": src, "options": ["bind", "ro"]}),
    );
    assert_eq!(c.sh_ok("cat /etc/mounted-file"), "file-content\n");
}

#[test]
fn tmpfs_over_a_bind_mount_stays_in_the_container() {
    let mut c = Case::new("mnt_rbind");
    // The sub-mount lives only in the container: a tmpfs on /a/sub, then /a
    // re-bound at /r (rbind) and /b (bind).
    let src = c.dir.join("a");
    fs::create_dir_all(src.join("sub")).unwrap();
    c.bundle.add_mount(json!({"destination": "/a", "type": "bind", "source": src, "options": ["rbind"]}));
    c.bundle.add_mount(json!({"destination": "/a/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    c.config()["root"]["readonly"] = false.into();
    let out = c.sh_ok("echo x > /a/sub/marker; cat /proc/mounts | cut -d' ' -f2,3");
    assert!(out.lines().any(|l| l == "/a/sub tmpfs"), "{out}");
    assert!(!src.join("sub/marker").exists(), "tmpfs write reached the host dir");
}

#[test]
fn tmpfs_mount_with_size_and_mode() {
    let mut c = Case::new("mnt_tmpfs");
    c.bundle.add_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=2m"]}));
    let out = c.sh_ok("stat -c %a /scratch; cat /proc/mounts; echo hi > /scratch/f && cat /scratch/f");
    assert_eq!(out.lines().next().unwrap(), "1777");
    let line = mount_line(&out, "/scratch");
    assert!(line.starts_with("tmpfs /scratch tmpfs"), "{line}");
    assert!(opts(line).contains(&"size=2048k"), "{line}");
    assert!(out.ends_with("hi\n"));
}

#[test]
fn proc_sysfs_devpts_mqueue_cgroup_are_mounted_with_types() {
    let mut c = Case::new("mnt_types");
    let out = c.sh_ok("cat /proc/mounts");
    for (dest, ty) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/mqueue", "mqueue"),
        ("/dev/shm", "tmpfs"),
    ] {
        let line = mount_line(&out, dest);
        assert_eq!(line.split(' ').nth(2), Some(ty), "{line}");
    }
    assert!(opts(mount_line(&out, "/sys")).contains(&"ro"), "sysfs must be ro");
    assert!(
        out.lines().any(|l| l.split(' ').nth(1).map(|d| d.starts_with("/sys/fs/cgroup")).unwrap_or(false)),
        "no cgroup mount:\n{out}"
    );
}

#[test]
fn mount_destination_is_created_inside_rootfs() {
    let mut c = Case::new("mnt_mkdir");
    c.bundle.add_mount(json!({"destination": "/deep/new/dir", "type": "tmpfs", "source": "tmpfs"}));
    let out = c.sh_ok("grep -c ' /deep/new/dir tmpfs' /proc/mounts");
    assert_eq!(out.trim(), "1");
    assert!(c.bundle.rootfs.host_path("/deep/new/dir").is_dir(), "mountpoint created in the rootfs");
}

#[test]
fn root_readonly_makes_rootfs_read_only() {
    let mut c = Case::new("mnt_root_ro");
    let out = c.sh_ok("grep ' / ' /proc/mounts | tail -1; touch /newfile 2>&1 || echo ROFS");
    assert!(opts(out.lines().next().unwrap()).contains(&"ro"), "{out}");
    assert!(out.contains("ROFS"));
    assert!(!c.bundle.rootfs.host_path("/newfile").exists());
    c.config()["root"]["readonly"] = false.into();
    c.sh_ok("touch /newfile");
    assert!(c.bundle.rootfs.host_path("/newfile").exists(), "rw rootfs write must land in the bundle");
}

#[test]
fn root_path_relative_resolves_against_bundle_not_cwd() {
    let c = Case::new("mnt_root_relative");
    // Run from a directory that has no rootfs: the runtime must use --bundle.
    c.write();
    let out = c.rt.cmd().args(["run", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).cwd(std::path::Path::new("/")).run();
    assert!(out.ok() || out.code != 0 && !out.stderr.contains("rootfs"), "{out}");
    out.expect_ok("run from / with a relative root.path");
}

#[test]
fn rootfs_propagation_is_applied() {
    // "slave": runc makes the rootfs parent private before pivot_root, so no
    // master: tag survives; what matters is that nothing propagates back to
    // the host (the leak check) and that it is not shared.
    for (prop, tag) in [("slave", ""), ("private", ""), ("shared", "shared:")] {
        let mut c = Case::new(&format!("mnt_rootprop_{prop}"));
        // This host's / is private, and a slave of a private mount is just
        // private: give the bundle a shared mount of its own to be a slave of.
        let bundle = c.bundle.dir.clone();
        c.host_mount(&bundle, &["--make-shared"]);
        c.config()["linux"]["rootfsPropagation"] = prop.into();
        let out = c.sh_ok("cat /proc/self/mountinfo");
        let root = out.lines().find(|l| l.split(' ').nth(4) == Some("/")).expect("root in mountinfo");
        let optional: Vec<&str> = root.split(" - ").next().unwrap().split(' ').skip(6).collect();
        if tag.is_empty() {
            assert!(optional.iter().all(|o| !o.starts_with("shared:") && !o.starts_with("master:")), "{prop}: {root}");
        } else {
            assert!(optional.iter().any(|o| o.starts_with(tag)), "{prop}: {root}");
        }
    }
}

#[test]
fn bind_mount_propagation_option_is_applied() {
    let mut c = Case::new("mnt_bind_prop");
    let src = c.dir.join("vol");
    fs::create_dir_all(&src).unwrap();
    c.bundle.add_mount(json!({"destination": "/vol", "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    c.bundle.add_mount(json!({"destination": "/vol2", "type": "bind", "source": src, "options": ["rbind", "rslave"]}));
    let out = c.sh_ok("cat /proc/self/mountinfo");
    let line = |d: &str| {
        out.lines().find(|l| l.split(' ').nth(4) == Some(d)).unwrap_or_else(|| panic!("{d} missing")).to_string()
    };
    assert!(!line("/vol").contains("shared:") && !line("/vol").contains("master:"), "{}", line("/vol"));
    assert!(!line("/vol2").contains("shared:"), "{}", line("/vol2"));
}

#[test]
fn no_pivot_still_confines_to_rootfs() {
    let mut c = Case::new("mnt_no_pivot");
    c.bundle.set_sh("ls /; cat /etc/passwd | head -1");
    c.write();
    let out = c.rt.cmd().args(["run", "--no-pivot", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).run();
    out.expect_ok("run --no-pivot");
    assert!(out.stdout.contains("busybox") || out.stdout.contains("bin"), "{out}");
    assert!(out.stdout.contains("root:x:0:0:root:/root:/bin/sh"), "{out}");
    assert!(!out.stdout.contains("vmlinuz") && !out.stdout.contains("boot\n"), "host / visible: {out}");
}

#[test]
fn masked_paths_read_empty() {
    let mut c = Case::new("mnt_masked");
    // /proc/kcore does not exist on this kernel; /proc/keys and timer_list do.
    let out = c.sh_ok("wc -c < /proc/keys; ls /sys/firmware | wc -l; stat -c '%t:%T' /proc/timer_list");
    assert_eq!(out.lines().map(str::trim).collect::<Vec<_>>(), vec!["0", "0", "1:3"]);
}

// runc 1.3's mask.bats "directories share tmpfs": the masked directories are one empty
// read-only tmpfs.
#[test]
fn masked_directories_share_one_read_only_tmpfs() {
    let mut c = Case::new("mnt_masked_dirs");
    for d in ["testdir", "testdir2", "testdir3"] {
        fs::create_dir_all(c.bundle.rootfs.path.join(d)).unwrap();
    }
    let masked = c.config()["linux"]["maskedPaths"].as_array_mut().expect("the default spec's maskedPaths");
    masked.extend([json!("/testdir"), json!("/testdir2"), json!("/testdir3")]);
    let out =
        c.sh_ok("stat -c %d /testdir /testdir2 /testdir3; ls -A /testdir2 | wc -l; touch /testdir2/f 2>&1 || echo RO");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0] == lines[1] && lines[1] == lines[2], "one filesystem: {out}");
    assert_eq!(lines[3].trim(), "0", "empty: {out}");
    assert!(out.contains("Read-only file system") && out.trim_end().ends_with("RO"), "{out}");
}

#[test]
fn readonly_paths_are_read_only() {
    let mut c = Case::new("mnt_readonly_paths");
    let out = c.sh_ok("cat /proc/mounts; echo 1 > /proc/sys/kernel/domainname 2>&1 || echo RO");
    assert!(opts(mount_line(&out, "/proc/sys")).contains(&"ro"), "{out}");
    assert!(out.trim_end().ends_with("RO"), "{out}");
}

#[test]
fn sysctl_is_applied_in_container_only() {
    let mut c = Case::new("mnt_sysctl");
    let host = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    c.config()["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"});
    let out = c.sh_ok("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax");
    assert_eq!(out, "1\n12345\n");
    assert_eq!(fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host, "host sysctl changed");
}

fn add_capability(c: &mut Case, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        c.config()["process"]["capabilities"][set].as_array_mut().unwrap().push(cap.into());
    }
}

/// Kubernetes' Bidirectional propagation (what CSI node plugins rely on): a mount the
/// container makes inside an `rshared` volume appears on the host. containerd's CRI
/// plugin sets `rootfsPropagation: rshared` along with the volume's `rshared`.
#[test]
fn rshared_bind_mount_propagates_back_to_the_host() {
    each_runtime("mnt_bidi", |c, rt| {
        let vol = c.dir.join("vol");
        c.host_mount(&vol, &["--make-private", "--make-shared"]);
        let sub = vol.join("sub");
        fs::create_dir(&sub).unwrap();
        c.bundle
            .add_mount(json!({"destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "rshared"]}));
        c.config()["linux"]["rootfsPropagation"] = "rshared".into();
        add_capability(c, "CAP_SYS_ADMIN");
        c.sh_ok("mount -t tmpfs -o size=1m tmpfs /vol/sub && echo from-ctr > /vol/sub/f");
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let on_host = mountinfo.lines().any(|l| l.split(' ').nth(4) == sub.to_str() && l.contains(" - tmpfs "));
        assert!(on_host, "{rt}: the container's tmpfs on /vol/sub did not reach the host");
        assert_eq!(fs::read_to_string(sub.join("f")).unwrap(), "from-ctr\n", "{rt}");
    });
}

/// The optional fields of `/` in a mountinfo text.
fn root_optional_fields(mountinfo: &str) -> Vec<String> {
    let root = mountinfo.lines().find(|l| l.split(' ').nth(4) == Some("/")).expect("/ in mountinfo");
    root.split(" - ").next().unwrap().split(' ').skip(6).map(str::to_string).collect()
}

/// `rootfsPropagation: unbindable` (and `runbindable`) leave the container's root
/// unbindable. runc 1.1 makes the host's `/` unbindable before binding the rootfs onto
/// itself, which the kernel refuses (EINVAL): it is expected to fail.
#[test]
fn rootfs_propagation_unbindable_is_applied() {
    for prop in ["unbindable", "runbindable"] {
        each_runtime(&format!("mnt_rootprop_{prop}"), |c, rt| {
            c.config()["linux"]["rootfsPropagation"] = prop.into();
            let out = c.run_sh("cat /proc/self/mountinfo");
            // runc 1.1 fails both. runc 1.3 and crun 1.28 apply `unbindable` as berth does,
            // and fail `runbindable`: their binds for readonlyPaths and maskedPaths below a
            // recursively unbindable root get EINVAL (runc: "can't make \"/proc/bus\"
            // read-only", crun: "mount `/dev/null` to `proc/kcore`: Invalid argument").
            if rt != "berth" && (prop == "runbindable" || (rt == "runc" && !conformance::oracle::is_runc_1_3(rt))) {
                assert!(!out.ok(), "runc was expected to fail {prop}: {out}");
                return;
            }
            out.expect_ok(&format!("{rt}: rootfsPropagation {prop}"));
            let fields = root_optional_fields(&out.stdout);
            assert!(fields.iter().any(|f| f == "unbindable"), "{rt} {prop}: / has {fields:?}");
        });
    }
}

/// A tmpfs without `mode=` takes the mode of the directory it covers (a new directory
/// gets tmpfs's default 1777), as with runc. crun 1.8 leaves every tmpfs at 1777.
#[test]
fn tmpfs_without_mode_takes_the_mode_of_its_directory() {
    conformance::each_runtime_but(&["crun"], "mnt_tmpfs_dirmode", |c, rt| {
        for (dest, mode) in [("/m755", 0o755), ("/m700", 0o700), ("/m1770", 0o1770)] {
            tmpfs_on_dir(c, dest, mode, &[]);
        }
        c.bundle.add_mount(
            json!({"destination": "/made-by-runtime", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        );
        let out = c.sh_ok("stat -c %a /m755 /m700 /m1770 /made-by-runtime");
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["755", "700", "1770", "1777"], "{rt}");
    });
}

/// A `mode=` option wins over the directory's mode. runc 1.1.5 chmods the tmpfs to the
/// directory's mode after mounting it, so the option is lost; runc 1.1.15 and 1.3 pass
/// the directory's mode first in the options, as berth does.
#[test]
fn tmpfs_mode_option_wins_over_the_directory_mode() {
    // Compared with runc from 1.3 (the forky guest's; 1.1.15 has the fix too).
    conformance::each_runtime_but(&["runc<1.3"], "mnt_tmpfs_optmode", |c, rt| {
        tmpfs_on_dir(c, "/m700", 0o700, &["mode=750"]);
        assert_eq!(c.sh_ok("stat -c %a /m700"), "750\n", "{rt}");
    });
}

/// A tmpfs mount on a directory of the rootfs made with `mode`.
fn tmpfs_on_dir(c: &mut Case, dest: &str, mode: u32, extra: &[&str]) {
    let host = c.bundle.rootfs.host_path(dest);
    fs::create_dir_all(&host).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
    let mut options = vec!["size=1m"];
    options.extend(extra);
    c.bundle.add_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}));
}
