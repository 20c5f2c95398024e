//! The failpoint walk (issue 16, "Keep it found"): a `berth` built with the `failpoints`
//! feature dies abruptly (SIGKILL of itself) at a named step of create, start, exec or
//! delete. For every step it lists, the operation is run with that step selected, berth
//! must die there, `delete --force` must then remove everything (processes, cgroups in
//! every hierarchy, mounts, state, netns: Case's leak check), and the id must be reusable.
//!
//! The feature build is kept apart (target/failpoints), so the ordinary binaries never
//! carry failpoints: $BERTH_FAILPOINTS names a prebuilt one (the Makefile's `conformance`
//! target builds it), else the test builds it once with cargo in a target dir of its own.

use conformance::{Case, Out, Runtime};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const HOST_ID: u32 = 200_000;

/// The `berth` binary with failpoints.
fn failpoint_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| conformance::failpoint_build::failpoint_binary("BERTH_FAILPOINTS", "berth", "berth"))
}

/// Every step the binary knows (`BERTH_FAILPOINT=list`).
fn steps(rt: &Runtime) -> Vec<String> {
    let out = rt.cmd().env("BERTH_FAILPOINT", "list").run();
    out.expect_ok("BERTH_FAILPOINT=list");
    let v: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert!(v.len() > 10, "too few failpoints listed\n{out}");
    v
}

/// A case on the failpoint binary. Its config has a createRuntime hook (the hooks step of
/// the handshake) and, for the steps of the id mappings, a user namespace.
fn case(n: usize, step: &str) -> Case {
    let mut c = Case::new(&format!("fp{n}"));
    c.rt = Runtime::with_binary(failpoint_binary(), &c.dir.join("root"));
    c.config()["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}]});
    if step.contains("maps") {
        c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        c.config()["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
        c.config()["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
        let st = Command::new("chown")
            .args(["-R", &format!("{HOST_ID}:{HOST_ID}")])
            .arg(&c.bundle.rootfs.path)
            .status()
            .expect("chown");
        assert!(st.success(), "chown of the rootfs");
    }
    c.bundle.set_args(&["sleep", "3600"]);
    c
}

fn killed_at(out: &Out, step: &str) {
    assert_eq!(out.signal, Some(libc::SIGKILL), "berth should have died at failpoint {step}\n{out}");
}

/// One step: set up what the operation needs, run it with the failpoint, clean up with
/// `delete --force`, check nothing is left, and reuse the id.
fn walk_one(n: usize, step: &str) {
    let c = case(n, step);
    let op = step.split(':').next().unwrap_or_default();
    let fp = |inv: conformance::runtime::Invocation| inv.env("BERTH_FAILPOINT", step).run();
    match op {
        "create" => {
            c.write();
            let out = fp(c.rt.cmd().args(["create", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).stdio_to(&c.stdio));
            killed_at(&out, step);
        }
        "start" => {
            c.create().expect_ok("create");
            killed_at(&fp(c.rt.cmd().args(["start", &c.id])), step);
        }
        "exec" => {
            c.create().expect_ok("create");
            c.start().expect_ok("start");
            killed_at(&fp(c.rt.cmd().args(["exec", &c.id, "true"])), step);
            // The container outlives a dead exec: it still runs and takes another one.
            assert_eq!(c.rt.status(&c.id).as_deref(), Some("running"), "after exec died at {step}");
            c.rt.exec(&["exec", &c.id, "true"]).expect_ok(&format!("exec after one that died at {step}"));
        }
        "delete" => {
            c.create().expect_ok("create");
            c.start().expect_ok("start");
            killed_at(&fp(c.rt.cmd().args(["delete", "--force", &c.id])), step);
        }
        other => panic!("failpoint {step}: unknown operation {other:?}"),
    }
    c.rt.delete_force(&c.id).expect_ok(&format!("delete --force after berth died at {step}"));
    c.assert_no_leaks(&format!("after berth died at {step} and delete --force"));
    c.create().expect_ok(&format!("create of the id again after {step}"));
    c.start().expect_ok(&format!("start of the id again after {step}"));
    c.rt.delete_force(&c.id).expect_ok(&format!("delete of the id again after {step}"));
    c.assert_no_leaks(&format!("after reusing the id ({step})"));
}

#[test]
fn every_failpoint_of_create_start_exec_delete_leaves_nothing_after_delete_force() {
    let probe = Runtime::with_binary(failpoint_binary(), Path::new("/nonexistent"));
    let all = steps(&probe);
    for op in ["create:", "start:", "exec:", "delete:"] {
        assert!(all.iter().any(|s| s.starts_with(op)), "no failpoint of {op} listed: {all:?}");
    }
    let mut failed = Vec::new();
    for (n, step) in all.iter().enumerate() {
        eprintln!("failpoint {step}");
        if let Err(e) = std::panic::catch_unwind(|| walk_one(n, step)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{step}: {msg}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} failpoints left something:\n{}", failed.len(), all.len(), failed.join("\n"));
}

#[test]
fn a_build_without_the_feature_has_no_failpoints() {
    let c = Case::new("fp-off");
    let out = c.rt.cmd().env("BERTH_FAILPOINT", "list").arg("list").run();
    out.expect_ok("list with BERTH_FAILPOINT=list on the ordinary binary");
    assert!(!out.stdout.contains("create:"), "the ordinary berth lists failpoints\n{out}");
}

/// Whether process `pid` is stopped (state T in /proc/<pid>/stat).
fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The race CI met: the container's process exits (and is reaped) while `delete --force`
/// runs, after delete found it alive. Its cgroup can no longer be proven by the init in it;
/// it must still be removed, as a stopped container's is.
#[test]
fn delete_force_removes_the_cgroup_of_an_init_reaped_while_it_runs() {
    // Its own number: the walk uses 0 up, in parallel with this test.
    let c = case(usize::MAX, "delete:init-pinned");
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let pid = c.rt.state_json(&c.id)["pid"].as_i64().expect("state has the init's pid");
    let mut delete = Command::new(&c.rt.bin)
        .arg("--root")
        .arg(&c.rt.root)
        .args(["delete", "--force", &c.id])
        .env("BERTH_FAILPOINT", "delete:init-pinned pause")
        .spawn()
        .expect("spawn delete");
    let berth = delete.id();
    wait_for("delete to pause at delete:init-pinned", || is_stopped(berth));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill the init");
    wait_for("the init to be reaped", || !Path::new(&format!("/proc/{pid}")).exists());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(berth as i32), nix::sys::signal::Signal::SIGCONT)
        .expect("resume delete");
    let status = delete.wait().expect("wait for delete");
    assert!(status.success(), "delete --force after the init was reaped: {status}");
    c.assert_no_leaks("after delete --force raced the init's exit");
}
