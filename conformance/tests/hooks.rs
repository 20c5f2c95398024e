//! The six hook kinds: when they run, where, with the state on stdin, and
//! what a failing or hanging hook does.

use conformance::{each_runtime, each_runtime_but, poll_until, Case};
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

/// Points every hook kind at a shell that appends "<kind> <state json>" to a
/// log. Only startContainer runs after pivot_root (its path resolves in the
/// container, where the log dir is bind-mounted); createContainer runs in the
/// container's namespaces before pivot_root, so host paths still resolve.
fn install_all_hooks(c: &mut Case) -> std::path::PathBuf {
    let log_dir = c.dir.join("hooklog");
    fs::create_dir_all(&log_dir).unwrap();
    let host_log = log_dir.join("log");
    let hook = |kind: &str, log: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("printf '%s ' {kind} >> {log}; cat >> {log}; echo >> {log}")]});
    let hl = host_log.to_str().unwrap().to_string();
    c.bundle
        .add_mount(json!({"destination": "/hooklog", "type": "bind", "source": log_dir, "options": ["rbind", "rw"]}));
    c.config()["hooks"] = json!({
        "prestart": [hook("prestart", &hl)],
        "createRuntime": [hook("createRuntime", &hl)],
        "createContainer": [hook("createContainer", &hl)],
        "startContainer": [hook("startContainer", "/hooklog/log")],
        "poststart": [hook("poststart", &hl)],
        "poststop": [hook("poststop", &hl)]
    });
    host_log
}

fn log_entries(log: &std::path::Path) -> Vec<(String, Value)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (kind, js) = l.split_once(' ').unwrap_or((l, ""));
            let v = serde_json::from_str(js).unwrap_or_else(|e| panic!("hook {kind} got no state JSON ({e}): {js:?}"));
            (kind.to_string(), v)
        })
        .collect()
}

#[test]
fn all_hooks_run_in_order_with_state_on_stdin() {
    let mut c = Case::new("hooks_all");
    let log = install_all_hooks(&mut c);
    c.bundle.set_sh("echo main >> /hooklog/main");
    c.create().expect_ok("create");
    let kinds = |l: &[(String, Value)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let after_create = log_entries(&log);
    assert_eq!(kinds(&after_create), vec!["prestart", "createRuntime", "createContainer"], "hooks run by create");
    c.start().expect_ok("start");
    c.wait_status(&c.id, "stopped");
    poll_until("poststart logged", Duration::from_secs(10), || {
        kinds(&log_entries(&log)).contains(&"poststart".to_string()).then_some(())
    });
    c.rt.delete(&c.id).expect_ok("delete");
    let all = log_entries(&log);
    assert_eq!(
        kinds(&all),
        vec!["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    );
    for (kind, st) in &all {
        assert_eq!(st["id"], c.id.as_str(), "{kind}: {st}");
        assert_eq!(st["bundle"], c.bundle.dir.to_str().unwrap(), "{kind}: {st}");
        assert!(st["ociVersion"].is_string(), "{kind}: {st}");
    }
    let status = |k: &str| all.iter().find(|(x, _)| x == k).unwrap().1["status"].clone();
    assert_eq!(status("createRuntime"), "creating");
    assert_eq!(status("startContainer"), "created");
    assert_eq!(status("poststart"), "running");
    assert_eq!(status("poststop"), "stopped");
    assert!(all.iter().filter(|(k, _)| k != "poststop").all(|(_, s)| s["pid"].as_i64().unwrap_or(0) > 0));
    assert_eq!(fs::read_to_string(c.dir.join("hooklog/main")).unwrap(), "main\n");
}

#[test]
fn hooks_run_with_run_command_too() {
    let mut c = Case::new("hooks_run");
    let log = install_all_hooks(&mut c);
    c.run_sh("true").expect_ok("run");
    let kinds: Vec<String> = log_entries(&log).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, vec!["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
}

#[test]
fn container_hooks_run_inside_the_container() {
    let mut c = Case::new("hooks_in_ctr");
    let log_dir = c.dir.join("hooklog");
    fs::create_dir_all(&log_dir).unwrap();
    c.bundle
        .add_mount(json!({"destination": "/hooklog", "type": "bind", "source": log_dir, "options": ["rbind", "rw"]}));
    let script = |dir: &str, name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("hostname > {dir}/{name}; readlink /proc/self/ns/mnt >> {dir}/{name}")]});
    // createContainer: before pivot_root, so the host path of the log dir.
    let host_dir = log_dir.to_str().unwrap().to_string();
    c.config()["hooks"] =
        json!({"createContainer": [script(&host_dir, "cc")], "startContainer": [script("/hooklog", "sc")]});
    c.config()["hostname"] = "hooked".into();
    c.run_sh("true").expect_ok("run");
    let host_mnt = conformance::util::ns_inode(std::path::Path::new("/proc/self/ns/mnt")).unwrap();
    for f in ["cc", "sc"] {
        let text = fs::read_to_string(log_dir.join(f)).unwrap_or_else(|_| panic!("{f} hook did not run"));
        let l: Vec<&str> = text.lines().collect();
        // Only startContainer is sure to run after sethostname.
        if f == "sc" {
            assert_eq!(l[0], "hooked", "{f}: hostname");
        }
        assert_ne!(l[1], host_mnt, "{f} ran in the host mount namespace");
    }
}

#[test]
fn hook_args_and_env_are_passed() {
    let mut c = Case::new("hooks_args_env");
    let out = c.dir.join("hook.out");
    c.config()["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$0 $1 $HOOKVAR\" > {}", out.display()), "zero", "one"],
        "env": ["HOOKVAR=hv"]
    }]});
    c.run_sh("true").expect_ok("run");
    assert_eq!(fs::read_to_string(&out).unwrap(), "zero one hv\n");
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut c = Case::new(&format!("hook_fail_{kind}"));
        c.config()["hooks"] = json!({kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-broke >&2; exit 3"]}]});
        c.bundle.set_args(&["sleep", "1000"]);
        c.expect_create_fails(&["hook", kind]);
    }
}

#[test]
fn hook_timeout_kills_hook_and_fails_create() {
    let mut c = Case::new("hook_timeout");
    let pidfile = c.dir.join("hook.pid");
    c.config()["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 1000", pidfile.display())],
        "timeout": 1
    }]});
    c.expect_create_fails(&["timeout", "timed out", "hook", "createRuntime"]);
    // The hung hook must not outlive the failed create.
    let pid: i32 = fs::read_to_string(&pidfile).expect("hook ran").trim().parse().unwrap();
    assert!(!conformance::util::pid_alive(pid), "timed-out hook {pid} still running");
}

/// `kind`: a hook that fails with a message on stderr, then one that logs that it ran.
fn failing_then_logging_hooks(c: &mut Case, kind: &str) -> std::path::PathBuf {
    let log = c.dir.join("second-hook-ran");
    c.config()["hooks"] = json!({kind: [
        {"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind}-broke >&2; exit 4")]},
        {"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} >> {}", log.display())]}
    ]});
    log
}

#[test]
fn failing_poststop_hook_warns_and_the_others_run() {
    // runtime.md: "the runtime MUST log a warning, but the remaining hooks and lifecycle
    // continue as if the hook had succeeded" (runtime-tools poststop_fail). runc stops at
    // the failing hook (and 1.3 makes delete exit 1). crun 1.8 runs the rest but can die of
    // SIGPIPE (exit 141) writing the state to a hook that exited without reading it.
    each_runtime_but(&["runc", "crun"], "hook_poststop_fail", |c, rt| {
        let log = failing_then_logging_hooks(c, "poststop");
        c.bundle.set_args(&["true"]);
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        c.wait_status(&c.id, "stopped");
        let out = c.rt.delete(&c.id);
        out.expect_ok(&format!("{rt}: delete despite a failing poststop hook"));
        assert!(out.stderr.contains("poststop") || rt != "berth", "{rt}: no warning: {out}");
        assert_eq!(
            fs::read_to_string(&log).unwrap_or_default(),
            "poststop\n",
            "{rt}: the second poststop hook did not run"
        );
        c.rt.state(&c.id).expect_fail("state after delete");
    });
}

#[test]
fn failing_poststart_hook_warns_and_the_others_run() {
    // runtime.md (runtime-tools poststart_fail): a warning, the remaining hooks run and the
    // lifecycle goes on. runc kills the container and fails `start` instead; crun 1.8 can
    // die of SIGPIPE writing the state to a hook that exited without reading it.
    each_runtime_but(&["runc", "crun"], "hook_poststart_fail", |c, rt| {
        let log = failing_then_logging_hooks(c, "poststart");
        c.bundle.set_sh("echo main");
        c.create().expect_ok(rt);
        let out = c.start();
        out.expect_ok(&format!("{rt}: start despite a failing poststart hook"));
        assert!(out.stderr.contains("poststart") || rt != "berth", "{rt}: no warning: {out}");
        c.wait_status(&c.id, "stopped");
        assert_eq!(
            fs::read_to_string(&log).unwrap_or_default(),
            "poststart\n",
            "{rt}: the second poststart hook did not run"
        );
        assert_eq!(c.output().trim(), "main", "{rt}: the container's process did not run");
    });
}

#[test]
fn create_container_hook_runs_in_the_container_root() {
    // runc runs createContainer hooks with the rootfs as cwd (1.1: its init starts there;
    // 1.3: it chdirs there after the mounts), so a hook can use relative paths into it.
    // crun 1.8 runs them in the bundle.
    each_runtime_but(&["crun"], "hook_cc_cwd", |c, rt| {
        let out = c.dir.join("cc.out");
        c.config()["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("pwd > {o}; test -x ./bin/busybox && echo rootfs >> {o}", o = out.display())]}]});
        c.run_sh("true").expect_ok(rt);
        let root = fs::canonicalize(c.bundle.dir.join("rootfs")).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap_or_default(), format!("{}\nrootfs\n", root.display()), "{rt}");
    });
}

#[test]
fn prestart_and_create_runtime_hooks_run_in_the_bundle() {
    // runc chdirs to the bundle to create, so these runtime-namespace hooks start there.
    each_runtime("hook_rt_cwd", |c, rt| {
        let out = c.dir.join("rt.out");
        let hook = |kind: &str| json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} $(pwd) >> {}", out.display())]}]);
        c.config()["hooks"] = json!({"prestart": hook("prestart"), "createRuntime": hook("createRuntime")});
        c.run_sh("true").expect_ok(rt);
        let b = fs::canonicalize(&c.bundle.dir).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap_or_default(),
            format!("prestart {b}\ncreateRuntime {b}\n", b = b.display()),
            "{rt}"
        );
    });
}
