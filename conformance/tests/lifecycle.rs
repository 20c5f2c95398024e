//! create → start → state → kill → delete, run, list: runc's lifecycle contract.

use conformance::{poll_until, Case};
use std::fs;
use std::time::Duration;

#[test]
fn run_exit_code_is_the_containers() {
    let mut c = Case::new("run_exit_code");
    let out = c.run_sh("exit 7");
    assert_eq!(out.code, 7, "{out}");
    let out = c.run_sh("echo hello");
    assert_eq!(out.stdout, "hello\n", "{out}");
    out.expect_ok("run of echo");
}

#[test]
fn run_exit_code_of_signalled_container_is_128_plus_signal() {
    let mut c = Case::new("run_signal_exit");
    // As pid 1 of a pid namespace, sh could not SIGKILL itself.
    c.bundle.remove_namespace("pid");
    let out = c.run_sh("kill -KILL $$");
    assert_eq!(out.code, 137, "{out}");
}

#[test]
fn run_without_a_pid_namespace_kills_what_the_init_left_behind() {
    // Sharing the host's pid namespace, the init's death takes nothing with it: `run` finds
    // the sleep in the container's cgroup, kills it, and only then can remove the cgroup.
    let mut c = Case::new("run_nopidns_leftover");
    c.bundle.remove_namespace("pid");
    let out = c.run_sh("sleep 1000 >/dev/null 2>&1 & echo started");
    out.expect_ok("run");
    assert_eq!(out.stdout, "started\n", "{out}");
    c.assert_no_leaks("after run returned");
}

#[test]
fn run_detach_returns_while_container_runs() {
    let mut c = Case::new("run_detach");
    c.bundle.set_args(&["sleep", "1000"]);
    c.write();
    let out = c.rt.cmd().args(["run", "--detach", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).stdio_to(&c.stdio).run();
    out.expect_ok("run --detach");
    assert_eq!(c.state()["status"], "running");
    c.rt.kill(&c.id, "KILL").expect_ok("kill");
    c.wait_status(&c.id, "stopped");
    c.rt.delete(&c.id).expect_ok("delete");
}

#[test]
fn create_leaves_container_created_with_init_pid() {
    let c = Case::new("create_created");
    c.create().expect_ok("create");
    let st = c.state();
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().expect("state.pid is a number");
    assert!(pid > 0 && conformance::util::pid_alive(pid as i32), "init pid {pid} should be alive");
    // The user process must not have run yet: `args` writes a marker.
    assert_eq!(c.output(), "");
}

#[test]
fn start_runs_the_process_and_it_stops() {
    let mut c = Case::new("start_runs");
    c.bundle.set_sh("echo started");
    let out = c.create_start_wait();
    assert_eq!(out, "started\n");
}

#[test]
fn start_twice_fails() {
    let mut c = Case::new("start_twice");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    assert_eq!(c.state()["status"], "running");
    c.start().expect_fail("second start of a running container");
    c.rt.kill(&c.id, "KILL").expect_ok("kill");
    c.wait_status(&c.id, "stopped");
}

#[test]
fn state_json_has_runc_fields() {
    let mut c = Case::new("state_fields");
    c.config()["annotations"] = serde_json::json!({"org.example.key": "value"});
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    let st = c.state();
    for k in ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"] {
        assert!(st.get(k).is_some(), "state lacks {k}: {st}");
    }
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(st["bundle"], c.bundle.dir.to_str().unwrap());
    assert_eq!(st["rootfs"], c.bundle.dir.join("rootfs").to_str().unwrap());
    assert_eq!(st["annotations"]["org.example.key"], "value");
    assert!(st["created"].as_str().unwrap_or("").contains('T'), "created is RFC 3339: {st}");
}

#[test]
fn pid_file_holds_init_pid() {
    let c = Case::new("pid_file");
    let pidfile = c.dir.join("init.pid");
    c.create_with(&["--pid-file", pidfile.to_str().unwrap()]).expect_ok("create --pid-file");
    let text = fs::read_to_string(&pidfile).expect("pid file written");
    let pid: i64 = text.trim().parse().expect("pid file holds a number");
    assert_eq!(c.state()["pid"].as_i64(), Some(pid));
}

#[test]
fn kill_by_signal_name_and_number() {
    let mut c = Case::new("kill_signals");
    // The trap proves which signal arrived, not merely that the process died.
    c.bundle.set_sh(
        "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
    );
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    poll_until("container ready", Duration::from_secs(20), || c.output().contains("ready").then_some(()));
    c.rt.kill(&c.id, "USR1").expect_ok("kill USR1");
    poll_until("USR1 delivered", Duration::from_secs(20), || c.output().contains("got USR1").then_some(()));
    c.rt.kill(&c.id, "SIGUSR1").expect_ok("kill SIGUSR1");
    poll_until("SIGUSR1 delivered", Duration::from_secs(20), || {
        (c.output().matches("got USR1").count() == 2).then_some(())
    });
    c.rt.kill(&c.id, "15").expect_ok("kill 15");
    c.wait_status(&c.id, "stopped");
    assert!(c.output().contains("got TERM"), "output: {}", c.output());
    c.rt.delete(&c.id).expect_ok("delete");
}

#[test]
fn kill_default_signal_is_sigterm() {
    let mut c = Case::new("kill_default");
    c.bundle.set_sh("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    poll_until("container ready", Duration::from_secs(20), || c.output().contains("ready").then_some(()));
    c.rt.exec(&["kill", &c.id]).expect_ok("kill without a signal");
    c.wait_status(&c.id, "stopped");
    assert!(c.output().contains("got TERM"));
}

#[test]
fn delete_of_running_container_without_force_fails() {
    let mut c = Case::new("delete_running");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c.rt.delete(&c.id).expect_fail("delete of a running container");
    assert_eq!(c.state()["status"], "running", "failed delete must not touch the container");
}

#[test]
fn delete_force_kills_and_removes_running_container() {
    let mut c = Case::new("delete_force");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let pid = c.state()["pid"].as_i64().unwrap() as i32;
    c.rt.delete_force(&c.id).expect_ok("delete --force");
    poll_until("init gone", Duration::from_secs(10), || (!conformance::util::pid_alive(pid)).then_some(()));
    c.rt.state(&c.id).expect_fail("state after delete");
    c.assert_no_leaks("after delete --force");
}

#[test]
fn delete_of_created_container_removes_it() {
    let c = Case::new("delete_created");
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().unwrap() as i32;
    c.rt.delete_force(&c.id).expect_ok("delete --force of created");
    poll_until("init gone", Duration::from_secs(10), || (!conformance::util::pid_alive(pid)).then_some(()));
    c.assert_no_leaks("after deleting a created container");
}

#[test]
fn list_shows_containers_and_quiet_ids() {
    let mut c = Case::new("list");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    let q = c.rt.list(&["-q"]);
    q.expect_ok("list -q");
    assert_eq!(q.stdout.lines().collect::<Vec<_>>(), vec![c.id.as_str()]);
    let table = c.rt.list(&[]);
    table.expect_ok("list");
    assert!(table.stdout.lines().next().unwrap_or("").starts_with("ID"), "{table}");
    assert!(table.stdout.contains(&c.id) && table.stdout.contains("created"), "{table}");
    let j = c.rt.list(&["--format", "json"]);
    j.expect_ok("list --format json");
    let v = j.json();
    let arr = v.as_array().expect("list json is an array");
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["id"], c.id.as_str());
    assert_eq!(arr[0]["status"], "created");
    assert!(arr[0]["pid"].as_i64().unwrap_or(0) > 0);
}

#[test]
fn list_empty_root_prints_nothing_as_json() {
    let c = Case::new("list_empty");
    fs::create_dir_all(&c.rt.root).unwrap();
    let j = c.rt.list(&["--format", "json"]);
    j.expect_ok("list --format json");
    // runc prints `null` for no containers; an empty array is as good.
    let v = j.json();
    assert!(v.is_null() || v.as_array().map(|a| a.is_empty()).unwrap_or(false), "{j}");
}

#[test]
fn create_killed_part_way_is_cleaned_up_by_delete_force() {
    // SECURITY.md §3.2: the runtime killed in the middle of create (its own cleanup never
    // runs) must still leave something `delete --force` can remove completely.
    use std::process::{Command, Stdio};
    let mut c = Case::new("killed_create");
    let marker = c.dir.join("hook-started");
    // A prestart hook that waits holds create part-way: state dir, cgroup and init exist.
    c.config()["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/sh",
        "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 1", marker.display())]}]});
    c.write();
    let mut create = Command::new(&c.rt.bin)
        .args([
            "--root".as_ref(),
            c.rt.root.as_os_str(),
            "create".as_ref(),
            "--bundle".as_ref(),
            c.bundle.dir.as_os_str(),
            c.id.as_ref(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn create");
    poll_until("create to reach its prestart hook", std::time::Duration::from_secs(20), || {
        fs::read_to_string(&marker).ok().filter(|s| s.ends_with('\n'))
    });
    assert!(!conformance::leak::cgroup_dirs_containing(&c.id).is_empty(), "create made no cgroup before its hooks");
    create.kill().expect("kill create");
    create.wait().expect("reap create");
    assert_eq!(c.state()["status"], "creating", "a killed create shows as creating");
    c.rt.delete_force(&c.id).expect_ok("delete --force after a killed create");
    assert_eq!(conformance::leak::cgroup_dirs_containing(&c.id), Vec::<std::path::PathBuf>::new());
    assert!(c.rt.status(&c.id).is_none(), "the container is still listed after delete --force");
    // The hook is the test's own process, orphaned with create (as with runc): let it end
    // before the leak check.
    let hook = fs::read_to_string(&marker).expect("hook pid").trim().to_string();
    poll_until("the prestart hook to end", Duration::from_secs(20), || {
        (!std::path::Path::new(&format!("/proc/{hook}")).exists()).then_some(())
    });
}

/// berth, then runc as the oracle (crun 1.8 refuses this host's hybrid cgroups).
fn berth_and_runc(name: &str, mut f: impl FnMut(&mut Case, &str)) {
    for (label, bin) in [("berth", None), ("runc", Some("/usr/sbin/runc"))] {
        let mut c = Case::new(&format!("{name}_{label}"));
        if let Some(b) = bin {
            c.rt = conformance::Runtime::with_binary(std::path::Path::new(b), &c.dir.join("root"));
        }
        f(&mut c, label);
    }
}

#[test]
fn create_and_start_with_one_mib_of_annotations() {
    // Issue 16 item 3: the state (annotations included) reaches the init through the
    // create handshake; it once had to fit one 64 KiB datagram. runc takes 1 MiB.
    berth_and_runc("big_annotations", |c, rt| {
        let mut annotations = serde_json::Map::new();
        // One value above the default socket buffer (~208 KiB), the rest in 64 KiB pieces.
        annotations.insert("org.example.big".into(), "b".repeat(300 << 10).into());
        for i in 0..12 {
            annotations
                .insert(format!("org.example.a{i}"), char::from(b'a' + i as u8).to_string().repeat(64 << 10).into());
        }
        c.config()["annotations"] = serde_json::Value::Object(annotations.clone());
        c.bundle.set_sh("echo started");
        c.create().expect_ok(&format!("{rt}: create with 1 MiB of annotations"));
        let st = c.state();
        assert_eq!(st["status"], "created", "{rt}");
        assert!(
            st["annotations"] == serde_json::Value::Object(annotations),
            "{rt}: the state's annotations differ from the config's"
        );
        c.start().expect_ok(&format!("{rt}: start"));
        c.wait_status(&c.id, "stopped");
        assert_eq!(c.output(), "started\n", "{rt}");
        c.rt.delete(&c.id).expect_ok(&format!("{rt}: delete"));
    });
}
