//! The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: the container's
//! cgroup is a transient scope systemd knows, with the resources as its properties, and
//! `delete` leaves no unit behind. Needs systemd as PID 1 on pure cgroup v2, a system bus and
//! root, which CI's host (no systemd, cgroup v1 hybrid) lacks: this file is built only with
//! the `systemd-host` feature, for the trixie guest (docs/production-guest.md) or any systemd
//! host: `cargo test -p conformance --features systemd-host --test systemd_cgroup`. Hosts
//! without systemd are covered by
//! `cgroups::systemd_cgroup_without_systemd_is_refused_leaving_nothing`.

use std::path::Path;
use std::process::Command;

use conformance::Case;
use serde_json::json;

fn systemctl(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemctl").args(args).output().expect("systemctl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn property(unit: &str, name: &str) -> String {
    systemctl(&["show", unit, "-p", name, "--value"]).1
}

fn cgroup_file(dir: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup").join(dir.trim_start_matches('/')).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

/// Whether this host can run the driver: systemd as PID 1 on pure cgroup v2.
fn has_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn the_container_is_a_scope_systemd_knows() {
    assert!(has_systemd(), "needs systemd as PID 1 on pure cgroup v2 (the trixie guest)");
    let mut c = Case::new("sd_scope");
    let unit = format!("berth-{}.scope", c.id);
    let dir = format!("/system.slice/{unit}");
    c.config()["linux"]["cgroupsPath"] = format!("system.slice:berth:{}", c.id).into();
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 42});
    c.bundle.set_args(&["sleep", "1000"]);
    c.rt.globals.push("--systemd-cgroup".into());
    c.create().expect_ok("create --systemd-cgroup");
    let pid = c.state()["pid"].as_i64().expect("pid");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert_eq!(own.trim(), format!("0::{dir}"), "the init is in the unit's cgroup");
    assert_eq!(property(&unit, "ActiveState"), "active");
    assert_eq!(property(&unit, "Delegate"), "yes");
    assert_eq!(property(&unit, "MemoryMax"), (64 << 20).to_string());
    assert_eq!(cgroup_file(&dir, "memory.max"), (64 << 20).to_string(), "the property and the file agree");
    assert_eq!(property(&unit, "TasksMax"), "42");
    assert_eq!(cgroup_file(&dir, "pids.max"), "42");
    let (_, status) = systemctl(&["status", "--no-pager", &unit]);
    assert!(status.contains(&pid.to_string()), "systemctl status lists the init {pid}:\n{status}");
    c.start().expect_ok("start");

    // update: the unit's property and the file.
    c.rt.cmd().args(["update", "--memory", "134217728", &c.id]).run().expect_ok("update --memory");
    assert_eq!(property(&unit, "MemoryMax"), (128 << 20).to_string());
    assert_eq!(cgroup_file(&dir, "memory.max"), (128 << 20).to_string());
    // A daemon reload re-applies the unit's properties: the limits stay.
    assert!(systemctl(&["daemon-reload"]).0, "daemon-reload");
    assert_eq!(cgroup_file(&dir, "memory.max"), (128 << 20).to_string(), "after daemon-reload");
    assert_eq!(cgroup_file(&dir, "pids.max"), "42", "after daemon-reload");

    // pause, ps and exec go through the unit's directory.
    c.rt.cmd().args(["pause", &c.id]).run().expect_ok("pause");
    assert_eq!(cgroup_file(&dir, "cgroup.freeze"), "1");
    c.rt.cmd().args(["resume", &c.id]).run().expect_ok("resume");
    c.rt.cmd().args(["exec", &c.id, "true"]).run().expect_ok("exec");

    c.rt.delete_force(&c.id).expect_ok("delete --force");
    assert_eq!(property(&unit, "LoadState"), "not-found", "delete leaves no unit");
    assert!(!Path::new("/sys/fs/cgroup").join(dir.trim_start_matches('/')).exists(), "the scope's cgroup is gone");

    // The same id (the same unit name) again.
    c.create().expect_ok("re-create with the same id");
    assert_eq!(property(&unit, "ActiveState"), "active");
    c.rt.delete_force(&c.id).expect_ok("delete the re-created");
    assert_eq!(property(&unit, "LoadState"), "not-found");
}

/// A slice that does not exist yet (as kubelet names pod slices) is made, nested by its
/// name, and the scope goes in it.
#[test]
fn a_missing_nested_slice_is_made() {
    assert!(has_systemd(), "needs systemd as PID 1 on pure cgroup v2 (the trixie guest)");
    let mut c = Case::new("sd_slice");
    let top = format!("bt{}", std::process::id());
    let slice = format!("{top}-pod1.slice");
    c.config()["linux"]["cgroupsPath"] = format!("{slice}:cri:{}", c.id).into();
    c.bundle.set_args(&["sleep", "1000"]);
    c.rt.globals.push("--systemd-cgroup".into());
    c.on_cleanup({
        let slice = slice.clone();
        move || {
            let _ = Command::new("systemctl").args(["stop", &slice]).status();
        }
    });
    c.create().expect_ok("create in a new slice");
    let pid = c.state()["pid"].as_i64().expect("pid");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert_eq!(own.trim(), format!("0::/{top}.slice/{slice}/cri-{}.scope", c.id));
    assert_eq!(property(&slice, "ActiveState"), "active");
    c.rt.delete_force(&c.id).expect_ok("delete");
    assert_eq!(property(&format!("cri-{}.scope", c.id), "LoadState"), "not-found");
}

/// A container whose init has exited: its scope is gone or failed; delete leaves no unit
/// (a failed one is reset) and the name can be used again.
#[test]
fn a_container_that_died_leaves_a_reusable_name() {
    assert!(has_systemd(), "needs systemd as PID 1 on pure cgroup v2 (the trixie guest)");
    let mut c = Case::new("sd_dead");
    let unit = format!("berth-{}.scope", c.id);
    c.bundle.set_args(&["true"]);
    c.rt.globals.push("--systemd-cgroup".into());
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c.wait_status(&c.id, "stopped");
    c.rt.delete_force(&c.id).expect_ok("delete of the stopped");
    assert_eq!(property(&unit, "LoadState"), "not-found");
    c.create().expect_ok("the same name again");
    c.rt.delete_force(&c.id).expect_ok("delete");
}
