//! The shim's failpoint walk (issue 16, "Keep it found"): a containerd-shim-berth-v2 built
//! with the `failpoints` feature dies abruptly (SIGKILL of itself) at a named step of its
//! Create, Start, Exec or Delete handling, right after it reported a container's exit, or in
//! the `delete` subcommand containerd runs to clean up after a dead shim. For every step it
//! lists, a private containerd runs a container through that shim with the step armed, the
//! shim dies there, and the container is then removed as a user would (`ctr task rm -f`,
//! `ctr container rm`). Nothing may be left: processes (an exec'd one too), cgroups in every
//! hierarchy, mounts, the bundle (the shim's state), berth's state, the shim's socket, the
//! snapshot; and the id must run again cleanly.
//!
//! Two recoveries are walked:
//! - containerd stays up and reacts to the shim's closed connection by running the shim's
//!   `delete` subcommand (every step; a `cleanup:` step is reached that way, by a kill -9 of
//!   the shim daemon). A cleanup that dies is not run again by containerd 1.6 until it
//!   starts again, so after a `cleanup:` step containerd is restarted before the removal.
//! - containerd dies too (the `bootstrap:`, `create:`, `start:` and `exec:` steps): the shim stops at
//!   the step, containerd is killed (SIGKILL, by its pid), then the shim, and containerd is
//!   started again on the same root and state; its recovery (the `delete` subcommand for every
//!   bundle whose shim does not answer) plus the user's removal must leave nothing.
//!
//! The feature build is kept apart (target/failpoints/shim), so the ordinary binaries never
//! carry failpoints: $BERTH_SHIM_FAILPOINTS names a prebuilt one (the Makefile's
//! `conformance` target builds it), else the test builds it once with cargo in a target dir
//! of its own. The shim is armed through a file containerd's environment names
//! (BERTH_SHIM_FAILPOINT_FILE, which containerd passes on to the shims it starts), so one
//! containerd serves the whole walk.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use conformance::{
    containerd::Options,
    leak,
    shim_fixture::{
        container_cgroups, runtime_binary, shim_dir, shim_pids, shim_socket_path, use_namespace, write_image,
        Containerd, IMAGE, SHIM_BINARY, SHIM_RUNTIME,
    },
    util::poll_until,
};

/// The namespaces of the two walks (they may run at once: ids and cgroup parents apart).
const NS: &str = "shimfp";
const NS_RESTART: &str = "shimfr";
/// berth's root as the shim passes it by default (shim/src/runtime.rs DEFAULT_ROOT); the
/// namespace is appended.
const BERTH_ROOT: &str = "/run/containerd/berth";

/// The shim binary with failpoints.
fn failpoint_shim() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        conformance::failpoint_build::failpoint_binary("BERTH_SHIM_FAILPOINTS", "containerd-shim-berth-v2", SHIM_BINARY)
    })
}

/// Every step the binary knows (`BERTH_SHIM_FAILPOINT=list`).
fn steps() -> Vec<String> {
    let out =
        Command::new(failpoint_shim()).env("BERTH_SHIM_FAILPOINT", "list").output().expect("run the failpoint shim");
    assert!(out.status.success(), "BERTH_SHIM_FAILPOINT=list: {out:?}");
    let v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert!(v.len() > 5, "too few failpoints listed: {v:?}");
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Walk {
    cd: Containerd,
    ns: &'static str,
    /// The armed step (empty: none); the shims read it at each step.
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Walk {
    fn start(ns: &'static str) -> Walk {
        let bin = failpoint_shim();
        assert_eq!(
            bin.file_name().and_then(|n| n.to_str()),
            Some(SHIM_BINARY),
            "containerd finds the shim by this name: {}",
            bin.display()
        );
        let dir = tempfile::Builder::new().prefix("berth-shimfp-").tempdir().expect("tempdir");
        let file = dir.path().join("failpoint");
        fs::write(&file, "").expect("failpoint file");
        let cd = Containerd::start_with(Options {
            shim_dir: bin.parent().map(Path::to_path_buf),
            env: vec![
                ("BERTH_RUNTIME".into(), runtime_binary()),
                ("BERTH_SHIM_FAILPOINT_FILE".into(), file.to_string_lossy().into_owned()),
            ],
            ..Default::default()
        })
        .expect("containerd");
        write_image(&cd.dir.path().join("busybox-oci.tar")).expect("image");
        use_namespace(&cd, ns).expect("image import");
        Walk { cd, ns, file, _dir: dir }
    }

    fn arm(&self, step: &str) {
        fs::write(&self.file, step).expect("arm");
    }

    fn hits(&self) -> String {
        let mut p = self.file.clone().into_os_string();
        p.push(".hits");
        fs::read_to_string(p).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        self.cd.ctr_raw(self.ns, args).expect("ctr")
    }

    /// `ctr` in the background (its output is not read): for a request the shim never
    /// answers because it stopped at the step.
    fn ctr_child(&self, args: &[&str]) -> std::process::Child {
        self.cd.ctr_spawn(self.ns, args, std::process::Stdio::null()).expect("ctr")
    }

    /// Our shims stopped (SIGSTOP) at an armed `<step> stop`.
    fn stopped_shims(&self) -> Vec<u32> {
        shim_pids(&self.cd.address)
            .into_iter()
            .filter(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) == Some("T")
            })
            .collect()
    }

    /// SIGKILL to our shims (those serving this containerd): pids the walk found itself.
    fn kill_shims(&self, pids: &[u32]) {
        for pid in pids {
            if let Ok(pid) = i32::try_from(*pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }

    fn ok(&self, args: &[&str]) {
        let out = self.ctr(args);
        assert!(out.status.success(), "ctr {}: {}", args.join(" "), text(&out.stderr));
    }

    fn run_detached(&self, id: &str) -> std::process::Output {
        self.ctr(&["run", "-d", "--runtime", SHIM_RUNTIME, IMAGE, id, "sleep", "1000"])
    }

    /// The task's status in `ctr tasks ls`, if it is listed.
    fn task(&self, id: &str) -> Option<String> {
        text(&self.ctr(&["tasks", "ls"]).stdout).lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).unwrap_or(&"").to_string())
        })
    }

    fn wait_status(&self, id: &str, status: &str) {
        poll_until(&format!("{id} {status}"), Duration::from_secs(30), || {
            (self.task(id).as_deref() == Some(status)).then_some(())
        });
    }

    fn listed(&self, what: &str, id: &str) -> bool {
        text(&self.ctr(&[what, "ls", "-q"]).stdout).lines().any(|l| l.trim() == id)
    }

    /// A container's whole life on the disarmed shim: the id is usable.
    fn run_cleanly(&self, id: &str) {
        let out = self.run_detached(id);
        assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
        self.wait_status(id, "RUNNING");
        self.ok(&["tasks", "kill", "-s", "KILL", id]);
        self.wait_status(id, "STOPPED");
        self.ok(&["tasks", "rm", id]);
        self.ok(&["containers", "rm", id]);
    }

    /// Everything a container of `id` could have left, after its removal.
    fn leftovers(&self, id: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.listed("tasks", id) {
            problems.push("task still listed".to_string());
        }
        if self.listed("containers", id) {
            problems.push("container still listed".to_string());
        }
        if self.listed("snapshots", id) {
            problems.push("snapshot left".to_string());
        }
        if !shim_pids(&self.cd.address).is_empty() {
            problems.push(format!("shims left: {:?}", shim_pids(&self.cd.address)));
        }
        for (pid, cmd) in leak::processes_mentioning(&[id]) {
            problems.push(format!("process left: {pid} {cmd:?}"));
        }
        let mut cgroups = container_cgroups(self.ns, id);
        cgroups.extend(leak::cgroup_dirs_containing(id));
        cgroups.sort();
        cgroups.dedup();
        for cg in cgroups {
            problems.push(format!("cgroup left: {}", cg.display()));
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mountinfo.lines().filter(|l| l.contains(id)) {
            problems.push(format!("mount left: {l}"));
        }
        let d = self.cd.dir.path();
        for dir in [
            d.join("state/io.containerd.runtime.v2.task").join(self.ns).join(id),
            d.join("root/io.containerd.runtime.v2.task").join(self.ns).join(id),
            Path::new(BERTH_ROOT).join(self.ns).join(id),
            shim_socket_path(&self.cd.address, self.ns, id),
        ] {
            if dir.exists() {
                problems.push(format!("left: {}", dir.display()));
            }
        }
        problems
    }

    /// Waits (bounded) until nothing of `id` is left, else fails with what is.
    fn assert_clean(&self, id: &str, when: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = self.leftovers(id);
            if left.is_empty() {
                return;
            }
            if std::time::Instant::now() >= deadline {
                panic!("{when}:\n{}", left.join("\n"));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The exec steps at which the exec'd process runs.
const EXEC_RUNNING: &[&str] = &["exec:runtime-execed", "exec:started", "exec:event-published"];

/// The last argument of the walk's exec'd shell.
fn exec_marker(id: &str) -> String {
    format!("exec-of-{id}")
}

/// The walk's exec'd shell in the container of `id` (not the `ctr tasks exec` naming it).
fn exec_processes(id: &str) -> Vec<i32> {
    leak::processes_mentioning(&[&exec_marker(id)])
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("sh "))
        .map(|(pid, _)| pid)
        .collect()
}

impl Drop for Walk {
    /// berth's root for the namespace, left empty by the walk's last removal.
    fn drop(&mut self) {
        let _ = fs::remove_dir(Path::new(BERTH_ROOT).join(self.ns));
    }
}

/// Waits for a process the walk started, killing it after `secs`; whether it exited 0.
fn wait_bounded(mut child: std::process::Child, secs: u64) -> bool {
    let done = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.success();
        }
        if std::time::Instant::now() >= done {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One step: run a container with the step armed, see the shim die there (and, with
/// `restart`, containerd too: the shim stops at the step, containerd is killed, then the
/// shim), remove the container as a user would, check nothing is left, and run the id again.
fn walk_one(w: &mut Walk, id: &str, step: &str, restart: bool) {
    let op = step.split(':').next().unwrap_or_default();
    // Stopped rather than killed at the step: to kill containerd first, or to see what an
    // exec left running before the shim dies.
    let stop = restart || op == "exec";
    let armed = if stop { format!("{step} stop") } else { step.to_string() };
    let mut said = String::new();
    // The request left waiting on a stopped shim (restart): it fails once containerd is gone.
    let mut pending = None;
    // A cleanup that died is run again only by a containerd that starts again.
    let mut restart_containerd = restart;
    match op {
        "bootstrap" | "create" | "start" if restart => {
            w.arm(&armed);
            pending = Some(w.ctr_child(&["run", "-d", "--runtime", SHIM_RUNTIME, IMAGE, id, "sleep", "1000"]));
        }
        "bootstrap" | "create" | "start" => {
            w.arm(step);
            let out = w.run_detached(id);
            assert!(!out.status.success(), "ctr run -d succeeded although the shim should have died at {step}");
            said = text(&out.stderr);
        }
        "exec" => {
            let out = w.run_detached(id);
            assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
            w.wait_status(id, "RUNNING");
            w.arm(&armed);
            // The exec'd shell names the id in its arguments: the leak check sees it if it survives.
            let marker = exec_marker(id);
            pending =
                Some(w.ctr_child(&["tasks", "exec", "--exec-id", "x1", id, "sh", "-c", "sleep 1000; true", &marker]));
        }
        "exit" | "delete" => {
            let out = w.run_detached(id);
            assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
            w.wait_status(id, "RUNNING");
            if op == "exit" {
                w.arm(step);
                // The shim may die (reporting the exit) before it answers the Kill.
                let _ = w.ctr(&["tasks", "kill", "-s", "KILL", id]);
            } else {
                w.ok(&["tasks", "kill", "-s", "KILL", id]);
                w.wait_status(id, "STOPPED");
                w.arm(step);
                // containerd takes a shim that dies in Delete as gone: the answer may be either.
                let _ = w.ctr(&["tasks", "rm", id]);
            }
        }
        "cleanup" => {
            let out = w.run_detached(id);
            assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
            w.wait_status(id, "RUNNING");
            w.arm(step);
            // A shim killed from outside: containerd runs the `delete` subcommand, which dies.
            w.kill_shims(&shim_pids(&w.cd.address));
            restart_containerd = true;
        }
        other => panic!("failpoint {step}: unknown operation {other:?}"),
    }
    poll_until(&format!("the shim to die at {step} (ctr: {said})"), Duration::from_secs(30), || {
        w.hits().lines().any(|l| l == step).then_some(())
    });
    if stop {
        let stopped = poll_until(&format!("the shim to stop at {step}"), Duration::from_secs(10), || {
            Some(w.stopped_shims()).filter(|v| !v.is_empty())
        });
        if EXEC_RUNNING.contains(&step) {
            assert!(!exec_processes(id).is_empty(), "no exec'd process running at {step}");
        }
        if restart {
            w.cd.kill9();
        }
        w.kill_shims(&stopped);
    }
    w.arm("");
    poll_until("the dead shim to be gone", Duration::from_secs(30), || {
        shim_pids(&w.cd.address).is_empty().then_some(())
    });
    let log_before = w.cd.log().len();
    if restart_containerd {
        w.cd.restart_after_kill9().expect("containerd starts again");
    }
    // What a user does with a container whose shim died.
    let _ = w.ctr(&["tasks", "rm", "-f", id]);
    let out = w.ctr(&["containers", "rm", id]);
    if !out.status.success() && w.listed("containers", id) {
        panic!("ctr containers rm {id} after the shim died at {step}: {}", text(&out.stderr));
    }
    // The request that met the stopped shim; `ctr tasks exec` keeps copying the exec'd
    // process's output until that process is gone, which takes the cleanup.
    if let Some(child) = pending.take() {
        assert!(!wait_bounded(child, 30), "ctr succeeded although the shim died at {step}");
    }
    w.assert_clean(id, &format!("after the shim died at {step} and removal"));
    if restart {
        // The bundle went through containerd's recovery at start, not through a cleanup
        // after the shim's connection closed: that containerd was dead by then.
        let recovered = format!("msg=\"cleaning up after shim disconnected\" id={id} ");
        let log = w.cd.log();
        assert!(
            log.get(log_before..).is_some_and(|l| l.contains(&recovered)),
            "the restarted containerd did not clean up after the shim of {id}"
        );
    }
    w.run_cleanly(id);
    w.assert_clean(id, &format!("after reusing the id ({step})"));
}

/// Walks `steps`, each on a fresh id; fails with every step that left something.
fn walk(w: &mut Walk, prefix: &str, steps: &[String], restart: bool) {
    let began = std::time::Instant::now();
    let mut failed = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        eprintln!("shim failpoint {step}{}", if restart { " (containerd restarted)" } else { "" });
        let id = format!("{prefix}{n}-{}", std::process::id());
        let t = std::time::Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walk_one(w, &id, step, restart)));
        eprintln!("  {step}: {:?}", t.elapsed());
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{step}: {msg}"));
            w.arm("");
        }
    }
    eprintln!("walked {} shim failpoints in {:?}", steps.len(), began.elapsed());
    assert!(
        failed.is_empty(),
        "{} of {} shim failpoints left something:\n{}\ncontainerd log:\n{}",
        failed.len(),
        steps.len(),
        failed.join("\n"),
        w.cd.log()
    );
}

#[test]
fn every_shim_failpoint_leaves_nothing_after_removal() {
    let all = steps();
    for op in ["create:", "start:", "exec:", "delete:", "cleanup:"] {
        assert!(all.iter().any(|s| s.starts_with(op)), "no failpoint of {op} listed: {all:?}");
    }
    let mut w = Walk::start(NS);
    walk(&mut w, "sfp", &all, false);
}

#[test]
fn shim_and_containerd_dead_at_each_create_start_and_exec_step_leave_nothing_after_restart() {
    let steps: Vec<String> = steps()
        .into_iter()
        .filter(|s| ["bootstrap:", "create:", "start:", "exec:"].iter().any(|op| s.starts_with(op)))
        .collect();
    assert!(steps.len() >= 10, "too few create, start and exec failpoints: {steps:?}");
    let mut w = Walk::start(NS_RESTART);
    walk(&mut w, "sfr", &steps, true);
}

#[test]
fn the_ordinary_shim_has_no_failpoints() {
    let out = Command::new(shim_dir().join(SHIM_BINARY))
        .arg("-v")
        .env("BERTH_SHIM_FAILPOINT", "list")
        .output()
        .expect("run the shim");
    let stdout = text(&out.stdout);
    assert!(out.status.success() && !stdout.contains("create:"), "the ordinary shim lists failpoints: {out:?}");
}
