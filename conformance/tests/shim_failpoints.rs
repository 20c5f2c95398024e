//! The shim's failpoint walk (issue 16, "Keep it found"): a containerd-shim-berth-v2 built
//! with the `failpoints` feature dies abruptly (SIGKILL of itself) at a named step of its
//! Create, Start or Delete handling, or right after it reported a container's exit. For every
//! step it lists, a private containerd runs a container through that shim with the step
//! armed, the shim dies there, and the container is then removed as a user would
//! (`ctr task rm -f`, `ctr container rm`). Nothing may be left: processes, cgroups in every
//! hierarchy, mounts, the bundle (the shim's state), berth's state, the shim's socket, the
//! snapshot; and the id must run again cleanly.
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

const NS: &str = "shimfp";
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
    /// The armed step (empty: none); the shims read it at each step.
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Walk {
    fn start() -> Walk {
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
        use_namespace(&cd, NS).expect("image import");
        Walk { cd, file, _dir: dir }
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
        self.cd.ctr_raw(NS, args).expect("ctr")
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
        let mut cgroups = container_cgroups(NS, id);
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
            d.join("state/io.containerd.runtime.v2.task").join(NS).join(id),
            d.join("root/io.containerd.runtime.v2.task").join(NS).join(id),
            Path::new(BERTH_ROOT).join(NS).join(id),
            shim_socket_path(&self.cd.address, NS, id),
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

/// One step: run a container with the step armed, see the shim die there, remove the
/// container as a user would, check nothing is left, and run the id again.
fn walk_one(w: &Walk, n: usize, step: &str) {
    let id = format!("sfp{n}-{}", std::process::id());
    let op = step.split(':').next().unwrap_or_default();
    let mut said = String::new();
    match op {
        "bootstrap" | "create" | "start" => {
            w.arm(step);
            let out = w.run_detached(&id);
            assert!(!out.status.success(), "ctr run -d succeeded although the shim should have died at {step}");
            said = text(&out.stderr);
        }
        "exit" | "delete" => {
            let out = w.run_detached(&id);
            assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
            w.wait_status(&id, "RUNNING");
            if op == "exit" {
                w.arm(step);
            }
            if op == "exit" {
                // The shim may die (reporting the exit) before it answers the Kill.
                let _ = w.ctr(&["tasks", "kill", "-s", "KILL", &id]);
            } else {
                w.ok(&["tasks", "kill", "-s", "KILL", &id]);
            }
            if op == "delete" {
                w.wait_status(&id, "STOPPED");
                w.arm(step);
                // containerd takes a shim that dies in Delete as gone: the answer may be either.
                let _ = w.ctr(&["tasks", "rm", &id]);
            }
        }
        other => panic!("failpoint {step}: unknown operation {other:?}"),
    }
    poll_until(&format!("the shim to die at {step} (ctr: {said})"), Duration::from_secs(30), || {
        w.hits().lines().any(|l| l == step).then_some(())
    });
    w.arm("");
    poll_until("the dead shim to be gone", Duration::from_secs(30), || {
        shim_pids(&w.cd.address).is_empty().then_some(())
    });
    // What a user does with a container whose shim died.
    let _ = w.ctr(&["tasks", "rm", "-f", &id]);
    let out = w.ctr(&["containers", "rm", &id]);
    if !out.status.success() && w.listed("containers", &id) {
        panic!("ctr containers rm {id} after the shim died at {step}: {}", text(&out.stderr));
    }
    w.assert_clean(&id, &format!("after the shim died at {step} and removal"));
    w.run_cleanly(&id);
    w.assert_clean(&id, &format!("after reusing the id ({step})"));
}

#[test]
fn every_shim_failpoint_leaves_nothing_after_removal() {
    let all = steps();
    for op in ["create:", "start:", "delete:"] {
        assert!(all.iter().any(|s| s.starts_with(op)), "no failpoint of {op} listed: {all:?}");
    }
    let w = Walk::start();
    let mut failed = Vec::new();
    for (n, step) in all.iter().enumerate() {
        eprintln!("shim failpoint {step}");
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walk_one(&w, n, step))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{step}: {msg}"));
            w.arm("");
        }
    }
    eprintln!("walked {} shim failpoints", all.len());
    assert!(
        failed.is_empty(),
        "{} of {} shim failpoints left something:\n{}\ncontainerd log:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n"),
        w.cd.log()
    );
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
