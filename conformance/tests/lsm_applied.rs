//! AppArmor profiles and SELinux labels applied (process.apparmorProfile,
//! process.selinuxLabel, linux.mountLabel, exec's --apparmor), compared with runc. They
//! need a host where the module is enabled, which CI's is not: this file is built only
//! with the `lsm-host` feature, e.g. in the Debian 13 guest (AppArmor on; SELinux
//! permissive on its second boot):
//!
//! ```sh
//! cargo test -p conformance --features lsm-host --test lsm_applied
//! ```
//!
//! The refusals where the module is off are in lsm.rs.

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

fn exec(c: &Case, args: &[&str]) -> Out {
    c.rt.cmd().arg("exec").args(args.iter().copied()).run()
}

/// A profile that allows everything, loaded for the test; a container entering it shows
/// its name in /proc/self/attr/current.
const TEST_PROFILE: &str = "berth-conformance-test";

fn load_test_profile(c: &Case) {
    let text = format!(
        "abi <abi/3.0>,\nprofile {TEST_PROFILE} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  \
         capability,\n  network,\n  mount,\n  umount,\n  pivot_root,\n  signal,\n  ptrace,\n  unix,\n  dbus,\n}}\n"
    );
    let path = c.dir.join("profile");
    fs::write(&path, text).unwrap();
    let out = conformance::runtime::Invocation::new(Path::new("apparmor_parser"))
        .args(["-r", "-W", path.to_str().unwrap()])
        .run();
    out.expect_ok("apparmor_parser -r");
}

#[test]
fn apparmor_profile_is_entered_at_execve() {
    assert!(apparmor_enabled(), "AppArmor is not enabled on this host");
    conformance::each_runtime("lsm_aa_on", |c, rt| {
        load_test_profile(c);
        c.config()["process"]["apparmorProfile"] = TEST_PROFILE.into();
        let out = c.run_sh("cat /proc/self/attr/current");
        out.expect_ok(rt);
        assert_eq!(out.stdout.trim_end_matches(['\n', '\0']), format!("{TEST_PROFILE} (enforce)"), "{rt}: {out}");
    });
}

#[test]
fn exec_apparmor_enters_the_profile_and_defaults_to_the_containers() {
    assert!(apparmor_enabled(), "AppArmor is not enabled on this host");
    conformance::each_runtime("lsm_aa_exec", |c, rt| {
        load_test_profile(c);
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        let id = c.id.clone();
        let out = exec(c, &["--apparmor", TEST_PROFILE, &id, "cat", "/proc/self/attr/current"]);
        out.expect_ok(rt);
        assert_eq!(out.stdout.trim_end_matches(['\n', '\0']), format!("{TEST_PROFILE} (enforce)"), "{rt}: {out}");
        let out = exec(c, &[&id, "cat", "/proc/self/attr/current"]);
        out.expect_ok(rt);
        assert_eq!(out.stdout.trim_end_matches(['\n', '\0']), "unconfined", "{rt}: no profile asked: {out}");
    });
}

/// The context this test runs in: a label the loaded policy surely knows.
fn own_context() -> String {
    let raw = fs::read("/proc/self/attr/current").expect("read /proc/self/attr/current");
    String::from_utf8_lossy(&raw).trim_end_matches(['\n', '\0']).to_string()
}

#[test]
fn selinux_label_is_entered_at_execve() {
    assert!(selinux_enabled(), "SELinux is not enabled on this host");
    let label = own_context();
    conformance::each_runtime("lsm_se_on", |c, rt| {
        c.config()["process"]["selinuxLabel"] = label.clone().into();
        let out = c.run_sh("cat /proc/self/attr/current");
        out.expect_ok(rt);
        assert_eq!(out.stdout.trim_end_matches(['\n', '\0']), label, "{rt}: {out}");
    });
}

#[test]
fn mount_label_is_the_context_of_the_tmpfs_mounts() {
    assert!(selinux_enabled(), "SELinux is not enabled on this host");
    // A file type every reference policy has.
    let label = "system_u:object_r:tmp_t:s0";
    conformance::each_runtime("lsm_ml_on", |c, rt| {
        c.config()["linux"]["mountLabel"] = label.into();
        c.bundle.add_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"}));
        let out = c.run_sh("grep -E ' /(dev|dev/shm|scratch) ' /proc/self/mountinfo");
        out.expect_ok(rt);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{rt}: {out}");
        for l in lines {
            assert!(l.contains("context=") && l.contains("tmp_t"), "{rt}: no mount label on {l:?}\n{out}");
        }
    });
}
