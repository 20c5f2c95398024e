//! AppArmor profiles and SELinux labels (process.apparmorProfile, process.selinuxLabel,
//! linux.mountLabel, exec's --apparmor and --process-label).
//!
//! On a host without the module (this one: no AppArmor, no SELinux) a config asking for
//! it fails, as with runc: runc 1.1.5's init fails writing "exec <profile>" to
//! /proc/self/attr/exec (EINVAL), its validator refuses a process label ("selinux label
//! is specified in config, but selinux is disabled or not supported"), and the tmpfs
//! refuses the `context=` mount data runc adds for a mount label (EINVAL). berth refuses
//! all three before creating anything, naming the field.
//!
//! The applied paths need the module: they are in lsm_applied.rs, built only with the
//! `lsm-host` feature, for a host where it is enabled (the Debian 13 guest boots with
//! AppArmor, and with SELinux permissive).

use conformance::{Case, Out};
use serde_json::json;
use std::fs;
use std::path::Path;

fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|b| b.first() == Some(&b'Y'))
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Checks the failed create of a config asking for what the host lacks: a clean failure
/// naming `field` for berth, a failure for the others.
fn create_fails(c: &mut Case, rt: &str, field: &str) {
    let out = c.create();
    if rt == "berth" {
        c.expect_clean_failure(&out, &[field]);
    } else {
        out.expect_fail(rt);
    }
}

#[test]
fn apparmor_profile_where_apparmor_is_off_fails_create() {
    assert!(!apparmor_enabled(), "a test for a host without AppArmor (lsm_applied.rs covers it enabled)");
    conformance::each_runtime("lsm_aa_off", |c, rt| {
        c.config()["process"]["apparmorProfile"] = "unconfined".into();
        c.bundle.set_args(&["true"]);
        create_fails(c, rt, "process.apparmorProfile");
    });
}

#[test]
fn selinux_label_where_selinux_is_off_fails_create() {
    assert!(!selinux_enabled(), "a test for a host without SELinux (lsm_applied.rs covers it enabled)");
    conformance::each_runtime("lsm_se_off", |c, rt| {
        c.config()["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2".into();
        c.bundle.set_args(&["true"]);
        create_fails(c, rt, "process.selinuxLabel");
    });
}

#[test]
fn mount_label_where_selinux_is_off_fails_create() {
    assert!(!selinux_enabled(), "a test for a host without SELinux (lsm_applied.rs covers it enabled)");
    conformance::each_runtime("lsm_ml_off", |c, rt| {
        c.config()["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2".into();
        c.bundle.set_args(&["true"]);
        if rt == "crun" {
            // crun 1.28 (the forky guest's, SELinux off) leaves the mount label out where
            // SELinux is off: the create succeeds, the mounts carry no `context=`.
            c.create().expect_ok("crun: a mount label where SELinux is off");
            c.rt.delete_force(&c.id).expect_ok("crun: delete --force");
            return;
        }
        create_fails(c, rt, "linux.mountLabel");
    });
}

/// Empty strings ask for nothing (runc: the same), whatever the host has.
#[test]
fn empty_profile_and_labels_ask_for_nothing() {
    conformance::each_runtime("lsm_empty", |c, rt| {
        c.config()["process"]["apparmorProfile"] = "".into();
        c.config()["process"]["selinuxLabel"] = "".into();
        c.config()["linux"]["mountLabel"] = "".into();
        let out = c.run_sh("echo ran");
        if rt == "crun" && !selinux_enabled() {
            // crun 1.28 takes an empty selinuxLabel as a label to set: where SELinux is off
            // (the forky guest) its init fails writing it ("write to
            // `/proc/self/attr/keycreate`: Invalid argument").
            out.expect_fail("crun: an empty selinuxLabel where SELinux is off");
            assert!(out.stderr.contains("keycreate"), "crun: {out}");
            return;
        }
        out.expect_ok(rt);
        assert_eq!(out.stdout, "ran\n", "{rt}: {out}");
    });
}

fn exec(c: &Case, args: &[&str]) -> Out {
    c.rt.cmd().arg("exec").args(args.iter().copied()).run()
}

#[test]
fn exec_apparmor_and_process_label_where_the_module_is_off_fail() {
    conformance::each_runtime("lsm_exec_off", |c, rt| {
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        let id = c.id.clone();
        let cases = [
            (!apparmor_enabled(), "--apparmor", "unconfined", "process.apparmorProfile"),
            (!selinux_enabled(), "--process-label", "system_u:system_r:container_t:s0", "process.selinuxLabel"),
        ];
        for (off, flag, value, field) in cases {
            assert!(off, "a test for a host without AppArmor and SELinux: {flag}'s module is enabled here");
            let out = exec(c, &[flag, value, &id, "true"]);
            out.expect_fail(&format!("{rt} exec {flag}"));
            if rt == "berth" {
                assert!(out.stderr.contains(field), "berth exec {flag}: the error should name {field}\n{out}");
            }
        }
        // The container is unharmed.
        let out = exec(c, &[&id, "echo", "alive"]);
        out.expect_ok(rt);
        assert_eq!(out.stdout, "alive\n", "{rt}: {out}");
    });
}

#[test]
fn features_report_apparmor_and_selinux_as_runc_does() {
    let mut seen = Vec::new();
    conformance::each_runtime("lsm_features", |c, rt| {
        let out = c.rt.cmd().arg("features").run();
        out.expect_ok(rt);
        let v = out.json();
        seen.push((rt.to_string(), v["linux"]["apparmor"].clone(), v["linux"]["selinux"].clone()));
    });
    for (rt, aa, se) in &seen {
        assert_eq!(aa, &json!({"enabled": true}), "{rt}: linux.apparmor");
        assert_eq!(se, &json!({"enabled": true}), "{rt}: linux.selinux");
    }
}
