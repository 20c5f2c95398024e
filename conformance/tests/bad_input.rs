//! SECURITY.md §2: every bad input fails with one error line naming the field
//! (or id), leaves nothing behind, and the same id can be created right after.
//! `Case::expect_create_fails` checks all of that.

use conformance::Case;
use serde_json::json;
use std::fs;

// B1: config.json missing, empty, invalid, trailing garbage, null.

#[test]
fn b1_config_json_missing() {
    let mut c = Case::new("b1_missing");
    c.write();
    fs::remove_file(c.bundle.config_path()).unwrap();
    let out = c.rt.create(&c.id, &c.bundle.dir, &[], &c.stdio);
    c.expect_clean_failure(&out, &["config.json"]);
}

#[test]
fn b1_config_json_empty_invalid_garbage_null() {
    for (n, raw) in [("empty", ""), ("invalid", "{\"ociVersion\": "), ("garbage", "{} trailing"), ("null", "null")] {
        let mut c = Case::new(&format!("b1_{n}"));
        c.bundle.write_raw(raw.as_bytes());
        let out = c.rt.create(&c.id, &c.bundle.dir, &[], &c.stdio);
        c.expect_clean_failure(&out, &["config", "json", "parse", "decode", "null", "EOF"]);
    }
}

// B2: ociVersion.

#[test]
fn b2_oci_version_not_semver_or_major_not_1_is_rejected() {
    for v in ["banana", "2.0.0", "0.1.0"] {
        let mut c = Case::new(&format!("b2_{}", v.replace('.', "_")));
        c.config()["ociVersion"] = v.into();
        c.expect_create_fails(&["ociVersion"]);
    }
}

#[test]
fn b2_oci_version_1_3_0_and_1_0_0_are_accepted() {
    for v in ["1.3.0", "1.0.0"] {
        let mut c = Case::new(&format!("b2_ok_{}", v.replace('.', "_")));
        c.config()["ociVersion"] = v.into();
        c.run_sh("true").expect_ok(&format!("ociVersion {v}"));
    }
}

// B3: root.

#[test]
fn b3_root_absent() {
    let mut c = Case::new("b3_root_absent");
    c.config().as_object_mut().unwrap().remove("root");
    c.expect_create_fails(&["root"]);
}

#[test]
fn b3_root_path_nonexistent() {
    let mut c = Case::new("b3_root_missing");
    c.config()["root"]["path"] = "no-such-rootfs".into();
    c.expect_create_fails(&["root", "no-such-rootfs"]);
}

#[test]
fn b3_rootfs_that_is_a_symlink_is_refused() {
    let mut c = Case::new("b3_root_symlink");
    std::os::unix::fs::symlink(c.bundle.dir.join("rootfs"), c.bundle.dir.join("rootlink")).unwrap();
    c.config()["root"]["path"] = "rootlink".into();
    c.expect_create_fails(&["root", "rootlink", "symlink"]);
}

// B4: process.

#[test]
fn b4_process_absent() {
    let mut c = Case::new("b4_process_absent");
    c.config().as_object_mut().unwrap().remove("process");
    c.expect_create_fails(&["process"]);
}

#[test]
fn b4_args_empty() {
    let mut c = Case::new("b4_args_empty");
    c.config()["process"]["args"] = json!([]);
    c.expect_create_fails(&["args"]);
}

#[test]
fn b4_cwd_relative_or_empty() {
    for (n, cwd) in [("relative", "relative/dir"), ("empty", "")] {
        let mut c = Case::new(&format!("b4_cwd_{n}"));
        c.config()["process"]["cwd"] = cwd.into();
        c.expect_create_fails(&["cwd"]);
    }
}

// B5: mount destinations.

#[test]
fn b5_mount_destination_with_nul_byte() {
    let mut c = Case::new("b5_nul");
    c.bundle.add_mount(json!({"destination": "/mnt/a\u{0}b", "type": "tmpfs", "source": "tmpfs"}));
    c.expect_create_fails(&["null", "nul", "mount", "destination"]);
}

#[test]
fn b5_mount_destination_with_dotdot_stays_inside_rootfs() {
    let mut c = Case::new("b5_dotdot");
    let canary = c.canary("canary");
    let rel = format!("/../../../../../../../../..{}", canary.display());
    c.bundle.add_mount(json!({"destination": format!("{rel}/sub"), "type": "tmpfs", "source": "tmpfs"}));
    let out = c.run_sh("true");
    // Either refused, or the mount point was created inside the rootfs.
    if out.ok() {
        assert!(c.bundle.rootfs.host_path(&format!("{}/sub", canary.display())).is_dir());
    }
    c.assert_canary_untouched(&canary);
}

#[test]
fn b5_relative_mount_destination_is_taken_from_root() {
    // Deprecated but legal (config.md): "tmp/rel" means "/tmp/rel".
    let mut c = Case::new("b5_relative_dest");
    c.bundle.add_mount(json!({"destination": "tmp/rel", "type": "tmpfs", "source": "tmpfs"}));
    let out = c.sh_ok("grep -c ' /tmp/rel tmpfs' /proc/mounts");
    assert_eq!(out.trim(), "1");
}

// B6: /proc.

#[test]
fn b6_non_procfs_mounted_on_proc() {
    let mut c = Case::new("b6_fake_proc");
    let fake = c.dir.join("fakeproc");
    fs::create_dir_all(&fake).unwrap();
    c.bundle.remove_mount("/proc");
    c.bundle.add_mount(json!({"destination": "/proc", "type": "bind", "source": fake, "options": ["rbind"]}));
    c.expect_create_fails(&["/proc", "proc"]);
}

#[test]
fn b6_bind_over_proc_self_attr_is_refused() {
    let mut c = Case::new("b6_proc_attr");
    let fake = c.dir.join("fakeattr");
    fs::create_dir_all(&fake).unwrap();
    c.bundle.add_mount(json!({"destination": "/proc/self/attr", "type": "bind", "source": fake, "options": ["rbind"]}));
    c.expect_create_fails(&["/proc", "proc"]);
}

// B8: rlimits.

#[test]
fn b8_unknown_rlimit() {
    let mut c = Case::new("b8_unknown");
    c.config()["process"]["rlimits"] = json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]);
    c.expect_create_fails(&["RLIMIT_FOO"]);
}

#[test]
fn b8_duplicate_rlimit() {
    let mut c = Case::new("b8_duplicate");
    c.config()["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
        {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}
    ]);
    // The field path (process.rlimits[1]) names it as well as the type does.
    c.expect_create_fails(&["RLIMIT_NOFILE", "rlimits[1]"]);
}

#[test]
fn b8_soft_above_hard() {
    let mut c = Case::new("b8_soft_gt_hard");
    c.config()["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 256}]);
    c.expect_create_fails(&["RLIMIT_NOFILE", "rlimit"]);
}

// B9: unknown capability → a warning, not a failure (runtime-spec config.md).

#[test]
fn b9_unknown_capability_warns_and_runs() {
    let mut c = Case::new("b9_unknown_cap");
    c.config()["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_FOO"]);
    let out = c.run_sh("echo ran");
    out.expect_ok("unknown capability must only warn");
    assert_eq!(out.stdout, "ran\n");
    assert!(out.stderr.contains("CAP_FOO"), "warning should name CAP_FOO: {out}");
}

// B11: namespaces.

#[test]
fn b11_duplicate_namespace() {
    let mut c = Case::new("b11_dup_ns");
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "pid"}));
    c.expect_create_fails(&["pid", "namespace", "duplicat"]);
}

#[test]
fn b11_unknown_namespace_type() {
    let mut c = Case::new("b11_unknown_ns");
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "foo"}));
    c.expect_create_fails(&["foo"]);
}

// B12: namespace paths.

#[test]
fn b12_namespace_path_nonexistent() {
    let mut c = Case::new("b12_ns_missing");
    c.bundle.join_namespace("network", "/proc/999999999/ns/net");
    c.expect_create_fails(&["/proc/999999999/ns/net", "network"]);
}

#[test]
fn b12_namespace_path_regular_file() {
    let mut c = Case::new("b12_ns_file");
    let f = c.dir.join("not-a-ns");
    fs::write(&f, "x").unwrap();
    c.bundle.join_namespace("ipc", f.to_str().unwrap());
    c.expect_create_fails(&["not-a-ns", "ipc", "namespace"]);
}

#[test]
fn b12_namespace_path_of_wrong_type() {
    let mut c = Case::new("b12_ns_wrong_type");
    c.bundle.join_namespace("ipc", "/proc/self/ns/net");
    c.expect_create_fails(&["ipc", "/proc/self/ns/net", "namespace"]);
}

// B13: ids.

#[test]
fn b13_invalid_ids_are_rejected() {
    for bad in ["", ".", "..", "../x", "a/b", "a b", "ünï", &"x".repeat(300)] {
        let mut c = Case::new("b13_ids");
        c.bundle.set_args(&["true"]);
        c.write();
        let out = c.rt.create(bad, &c.bundle.dir, &[], &c.stdio);
        out.expect_fail(&format!("create with id {bad:?}"));
        assert_eq!(out.stderr_lines().len(), 1, "{out}");
        let names_id = out.stderr.to_lowercase().contains("id") || (!bad.is_empty() && out.stderr.contains(bad));
        assert!(names_id, "error should be about the id or name it: {out}");
        c.assert_no_leaks(&format!("after id {bad:?}"));
        // Nothing may have been created outside the root either.
        assert!(!c.dir.join("x").exists() && !c.rt.root.join("a").exists(), "id escaped the root");
    }
}

// B14: existing id.

#[test]
fn b14_existing_id_is_refused_and_original_untouched() {
    let mut c = Case::new("b14_exists");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("first create");
    let before = c.state();
    let out = c.create();
    out.expect_fail("second create with the same id");
    assert!(out.stderr.contains(&c.id) || out.stderr.contains("exists"), "{out}");
    let after = c.state();
    assert_eq!(before["pid"], after["pid"]);
    assert_eq!(after["status"], "created");
}

// B16 and unsupported features: name the field.

#[test]
fn b16_unified_resources_on_v1_host() {
    let mut c = Case::new("b16_unified");
    c.config()["linux"]["resources"]["unified"] = json!({"memory.max": "100000000"});
    c.expect_create_fails(&["unified"]);
}

#[test]
fn b10_mappings_without_user_namespace() {
    let mut c = Case::new("b10_maps_no_userns");
    c.config()["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.expect_create_fails(&["uidMappings", "user namespace"]);
}

// B18: settings that need a namespace the config does not create.

#[test]
fn b18_hostname_without_uts_namespace() {
    let mut c = Case::new("b18_hostname");
    c.bundle.remove_namespace("uts");
    c.expect_create_fails(&["hostname", "uts"]);
}

#[test]
fn b18_net_sysctl_with_host_network() {
    let mut c = Case::new("b18_sysctl_net");
    c.bundle.remove_namespace("network");
    c.config()["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    c.expect_create_fails(&["net.ipv4.ip_forward", "sysctl"]);
}

#[test]
fn b18_non_namespaced_sysctl() {
    let mut c = Case::new("b18_sysctl_kernel");
    c.config()["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/bin/false"});
    let before = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    c.expect_create_fails(&["kernel.core_pattern", "sysctl"]);
    assert_eq!(fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), before);
}

#[test]
fn b18_masked_paths_without_mount_namespace() {
    let mut c = Case::new("b18_masked_nomnt");
    c.bundle.remove_namespace("mount");
    c.expect_create_fails(&["maskedPaths", "mount"]);
}

// B20: rootfsPropagation.

#[test]
fn b20_bogus_rootfs_propagation() {
    let mut c = Case::new("b20_bogus");
    c.config()["linux"]["rootfsPropagation"] = "bogus".into();
    c.expect_create_fails(&["rootfsPropagation", "bogus"]);
}

#[test]
fn b20_private_propagation_with_no_pivot() {
    let mut c = Case::new("b20_no_pivot");
    c.config()["linux"]["rootfsPropagation"] = "private".into();
    let out = c.create_with(&["--no-pivot"]);
    c.expect_clean_failure(&out, &["rootfsPropagation", "pivot"]);
}

// B21: devices.

#[test]
fn b21_invalid_device_type() {
    let mut c = Case::new("b21_dev_type");
    c.config()["linux"]["devices"] = json!([{"path": "/dev/weird", "type": "x", "major": 1, "minor": 3}]);
    c.expect_create_fails(&["devices", "type", "/dev/weird"]);
}

// B24: CLI.

#[test]
fn b24_create_with_unknown_flag_leaves_nothing() {
    let mut c = Case::new("b24_flag");
    c.write();
    let out = c.rt.cmd().args(["create", "--no-such-flag", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).run();
    c.expect_clean_failure(&out, &["no-such-flag", "flag"]);
}

#[test]
fn b24_preserve_fds_huge_is_refused_or_harmless() {
    let mut c = Case::new("b24_preserve_huge");
    c.bundle.set_sh("ls /proc/1/fd | wc -l");
    c.write();
    let out = c.rt.cmd().args(["run", "--preserve-fds", "1000000", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).run();
    // Either a clean error, or the container runs with just what exists.
    if out.ok() {
        assert!(out.stdout.trim().parse::<u32>().unwrap_or(9999) < 64, "{out}");
    } else {
        assert_eq!(out.stderr_lines().len(), 1, "{out}");
        c.assert_no_leaks("after a refused --preserve-fds");
    }
}

#[test]
fn b24_bundle_that_does_not_exist() {
    let mut c = Case::new("b24_no_bundle");
    let out = c.rt.create(&c.id, &c.dir.join("nope"), &[], &c.stdio);
    c.expect_clean_failure(&out, &["nope", "bundle", "config.json"]);
}

#[test]
fn b13_an_id_that_is_not_utf8_is_refused_cleanly_by_every_command() {
    // Issue 16 item 5: berth once panicked reading its arguments (exit 134). runc refuses
    // such an id too ("invalid container ID format"); berth's error shows its bytes.
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut c = Case::new("b13_bytes");
    c.bundle.set_args(&["true"]);
    c.write();
    let id = OsStr::from_bytes(b"t-\xff-id");
    let runc = c.rt.bin.ends_with("runc");
    let commands: [&[&str]; 6] =
        [&["create", "--bundle", "BUNDLE"], &["state"], &["start"], &["kill"], &["delete", "--force"], &["exec"]];
    for args in commands {
        let mut inv = c.rt.cmd();
        for a in args {
            inv = if *a == "BUNDLE" { inv.arg(&c.bundle.dir) } else { inv.arg(*a) };
        }
        inv = inv.arg(id);
        if args[0] == "exec" {
            inv = inv.arg("true");
        }
        let out = inv.run();
        out.expect_fail(&format!("{} with an id that is not UTF-8", args[0]));
        assert_eq!(out.stderr_lines().len(), 1, "{out}");
        let line = out.stderr.to_lowercase();
        assert!(line.contains("invalid") && line.contains("id"), "{out}");
        if !runc {
            assert!(out.stderr.contains(r"t-\xff-id"), "the error should show the id's bytes: {out}");
        }
    }
    c.assert_no_leaks("after the refused ids");
    let left: Vec<_> =
        fs::read_dir(&c.rt.root).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "the state root holds {left:?}");
}
