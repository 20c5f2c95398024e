//! containerd-level tests of containerd-shim-berth-v2: a private containerd started by each
//! test, `ctr` as the client, `--runtime io.containerd.berth.v2`. The runtime binary is
//! `BERTH_RUNTIME` (default: berth, as $BERTH or the workspace's newest build; set it to
//! /usr/sbin/runc for a differential run). Run as root after building the binaries:
//!   cargo build --bins && cargo test -p conformance --test shim

use std::{
    fs,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use conformance::poll_until;
use conformance::shim_fixture::{
    assert_no_leaks, children_states, container_cgroups, kill_and_remove, pipe_fds, remove, run_detached,
    shim_containerd, shim_pids, shim_socket_path, task, text, use_namespace, wait_status, Containerd, IMAGE,
    SHIM_RUNTIME,
};

/// `ctr run --rm` attached; returns (exit code, stdout, stderr).
fn run_attached(cd: &Containerd, ns: &str, id: &str, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--runtime", SHIM_RUNTIME];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, id]);
    args.extend_from_slice(cmd);
    let out = cd.ctr_raw(ns, &args).expect("ctr");
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// `ctr tasks exec` of `sh -c script` in the default namespace, attached.
fn exec(cd: &Containerd, id: &str, exec_id: &str, script: &str) -> std::process::Output {
    let args = ["tasks", "exec", "--exec-id", exec_id, id, "sh", "-c", script];
    cd.ctr_raw("default", &args).expect("ctr")
}

/// `ctr tasks exec --tty` of `sh -c script` in the default namespace; ctr wants a terminal
/// for --tty, and script(1) gives it one.
fn tty_exec(cd: &Containerd, id: &str, exec_id: &str, script: &str) -> std::process::Output {
    let cmd = format!("ctr -a {} tasks exec --tty --exec-id {exec_id} {id} sh -c '{script}'", cd.address.display());
    std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script")
}

struct Events {
    child: Child,
    file: PathBuf,
}

impl Events {
    fn start(cd: &Containerd, name: &str) -> Events {
        let file = cd.dir.path().join(format!("events-{name}.log"));
        let f = fs::File::create(&file).expect("events file");
        let child = cd.ctr_spawn("default", &["events"], Stdio::from(f)).expect("ctr");
        // ctr subscribes asynchronously; a probe event proves the subscription is live.
        poll_until("events subscription", Duration::from_secs(10), || {
            let _ = cd.ctr_raw("default", &["namespaces", "label", "default", "probe=1"]).expect("ctr");
            fs::read_to_string(&file).ok().filter(|s| s.contains("/namespaces/update"))
        });
        Events { child, file }
    }

    fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.file).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn count(&self, topic: &str, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(&format!(" {topic} ")) && l.contains(needle)).count()
    }

    fn wait_count(&self, topic: &str, needle: &str, n: usize) {
        let what = format!("{n} × {topic} {needle} in {}", self.file.display());
        poll_until(&what, Duration::from_secs(30), || (self.count(topic, needle) >= n).then_some(()));
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn shim_runs_busybox_output_and_exit_codes() {
    let cd = shim_containerd().expect("containerd");
    let ev = Events::start(&cd, "run");
    let pipes = pipe_fds(cd.pid().expect("containerd pid"));
    let (code, out, err) = run_attached(&cd, "default", "out", &[], &["echo", "hello from berth"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "hello from berth");
    for (id, status) in [("exit1", 1), ("exit255", 255)] {
        let (code, _, _) = run_attached(&cd, "default", id, &[], &["sh", "-c", &format!("exit {status}")]);
        assert_eq!(code, status);
    }
    for (id, status) in [("out", 0), ("exit1", 1), ("exit255", 255)] {
        let needle = format!("\"container_id\":\"{id}\"");
        ev.wait_count("/tasks/delete", &needle, 1);
        assert_eq!(ev.count("/tasks/create", &needle), 1, "{id} create");
        assert_eq!(ev.count("/tasks/start", &needle), 1, "{id} start");
        assert_eq!(ev.count("/tasks/exit", &needle), 1, "{id}: exactly one exit");
        assert_eq!(
            ev.count("/tasks/exit", &format!("\"exit_status\":{status}")).min(1),
            usize::from(status != 0),
            "{id}"
        );
    }
    assert_no_leaks(&cd, "default", &["out", "exit1", "exit255"]);
    poll_until("containerd's pipes back at baseline", Duration::from_secs(10), || {
        (pipe_fds(cd.pid().expect("containerd pid")) <= pipes).then_some(())
    });
}

#[test]
fn shim_kill_gives_137_and_exec_sigterm_gives_143() {
    let cd = shim_containerd().expect("containerd");
    let ev = Events::start(&cd, "kill");
    run_detached(&cd, "default", "k", &[], &["sleep", "1000"]);
    let pid = wait_status(&cd, "default", "k", "RUNNING");
    let mut exec = cd
        .ctr_spawn("default", &["tasks", "exec", "--exec-id", "sl", "k", "sleep", "1000"], Stdio::null())
        .expect("ctr");
    // The exec is running once the container's cgroup holds a second process (read on the
    // host: this test is about kill, not about `ps`).
    poll_until("exec running", Duration::from_secs(30), || {
        let procs = container_cgroups("default", "k")
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|t| t.lines().count())
            .max()
            .unwrap_or(0);
        (procs >= 2).then_some(())
    });
    let out = cd.ctr_raw("default", &["tasks", "kill", "--exec-id", "sl", "-s", "TERM", "k"]).expect("ctr");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = exec.wait().expect("ctr exec");
    assert_eq!(st.code(), Some(143), "exec killed by SIGTERM");
    let out = cd.ctr_raw("default", &["tasks", "kill", "-s", "KILL", "k"]).expect("ctr");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(wait_status(&cd, "default", "k", "STOPPED"), pid);
    let err = remove(&cd, "default", "k");
    assert!(err.contains("137"), "ctr reports the SIGKILL status: {err}");
    ev.wait_count("/tasks/delete", "\"container_id\":\"k\"", 1);
    assert_eq!(ev.count("/tasks/exit", "\"id\":\"sl\""), 1);
    assert_eq!(ev.count("/tasks/exit", "\"id\":\"sl\",\"pid\""), 1);
    assert!(ev
        .lines()
        .iter()
        .any(|l| l.contains("/tasks/exit") && l.contains("\"id\":\"sl\"") && l.contains("\"exit_status\":143")));
    assert_eq!(ev.count("/tasks/exit", "\"id\":\"k\""), 1);
    assert!(ev
        .lines()
        .iter()
        .any(|l| l.contains("/tasks/exit") && l.contains("\"id\":\"k\"") && l.contains("\"exit_status\":137")));
    assert_no_leaks(&cd, "default", &["k"]);
}

#[test]
fn shim_exec_with_and_without_tty_using_binary_name() {
    let cd = shim_containerd().expect("containerd");
    let ev = Events::start(&cd, "exec");
    // BinaryName through runtime options (runtimeoptions config_path, what ctr can send); it
    // overrides BERTH_RUNTIME; the same binary the rest of the tests use.
    let binary = conformance::shim_fixture::runtime_binary();
    let cfg = cd.dir.path().join("berth-runtime.toml");
    fs::write(&cfg, format!("BinaryName = \"{binary}\"\n")).expect("runtime config");
    let cfg = cfg.to_string_lossy().into_owned();
    run_detached(&cd, "default", "ex", &["--runtime-config-path", &cfg], &["sleep", "1000"]);
    wait_status(&cd, "default", "ex", "RUNNING");
    let out = exec(&cd, "ex", "plain", "echo exec-out; echo exec-err >&2; exit 4");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout).trim(), "exec-out");
    assert!(text(&out.stderr).contains("exec-err"));
    let out = tty_exec(&cd, "ex", "tty", "tty; echo tty-out; exit 5");
    let o = text(&out.stdout);
    assert!(o.contains("/dev/pts/"), "tty output: {o:?}");
    assert!(o.contains("tty-out"), "tty output: {o:?}");
    assert_eq!(out.status.code(), Some(5));
    for id in ["plain", "tty"] {
        let needle = format!("\"exec_id\":\"{id}\"");
        ev.wait_count("/tasks/exec-started", &needle, 1);
        assert_eq!(ev.count("/tasks/exec-added", &needle), 1);
    }
    kill_and_remove(&cd, "default", "ex");
    assert_no_leaks(&cd, "default", &["ex"]);
}

#[test]
fn shim_ps_pause_resume_metrics_kill_all() {
    let cd = shim_containerd().expect("containerd");
    let ev = Events::start(&cd, "ps");
    run_detached(&cd, "default", "p", &[], &["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let pid = wait_status(&cd, "default", "p", "RUNNING");
    let out = cd.ctr_raw("default", &["tasks", "exec", "-d", "--exec-id", "bg", "p", "sleep", "1000"]).expect("ctr");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ps = poll_until("4 processes", Duration::from_secs(30), || {
        let ps = text(&cd.ctr_raw("default", &["tasks", "ps", "p"]).expect("ctr").stdout);
        (ps.lines().count() == 5).then_some(ps)
    });
    assert!(ps.lines().any(|l| l.starts_with(&pid.to_string())), "{ps}");
    assert!(ps.contains("bg"), "exec id shown for the exec's pid: {ps}");

    assert!(cd.ctr_raw("default", &["tasks", "pause", "p"]).expect("ctr").status.success());
    assert_eq!(task(&cd, "default", "p").map(|t| t.1).as_deref(), Some("PAUSED"));
    assert!(cd.ctr_raw("default", &["tasks", "resume", "p"]).expect("ctr").status.success());
    assert_eq!(task(&cd, "default", "p").map(|t| t.1).as_deref(), Some("RUNNING"));
    ev.wait_count("/tasks/paused", "\"container_id\":\"p\"", 1);
    ev.wait_count("/tasks/resumed", "\"container_id\":\"p\"", 1);

    let m = text(&cd.ctr_raw("default", &["tasks", "metrics", "p"]).expect("ctr").stdout);
    for key in ["memory.usage_in_bytes", "cpuacct.usage", "pids.current"] {
        assert!(m.contains(key), "metrics lack {key}: {m}");
    }
    let pids_line = m.lines().find(|l| l.starts_with("pids.current")).unwrap_or_default();
    assert!(pids_line.split_whitespace().nth(1) == Some("4"), "{pids_line}");

    assert!(cd.ctr_raw("default", &["tasks", "kill", "--all", "-s", "KILL", "p"]).expect("ctr").status.success());
    wait_status(&cd, "default", "p", "STOPPED");
    let err = remove(&cd, "default", "p");
    assert!(err.contains("137"), "{err}");
    assert_no_leaks(&cd, "default", &["p"]);
}

#[test]
fn shim_reports_oom_and_137() {
    let cd = shim_containerd().expect("containerd");
    let ev = Events::start(&cd, "oom");
    let (code, _, err) = run_attached(
        &cd,
        "default",
        "oom",
        &["--memory-limit", "16777216"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    assert_eq!(code, 137, "{err}");
    ev.wait_count("/tasks/oom", "\"container_id\":\"oom\"", 1);
    ev.wait_count("/tasks/exit", "\"exit_status\":137", 1);
    assert_no_leaks(&cd, "default", &["oom"]);
}

#[test]
fn shim_reaps_100_double_forked_children() {
    let cd = shim_containerd().expect("containerd");
    // The container's orphans reparent to its own init (pid namespace); what reaches the shim
    // are inits, execs and the runtime's intermediate processes, all of which must be reaped
    // without being mistaken for the container.
    run_detached(
        &cd,
        "default",
        "z",
        &[],
        &["sh", "-c", "for i in $(seq 100); do sh -c 'sleep 0.05 &'; done; echo done > /tmp/done; sleep 1000"],
    );
    let pid = wait_status(&cd, "default", "z", "RUNNING");
    let shim = shim_pids(&cd.address)[0];
    poll_until("loop finished", Duration::from_secs(60), || {
        fs::read_to_string(format!("/proc/{pid}/root/tmp/done")).ok()
    });
    poll_until("no zombies under the shim", Duration::from_secs(5), || {
        let zombies = children_states(shim).into_iter().filter(|(_, s)| *s == 'Z').count();
        (zombies == 0).then_some(())
    });
    assert_eq!(
        task(&cd, "default", "z").map(|t| t.1).as_deref(),
        Some("RUNNING"),
        "orphans' exits are not the container's"
    );
    for i in 0..20 {
        let out = exec(&cd, "z", &format!("e{i}"), "for j in 1 2 3 4 5; do sh -c 'sleep 0.05 &'; done; exit 7");
        assert_eq!(out.status.code(), Some(7));
    }
    poll_until("no zombies under the shim after execs", Duration::from_secs(5), || {
        let zombies = children_states(shim).into_iter().filter(|(_, s)| *s == 'Z').count();
        (zombies == 0).then_some(())
    });
    kill_and_remove(&cd, "default", "z");
    assert_no_leaks(&cd, "default", &["z"]);
}

#[test]
fn shim_survives_containerd_restart() {
    let mut cd = shim_containerd().expect("containerd");
    let log = cd.dir.path().join("tick.log");
    let uri = format!("file://{}", log.display());
    run_detached(
        &cd,
        "default",
        "r",
        &["--log-uri", &uri],
        &["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"],
    );
    let pid = wait_status(&cd, "default", "r", "RUNNING");
    cd.kill9();
    let before = fs::read_to_string(&log).unwrap_or_default().lines().count();
    poll_until("output while containerd is down", Duration::from_secs(10), || {
        (fs::read_to_string(&log).unwrap_or_default().lines().count() > before + 2).then_some(())
    });
    cd.restart_after_kill9().expect("containerd restart");
    assert_eq!(task(&cd, "default", "r"), Some((pid, "RUNNING".to_string())));
    // The container exits while containerd is down: the real status is reported afterwards.
    cd.kill9();
    nix_kill(pid, libc::SIGKILL);
    cd.restart_after_kill9().expect("containerd restart");
    wait_status(&cd, "default", "r", "STOPPED");
    let err = remove(&cd, "default", "r");
    assert!(err.contains("137"), "real exit status, not 255: {err}");
    assert_no_leaks(&cd, "default", &["r"]);
}

fn nix_kill(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a pid this test owns (the container's init).
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill {pid}");
}

#[test]
fn shim_kill9_is_cleaned_up_by_containerd() {
    let cd = shim_containerd().expect("containerd");
    run_detached(&cd, "default", "d", &[], &["sleep", "1000"]);
    let pid = wait_status(&cd, "default", "d", "RUNNING");
    let shims = shim_pids(&cd.address);
    assert_eq!(shims.len(), 1);
    // SAFETY: kill(2) of the shim this test started through containerd.
    unsafe { libc::kill(shims[0] as i32, libc::SIGKILL) };
    poll_until("task gone", Duration::from_secs(30), || task(&cd, "default", "d").is_none().then_some(()));
    poll_until("container process gone", Duration::from_secs(30), || {
        (!PathBuf::from(format!("/proc/{pid}")).exists()).then_some(())
    });
    let out = cd.ctr_raw("default", &["containers", "rm", "d"]).expect("ctr");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_leaks(&cd, "default", &["d"]);
}

#[test]
fn shim_socket_path_fits_76_char_namespace_and_64_char_id() {
    let cd = shim_containerd().expect("containerd");
    let ns = format!("n{}", "s".repeat(75));
    let id = format!("i{}", "d".repeat(63));
    assert_eq!((ns.len(), id.len()), (76, 64));
    use_namespace(&cd, &ns).expect("image import");
    let (code, out, err) = run_attached(&cd, &ns, &id, &[], &["echo", "long"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "long");
    assert_no_leaks(&cd, &ns, &[&id]);
}

#[test]
fn shim_socket_is_private_and_oom_score_above_containerd() {
    let cd = shim_containerd().expect("containerd");
    run_detached(&cd, "default", "s", &[], &["sleep", "1000"]);
    wait_status(&cd, "default", "s", "RUNNING");
    let sock = shim_socket_path(&cd.address, "default", "s");
    let md = fs::metadata(&sock).expect("path socket exists (not abstract)");
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    let dir = fs::metadata(sock.parent().expect("dir")).expect("dir");
    assert_eq!(dir.permissions().mode() & 0o077, 0, "socket dir not reachable by others");
    let shim = shim_pids(&cd.address)[0];
    let score = |p: u32| -> i32 {
        fs::read_to_string(format!("/proc/{p}/oom_score_adj")).unwrap_or_default().trim().parse().unwrap_or(-9999)
    };
    assert_eq!(score(shim), (score(cd.pid().expect("containerd pid")) + 1).min(1000));
    kill_and_remove(&cd, "default", "s");
    assert_no_leaks(&cd, "default", &["s"]);
}

#[test]
fn shim_one_per_pod_by_sandbox_annotation() {
    let cd = shim_containerd().expect("containerd");
    let ann = "io.kubernetes.cri.sandbox-id=pod1";
    run_detached(&cd, "default", "pod1", &["--annotation", ann], &["sleep", "1000"]);
    run_detached(&cd, "default", "app", &["--annotation", ann], &["sleep", "1000"]);
    wait_status(&cd, "default", "app", "RUNNING");
    assert_eq!(shim_pids(&cd.address).len(), 1, "one shim for the pod");
    kill_and_remove(&cd, "default", "pod1");
    assert_eq!(task(&cd, "default", "app").map(|t| t.1).as_deref(), Some("RUNNING"));
    assert_eq!(shim_pids(&cd.address).len(), 1, "shim stays while the pod has containers");
    kill_and_remove(&cd, "default", "app");
    assert_no_leaks(&cd, "default", &["pod1", "app"]);
}

#[test]
fn shim_failed_create_leaves_nothing() {
    let cd = shim_containerd().expect("containerd");
    let (code, _, err) = run_attached(&cd, "default", "bad", &[], &["/does/not/exist"]);
    assert_ne!(code, 0);
    assert!(err.contains("exist") || err.contains("no such file"), "{err}");
    assert!(task(&cd, "default", "bad").is_none(), "no half-created task");
    let _ = cd.ctr_raw("default", &["containers", "rm", "bad"]).expect("ctr");
    assert_no_leaks(&cd, "default", &["bad"]);
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn thread_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn shim_fds_and_threads_return_to_baseline_after_execs() {
    let cd = shim_containerd().expect("containerd");
    run_detached(&cd, "default", "fd", &[], &["sleep", "1000"]);
    wait_status(&cd, "default", "fd", "RUNNING");
    let shim = shim_pids(&cd.address)[0];
    let tty_exec_n = |n: usize| {
        let out = tty_exec(&cd, "fd", &format!("t{n}"), "echo x");
        assert!(out.status.success(), "tty exec {n}");
    };
    let exec_n = |n: usize| {
        let out = exec(&cd, "fd", &format!("p{n}"), "echo x");
        assert!(out.status.success(), "exec {n}: {}", text(&out.stderr));
    };
    // Warm-up: the first exec starts the shim's lazily created pieces (thread pool growth).
    exec_n(0);
    tty_exec_n(0);
    let _ = cd.ctr_raw("default", &["tasks", "metrics", "fd"]).expect("ctr");
    let fds = fd_count(shim);
    let threads = thread_count(shim);
    for n in 1..=30 {
        exec_n(n);
        if n % 3 == 0 {
            tty_exec_n(n);
        }
        let _ = cd.ctr_raw("default", &["tasks", "metrics", "fd"]).expect("ctr");
        let _ = cd.ctr_raw("default", &["tasks", "kill", "-s", "0", "fd"]).expect("ctr");
        let failed = cd
            .ctr_raw("default", &["tasks", "exec", "--exec-id", &format!("missing{n}"), "fd", "/does/not/exist"])
            .expect("ctr");
        assert!(!failed.status.success());
    }
    poll_until("shim fds back at baseline", Duration::from_secs(10), || (fd_count(shim) == fds).then_some(()));
    // The ttrpc worker pool may keep one more idle worker than at the baseline (its max is 3
    // idle); what must not happen is growth with the number of execs.
    poll_until("shim threads bounded", Duration::from_secs(10), || (thread_count(shim) <= threads + 1).then_some(()));
    kill_and_remove(&cd, "default", "fd");
    assert_no_leaks(&cd, "default", &["fd"]);
}

#[test]
fn shim_passes_stdin_and_its_eof() {
    let cd = shim_containerd().expect("containerd");
    run_detached(&cd, "default", "in", &[], &["sleep", "1000"]);
    wait_status(&cd, "default", "in", "RUNNING");
    for (args, id) in [
        (vec!["run", "--rm", "--runtime", SHIM_RUNTIME, IMAGE, "cat1", "cat"], "run"),
        (vec!["tasks", "exec", "--exec-id", "cat2", "in", "cat"], "exec"),
    ] {
        let mut child = std::process::Command::new("ctr")
            .arg("-a")
            .arg(&cd.address)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"line one\nline two\n").expect("write stdin");
        }
        let out = child.wait_with_output().expect("ctr");
        assert_eq!(out.status.code(), Some(0), "{id}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "line one\nline two\n", "{id}");
    }
    kill_and_remove(&cd, "default", "in");
    assert_no_leaks(&cd, "default", &["in", "cat1"]);
}

/// Names of a process's threads (`/proc/<pid>/task/*/comm`), sorted.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn shim_pod_threads_do_not_grow_with_its_containers() {
    let cd = shim_containerd().expect("containerd");
    let ann = "io.kubernetes.cri.sandbox-id=tpod";
    let ids = ["tpod", "t1", "t2", "t3", "t4"];
    run_detached(&cd, "default", ids[0], &["--annotation", ann], &["sleep", "1000"]);
    wait_status(&cd, "default", ids[0], "RUNNING");
    let shim = shim_pids(&cd.address)[0];
    // Idle: containerd's Wait for the task is outstanding, nothing else.
    std::thread::sleep(Duration::from_millis(500));
    let one = thread_names(shim);
    for id in &ids[1..] {
        run_detached(&cd, "default", id, &["--annotation", ann], &["sleep", "1000"]);
        wait_status(&cd, "default", id, "RUNNING");
    }
    assert_eq!(shim_pids(&cd.address), [shim], "one shim for the pod");
    std::thread::sleep(Duration::from_millis(500));
    let five = thread_names(shim);
    eprintln!("shim threads: 1 container {} {one:?}; 5 containers {} {five:?}", one.len(), five.len());
    for id in ids {
        let _ = cd.ctr_raw("default", &["tasks", "kill", "-s", "KILL", id]);
    }
    for id in ids {
        wait_status(&cd, "default", id, "STOPPED");
        remove(&cd, "default", id);
    }
    assert!(five.len() <= one.len(), "idle pod shim grew from {one:?} to {five:?} threads");
    assert_no_leaks(&cd, "default", &ids);
}
