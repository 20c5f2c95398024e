//! ps, pause/resume, events and update on a running container (cgroup v1 host), each
//! checked by what the container and the host see; the error cases side by side with runc.

use conformance::runtime::Runtime;
use conformance::{poll_until, Case};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn runc() -> PathBuf {
    PathBuf::from("/usr/sbin/runc")
}

fn init_pid(c: &Case) -> i64 {
    c.state()["pid"].as_i64().expect("state.pid")
}

/// The v1 cgroup directory of `pid` for `controller`.
fn cgroup_dir(pid: i64, controller: &str) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/<pid>/cgroup");
    let rel = text
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctls, path) = (it.next()?, it.next()?, it.next()?);
            ctls.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("{controller} not in /proc/{pid}/cgroup:\n{text}"));
    Path::new("/sys/fs/cgroup").join(controller).join(rel.trim_start_matches('/'))
}

fn knob(pid: i64, controller: &str, file: &str) -> String {
    let p = cgroup_dir(pid, controller).join(file);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

/// A host directory bind-mounted read-write at /obs in the container.
fn obs_dir(c: &mut Case) -> PathBuf {
    let d = c.dir.join("obs");
    fs::create_dir_all(&d).expect("mkdir obs");
    c.bundle.add_mount(json!({"destination": "/obs", "type": "bind", "source": d, "options": ["rbind", "rw"]}));
    d
}

/// create + start of `sh -c script`, detached.
fn start_sh(c: &mut Case, script: &str) {
    c.bundle.set_sh(script);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
}

fn ps_json(rt: &Runtime, id: &str) -> Vec<i64> {
    let out = rt.exec(&["ps", "--format", "json", id]);
    out.expect_ok("ps --format json");
    out.json().as_array().expect("ps json is an array").iter().map(|v| v.as_i64().expect("pid")).collect()
}

#[test]
fn ps_lists_the_containers_processes_as_json_and_table() {
    let mut c = Case::new("ops_ps");
    start_sh(&mut c, "sleep 1000 & sleep 1001 & wait");
    let init = init_pid(&c);
    let pids = poll_until("three processes in the container", Duration::from_secs(10), || {
        let p = ps_json(&c.rt, &c.id);
        (p.len() == 3).then_some(p)
    });
    assert!(pids.contains(&init), "init {init} not in {pids:?}");

    let out = c.rt.exec(&["ps", &c.id]);
    out.expect_ok("ps");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].split_whitespace().any(|f| f == "PID"), "header: {}", lines[0]);
    assert_eq!(lines.len(), 4, "header plus three processes:\n{}", out.stdout);
    assert!(out.stdout.contains("sleep 1001"), "{}", out.stdout);
    for l in &lines[1..] {
        let pid: i64 = l.split_whitespace().nth(1).expect("PID column").parse().expect("pid");
        assert!(pids.contains(&pid), "line of a foreign process: {l}");
    }

    let out = c.rt.exec(&["ps", &c.id, "-o", "pid,comm"]);
    out.expect_ok("ps -o pid,comm");
    assert_eq!(out.stdout.lines().count(), 4, "{out}");
    assert!(out.stdout.lines().skip(1).all(|l| l.ends_with("sh") || l.ends_with("sleep")), "{out}");

    // Like runc: without a PID column there is nothing to filter on.
    let out = c.rt.exec(&["ps", &c.id, "-o", "comm"]);
    out.expect_fail("ps -o comm");
    assert!(out.stderr.contains("couldn't find PID field in ps output"), "{out}");
}

#[test]
fn pause_freezes_the_container_and_resume_thaws_it() {
    let mut c = Case::new("ops_pause");
    let obs = obs_dir(&mut c);
    start_sh(&mut c, "i=0; while true; do i=$((i+1)); echo $i > /obs/count; done");
    let count = || fs::read_to_string(obs.join("count")).ok().and_then(|s| s.trim().parse::<u64>().ok());
    poll_until("the loop to count", Duration::from_secs(10), || count().filter(|n| *n > 10));

    c.rt.exec(&["pause", &c.id]).expect_ok("pause");
    assert_eq!(c.state()["status"], "paused");
    let listed = c.rt.list(&["--format", "json"]).json();
    assert_eq!(listed[0]["status"], "paused", "{listed}");
    let frozen_at = count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(), frozen_at, "the loop kept counting while paused");

    c.rt.exec(&["resume", &c.id]).expect_ok("resume");
    assert_eq!(c.state()["status"], "running");
    poll_until("the loop to count again", Duration::from_secs(10), || count().filter(|n| Some(*n) > frozen_at));
}

/// The wrong-state errors, for berth and runc alike.
#[test]
fn pause_and_resume_refuse_the_wrong_state_like_runc() {
    for (name, bin) in [("ops_pstate", None), ("ops_pstate_runc", Some(runc()))] {
        let mut c = Case::new(name);
        if let Some(b) = &bin {
            c.rt = Runtime::with_binary(b, &c.rt.root);
        }
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok("create");
        // runc freezes a created container too.
        c.rt.exec(&["pause", &c.id]).expect_ok("pause of a created container");
        assert_eq!(c.state()["status"], "paused");
        c.rt.exec(&["resume", &c.id]).expect_ok("resume of a created container");
        assert_eq!(c.state()["status"], "created");
        c.start().expect_ok("start");
        let out = c.rt.exec(&["resume", &c.id]);
        out.expect_fail("resume of a running container");
        assert!(out.stderr.contains("container not paused"), "{out}");
        c.rt.exec(&["pause", &c.id]).expect_ok("pause");
        let out = c.rt.exec(&["pause", &c.id]);
        out.expect_fail("pause of a paused container");
        assert!(out.stderr.contains("container not running"), "{out}");
        c.rt.exec(&["resume", &c.id]).expect_ok("resume");
    }
}

#[test]
fn sigkill_reaches_a_paused_container() {
    let mut c = Case::new("ops_kill_paused");
    start_sh(&mut c, "sleep 1000 & wait");
    c.rt.exec(&["pause", &c.id]).expect_ok("pause");
    c.rt.kill(&c.id, "KILL").expect_ok("kill -9");
    c.wait_status(&c.id, "stopped");
    c.rt.delete(&c.id).expect_ok("delete");
    c.assert_no_leaks("after kill -9 of a paused container and delete");
}

#[test]
fn delete_force_cleans_up_a_paused_container() {
    let mut c = Case::new("ops_delete_paused");
    start_sh(&mut c, "sleep 1000 & sleep 1001 & wait");
    let init = init_pid(&c);
    let freezer = cgroup_dir(init, "freezer");
    c.rt.exec(&["pause", &c.id]).expect_ok("pause");
    c.rt.delete_force(&c.id).expect_ok("delete --force");
    assert!(!freezer.exists(), "{} left behind", freezer.display());
    assert!(!conformance::util::pid_alive(init as i32), "init survived");
    c.assert_no_leaks("after delete --force of a paused container");
}

#[test]
fn events_stats_reports_memory_and_pids() {
    let mut c = Case::new("ops_events_stats");
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 20});
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    start_sh(&mut c, "sleep 1000 & sleep 1001 & wait");
    let pids = poll_until("three processes", Duration::from_secs(10), || {
        let p = ps_json(&c.rt, &c.id);
        (p.len() == 3).then_some(p)
    });
    let out = c.rt.exec(&["events", "--stats", &c.id]);
    out.expect_ok("events --stats");
    assert_eq!(out.stdout.lines().count(), 1, "one JSON object: {out}");
    let ev = out.json();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], c.id.as_str());
    let d = &ev["data"];
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0, "memory usage: {d}");
    assert_eq!(d["memory"]["usage"]["limit"], 64 << 20, "{d}");
    assert_eq!(d["pids"]["current"].as_u64(), Some(pids.len() as u64), "{d}");
    assert_eq!(d["pids"]["limit"], 20, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "cpu usage: {d}");
    // The keys runc prints, in runc's order.
    let keys: Vec<&str> = d.as_object().expect("data object").keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    let mut want = vec!["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"];
    want.sort();
    assert_eq!(sorted, want, "{d}");
}

/// The same container under runc and berth: the same structure (values differ in time).
#[test]
fn events_stats_has_runcs_shape() {
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m)
                if m.keys().all(|k| k.chars().next().is_some_and(|c| c.is_ascii_digit())) || m.is_empty() =>
            {
                json!("map")
            }
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| *k != "raw")
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Value::Array(_) => json!("array"),
            Value::Number(_) => json!("number"),
            other => other.clone(),
        }
    }
    let mut shapes = Vec::new();
    for (name, bin) in [("ops_shape", None), ("ops_shape_runc", Some(runc()))] {
        let mut c = Case::new(name);
        if let Some(b) = &bin {
            c.rt = Runtime::with_binary(b, &c.rt.root);
        }
        c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c.config()["linux"]["resources"]["pids"] = json!({"limit": 20});
        start_sh(&mut c, "sleep 1000 & wait");
        let out = c.rt.exec(&["events", "--stats", &c.id]);
        out.expect_ok("events --stats");
        let mut d = out.json();
        // Fields that are omitted when zero come and go with the workload.
        for p in [
            "/data/cpu/throttling",
            "/data/memory/cache",
            "/data/cpu/usage/percpu_kernel",
            "/data/cpu/usage/percpu_user",
        ] {
            if let Some(v) = d.pointer_mut(p) {
                *v = Value::Null;
            }
        }
        for k in ["kernel", "user"] {
            d["data"]["cpu"]["usage"][k] = json!(0);
        }
        shapes.push(shape(&d["data"]));
    }
    assert_eq!(shapes[0], shapes[1], "berth vs runc");
}

#[test]
fn events_stream_reports_stats_and_an_oom_kill_then_ends() {
    let mut c = Case::new("ops_events_oom");
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 16 << 20});
    let obs = obs_dir(&mut c);
    // Waits for the stream to be set up (the test touches /obs/go), then overruns the limit.
    start_sh(&mut c, "while [ ! -e /obs/go ]; do sleep 0.1; done; tail /dev/zero; sleep 1");
    let go = obs.join("go");
    let rt_bin = c.rt.bin.clone();
    let root = c.rt.root.clone();
    let id = c.id.clone();
    let handle = std::thread::spawn(move || {
        Runtime::with_binary(&rt_bin, &root)
            .cmd()
            .args(["events", "--interval", "300ms", &id])
            .timeout(Duration::from_secs(60))
            .run()
    });
    std::thread::sleep(Duration::from_millis(700));
    fs::write(&go, "").expect("touch go");
    let out = handle.join().expect("events thread");
    out.expect_ok("events");
    let events: Vec<Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(events.iter().any(|e| e["type"] == "stats" && e["id"] == c.id.as_str()), "{out}");
    assert!(events.iter().any(|e| e["type"] == "oom" && e["id"] == c.id.as_str()), "{out}");
    assert_eq!(c.state()["status"], "stopped", "the stream ends when the container stops");
}

#[test]
fn update_changes_limits_the_container_lives_under() {
    let mut c = Case::new("ops_update");
    let obs = obs_dir(&mut c);
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    // A subshell always forks (busybox runs `sleep` itself); sh reports a failed fork on stderr.
    start_sh(&mut c, "exec 2>/obs/err; while true; do sleep 0.1; (exit 0); done");
    let pid = init_pid(&c);
    c.rt.exec(&[
        "update",
        "--memory",
        "100m",
        "--cpu-share",
        "512",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "200000",
        &c.id,
    ])
    .expect_ok("update flags");
    assert_eq!(knob(pid, "memory", "memory.limit_in_bytes"), (100u64 << 20).to_string());
    assert_eq!(knob(pid, "cpu", "cpu.shares"), "512");
    assert_eq!(knob(pid, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(knob(pid, "cpu", "cpu.cfs_period_us"), "200000");

    // A later update keeps the earlier one.
    c.rt.exec(&["update", "--memory-reservation", "50m", &c.id]).expect_ok("update reservation");
    assert_eq!(knob(pid, "memory", "memory.limit_in_bytes"), (100u64 << 20).to_string());
    assert_eq!(knob(pid, "memory", "memory.soft_limit_in_bytes"), (50u64 << 20).to_string());
    assert_eq!(knob(pid, "cpu", "cpu.cfs_quota_us"), "50000");

    let file = c.dir.join("res.json");
    fs::write(&file, r#"{"pids":{"limit":50}}"#).expect("write res.json");
    c.rt.exec(&["update", "--resources", file.to_str().expect("utf-8"), &c.id]).expect_ok("update -r file");
    assert_eq!(knob(pid, "pids", "pids.max"), "50");
    // Last (sh gives up when it cannot fork). The shell alone is one task: with pids.max 1 it cannot fork a subshell.
    c.rt.cmd().args(["update", "-r", "-", &c.id]).stdin(br#"{"pids":{"limit":1}}"#).run().expect_ok("update -r -");
    assert_eq!(knob(pid, "pids", "pids.max"), "1");
    poll_until("the container to fail to fork", Duration::from_secs(10), || {
        fs::read_to_string(obs.join("err")).ok().filter(|e| e.contains("can't fork")).map(|_| ())
    });
}

#[test]
fn update_refuses_bad_values_and_changes_nothing() {
    let mut c = Case::new("ops_update_bad");
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    start_sh(&mut c, "sleep 1000");
    let pid = init_pid(&c);
    for (args, needle) in [
        (vec!["--memory", "1x"], "invalid value for memory"),
        (vec!["--cpu-share", "abc"], "invalid value for cpu-share"),
        (vec!["--memory", "100m", "--blkio-weight", "5"], "blockIO.weight"),
        (vec!["--memory", "100m", "--cpu-quota", "10"], "cpu.quota"),
        (vec!["--memory", "100m", "--memory-swap", "50m"], "memory.swap"),
        (vec!["--l3-cache-schema", "L3:0=f"], "Intel RDT"),
    ] {
        let mut a = vec!["update"];
        a.extend(args.iter().copied());
        a.push(&c.id);
        let out = c.rt.exec(&a);
        out.expect_fail(&format!("{args:?}"));
        assert!(out.stderr.contains(needle), "{args:?} should name {needle}: {out}");
        assert_eq!(out.stderr_lines().len(), 1, "one error line: {out}");
        assert_eq!(knob(pid, "memory", "memory.limit_in_bytes"), (64u64 << 20).to_string(), "{args:?} changed memory");
    }
    let out = c.rt.cmd().args(["update", "-r", "-", &c.id]).stdin(b"{\"memory\":{\"limit\":\"x\"}}").run();
    out.expect_fail("bad JSON");
    assert!(out.stderr.contains("memory.limit"), "{out}");
    c.rt.kill(&c.id, "KILL").expect_ok("kill");
    c.wait_status(&c.id, "stopped");
    let out = c.rt.exec(&["update", "--memory", "100m", &c.id]);
    out.expect_fail("update of a stopped container");
    assert!(out.stderr.contains("container not running"), "{out}");
}

#[test]
fn update_with_check_before_update_refuses_a_limit_below_usage() {
    let mut c = Case::new("ops_update_check");
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "useHierarchy": true});
    // Keeps a few MiB resident in a tmpfs the memory cgroup is charged for.
    c.bundle.add_mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=16m"]}));
    start_sh(&mut c, "head -c 8000000 /dev/zero > /mnt/fill; sleep 1000");
    let pid = init_pid(&c);
    assert_eq!(knob(pid, "memory", "memory.use_hierarchy"), "1");
    poll_until("the tmpfs to be filled", Duration::from_secs(10), || {
        (knob(pid, "memory", "memory.usage_in_bytes").parse::<u64>().unwrap_or(0) > 8_000_000).then_some(())
    });
    let out =
        c.rt.cmd()
            .args(["update", "-r", "-", &c.id])
            .stdin(br#"{"memory":{"limit":4194304,"checkBeforeUpdate":true}}"#)
            .run();
    out.expect_fail("a limit below the usage");
    // berth names the field (linux.resources.memory.limit); runc says "unable to set memory limit".
    assert!(out.stderr.contains("current usage"), "{out}");
    assert_eq!(knob(pid, "memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
}

#[test]
fn update_warns_that_kernel_memory_is_ignored() {
    let mut c = Case::new("ops_update_kmem");
    start_sh(&mut c, "sleep 1000");
    let out = c.rt.exec(&["update", "--kernel-memory", "10m", "--pids-limit", "12", &c.id]);
    out.expect_ok("update --kernel-memory");
    assert!(out.stderr.contains("Kernel memory settings are ignored"), "{out}");
    assert_eq!(knob(init_pid(&c), "pids", "pids.max"), "12");
}
