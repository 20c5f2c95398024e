//! Hostile state (issue 16 item 7): a state directory that someone broke or rewrote must
//! neither hang berth nor make it signal what is not the container's, and `delete --force`
//! must still remove the container. runc hangs on a FIFO, cannot delete a container whose
//! state.json is truncated, and trusts the cgroup paths in its state: those tests are
//! berth's only (berth is meant to be better than runc here). So is `exec` ignoring later
//! edits of config.json: runc 1.1 reads the bundle's config.json again on `exec` (checked:
//! it runs the edited process).

use conformance::util::pid_alive;
use conformance::{poll_until, Case};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Long enough for a loaded machine; a berth that blocks never gets there.
const HANG: Duration = Duration::from_secs(30);

/// A started container whose init sleeps; returns its init's pid.
fn running(c: &mut Case) -> i32 {
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c.state()["pid"].as_i64().expect("state has a pid") as i32
}

fn state_file(c: &Case) -> PathBuf {
    c.rt.root.join(&c.id).join("state.json")
}

/// `delete --force` worked from what the system shows: init dead, state and cgroups gone.
fn assert_deleted(c: &Case, init: i32) {
    let out = c.rt.cmd().args(["delete", "--force", &c.id]).timeout(HANG).run();
    out.expect_ok("delete --force");
    poll_until("the init to die", Duration::from_secs(20), || (!pid_alive(init)).then_some(()));
    assert!(!c.rt.root.join(&c.id).exists(), "the state directory is still there");
    assert_eq!(conformance::leak::cgroup_dirs_containing(&c.id), Vec::<PathBuf>::new());
    c.assert_no_leaks("after delete --force");
}

#[test]
fn a_fifo_in_place_of_state_json_hangs_nothing_and_delete_force_removes_the_container() {
    let mut c = Case::new("hostile_fifo");
    let init = running(&mut c);
    let state = state_file(&c);
    fs::remove_file(&state).expect("remove state.json");
    nix::unistd::mkfifo(&state, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let out = c.rt.cmd().args(["state", &c.id]).timeout(HANG).run();
    out.expect_fail("state with a FIFO for state.json");
    assert!(out.stderr.contains(&c.id) && out.stderr.contains("FIFO"), "{out}");
    c.rt.cmd().arg("list").timeout(HANG).run().expect_ok("list with a FIFO for a state.json");
    let out = c.rt.cmd().args(["kill", &c.id, "KILL"]).timeout(HANG).run();
    out.expect_fail("kill with a FIFO for state.json");
    assert_deleted(&c, init);
}

#[test]
fn a_truncated_state_json_is_removed_by_delete_force() {
    let mut c = Case::new("hostile_trunc");
    let init = running(&mut c);
    let state = state_file(&c);
    let text = fs::read(&state).expect("read state.json");
    fs::write(&state, &text[..text.len() / 2]).expect("truncate state.json");
    let out = c.rt.state(&c.id);
    out.expect_fail("state with a truncated state.json");
    assert!(out.stderr.contains(&c.id), "{out}");
    c.rt.delete(&c.id).expect_fail("delete without --force of an unreadable container");
    assert!(pid_alive(init), "delete without --force killed the container");
    assert_deleted(&c, init);
}

/// A `sleep` outside the container, in a cgroup of its own next to the container's in
/// every hierarchy; the cgroups go when the case does.
fn victim(c: &mut Case, hierarchies: &[Value]) -> (i32, Vec<PathBuf>) {
    let mut child = std::process::Command::new("/bin/sleep").arg("1000").spawn().expect("spawn the victim");
    let pid = child.id() as i32;
    let mut dirs = Vec::new();
    for h in hierarchies {
        let own = Path::new(h["dir"].as_str().expect("hierarchy dir"));
        // Not named after the container: the leak check looks for cgroups that are.
        let dir = own.parent().expect("a parent cgroup").join(format!("berth-victim-{}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if dir.join(f).exists() {
                let v = fs::read_to_string(own.parent().unwrap().join(f)).expect("parent cpuset");
                fs::write(dir.join(f), v.trim()).expect("fill cpuset");
            }
        }
        fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dirs.push(dir);
    }
    let cleanup = dirs.clone();
    c.on_cleanup(move || {
        let _ = child.kill();
        let _ = child.wait();
        for d in cleanup.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    });
    (pid, dirs)
}

#[test]
fn cgroup_paths_rewritten_in_the_state_make_berth_signal_nothing_outside_the_container() {
    let mut c = Case::new("hostile_cgroup");
    let init = running(&mut c);
    let state = state_file(&c);
    let mut rec: Value =
        serde_json::from_slice(&fs::read(&state).expect("read state.json")).expect("state.json is JSON");
    let hierarchies = rec["cgroup"]["hierarchies"].as_array().expect("hierarchies").clone();
    let (victim, dirs) = victim(&mut c, &hierarchies);
    for (h, d) in rec["cgroup"]["hierarchies"].as_array_mut().unwrap().iter_mut().zip(&dirs) {
        h["dir"] = Value::String(d.display().to_string());
    }
    rec["cgroup"]["created"] = dirs.iter().map(|d| Value::String(d.display().to_string())).collect();
    fs::write(&state, serde_json::to_vec(&rec).unwrap()).expect("rewrite state.json");

    let out = c.rt.cmd().args(["kill", "--all", &c.id, "KILL"]).run();
    out.expect_fail("kill --all through a cgroup that does not hold the init");
    assert!(out.stderr.contains(&c.id) && out.stderr.contains("cgroup"), "{out}");
    assert!(pid_alive(victim) && pid_alive(init), "kill --all signalled something");
    c.rt.exec(&["pause", &c.id]).expect_fail("pause through a foreign cgroup");
    assert_deleted(&c, init);
    assert!(pid_alive(victim), "delete --force killed a process outside the container");
    assert!(dirs.iter().all(|d| d.exists()), "delete --force removed a cgroup that is not the container's");
}

#[test]
fn exec_does_not_read_config_json_after_create() {
    // runtime-spec: changes to config.json after create have no effect; berth keeps the
    // process in its state. Berth only: runc reads the bundle's config.json again.
    {
        let label = "berth";
        let mut c = Case::new("hostile_cfg");
        c.config()["process"]["env"].as_array_mut().unwrap().push("MARK=at-create".into());
        running(&mut c);
        let mark = |c: &Case| c.rt.exec(&["exec", &c.id, "sh", "-c", "echo $MARK"]);
        c.config()["process"]["env"] = serde_json::json!(["PATH=/bin", "MARK=edited"]);
        c.write();
        let out = mark(&c);
        out.expect_ok(label);
        assert_eq!(out.stdout, "at-create\n", "{label}: exec used the edited config.json\n{out}");
        c.bundle.write_raw(b"{ not json");
        let out = mark(&c);
        out.expect_ok(&format!("{label}: exec with a broken config.json"));
        assert_eq!(out.stdout, "at-create\n", "{label}");
        fs::remove_file(c.bundle.config_path()).expect("remove config.json");
        mark(&c).expect_ok(&format!("{label}: exec without a config.json"));
        c.rt.delete_force(&c.id).expect_ok("delete --force");
    }
}
