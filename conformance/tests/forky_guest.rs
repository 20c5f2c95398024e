//! berth with today's clients: a Debian forky (testing) guest with systemd as PID 1, pure
//! cgroup v2, AppArmor on, containerd 2.1, Docker 28, runc 1.3 and crun 1.2x (issue 15; see
//! docs/production-guest.md). Each scenario runs on berth and on runc 1.3 side by side and
//! asserts what the client printed and what the container saw. One boot serves every test
//! here; the tests take turns (a containerd restart must not meet another test's dockerd).
//! The image is built on first use and cached under /var/cache/berth/guests. Needs root,
//! qemu-system-x86, debootstrap and BERTH (the static release binary, as `make conformance`
//! sets it); without them every test fails.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use conformance::guest_tests::{self, TestBinary};
use conformance::systemd_guest::{ensure_image, BootOptions, CmdOutput, Guest, Suite, SHARE_MOUNT};
use serde_json::json;

/// The booted guest and the share it reads berth's binaries from; taken and dropped at exit
/// (statics are never dropped), which kills qemu and removes the share.
struct Fixture {
    guest: Guest,
    _share: tempfile::TempDir,
}

static FIXTURE: OnceLock<Result<Mutex<Option<Fixture>>, String>> = OnceLock::new();
/// Held by each test for its whole run: one scenario at a time in the guest.
static TURN: Mutex<()> = Mutex::new(());

extern "C" fn stop_at_exit() {
    if let Some(Ok(m)) = FIXTURE.get() {
        let taken = m.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
}

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn berth_binary() -> Result<PathBuf, String> {
    let b = PathBuf::from(std::env::var_os("BERTH").ok_or(
        "BERTH is not set: run `make conformance`, or set BERTH to the static release binary \
         (target/x86_64-unknown-linux-gnu/release/berth)",
    )?);
    if !b.is_file() {
        return Err(format!("BERTH={}: no such file (cargo build --release -p berth)", b.display()));
    }
    Ok(b)
}

/// The share: berth and the shim of the same build (the release ones under `make
/// conformance`), else the newest built.
fn make_share(berth: &Path) -> Result<tempfile::TempDir, String> {
    let share = tempfile::Builder::new().prefix("berth-forky-share-").tempdir().map_err(|e| e.to_string())?;
    let copy = |from: &Path, name: &str| {
        std::fs::copy(from, share.path().join(name)).map(|_| ()).map_err(|e| format!("{}: {e}", from.display()))
    };
    copy(berth, "berth")?;
    let shim = match berth.parent().map(|d| d.join("containerd-shim-berth-v2")) {
        Some(p) if p.is_file() && std::env::var_os("BERTH_SHIM").is_none() => p,
        _ => conformance::util::workspace_binary("containerd-shim-berth-v2", "BERTH_SHIM"),
    };
    copy(&shim, "containerd-shim-berth-v2")?;
    // The CRI test's pod: the snapshotter and pause image of the same build, and the CRI
    // client that drives a private containerd 2.1 from inside the guest.
    let sibling = |name: &str, env: &str| match berth.parent().map(|d| d.join(name)) {
        Some(p) if p.is_file() && std::env::var_os(env).is_none() => p,
        _ => conformance::util::workspace_binary(name, env),
    };
    copy(&sibling("berth-snapshotter", "BERTH_SNAPSHOTTER"), "berth-snapshotter")?;
    copy(&sibling("berth-pause", "BERTH_PAUSE"), "berth-pause")?;
    copy(Path::new(env!("CARGO_BIN_EXE_cri-systemd-pod")), "cri-systemd-pod")?;
    Ok(share)
}

fn boot() -> Result<Fixture, String> {
    let berth = berth_binary()?;
    let t = Instant::now();
    let img = ensure_image(Suite::Forky).map_err(|e| e.to_string())?;
    match img.built_in {
        Some(d) => eprintln!("forky image built from scratch in {d:.1?}: {}", img.dir.display()),
        None => eprintln!("forky image cached: {} ({:.1?})", img.dir.display(), t.elapsed()),
    }
    let share = make_share(&berth)?;
    // CRIU_FAULT=130 (criu's FI_NO_BREAKPOINTS): criu stops restored tasks by tracing their
    // syscalls instead of with a hardware breakpoint. Under emulation the breakpoint's
    // perf event once hung criu's restore in synchronize_rcu until the guest died; that is
    // qemu's and the kernel's, not the runtime's, and runc and berth both get the setting.
    let opts = BootOptions {
        share: Some(share.path().to_path_buf()),
        manager_env: vec!["CRIU_FAULT=130".to_string()],
        ..BootOptions::default()
    };
    let mut guest = Guest::boot(&img, &opts).map_err(|e| e.to_string())?;
    eprintln!("forky guest ready in {:.1?}: systemd says {:?}", guest.boot_to_ready, guest.system_state);
    // berth's binaries; a busybox root, imported as busybox:local into docker, and from
    // docker's archive of it into containerd (no registry is reachable from the guest).
    let setup = guest
        .run(
            &format!(
                "set -e
                install -m 0755 {SHARE_MOUNT}/berth {SHARE_MOUNT}/containerd-shim-berth-v2 \
                    {SHARE_MOUNT}/berth-snapshotter {SHARE_MOUNT}/berth-pause /usr/local/bin/
                r=/root/rootfs
                mkdir -p $r/bin $r/dev $r/proc $r/sys $r/tmp $r/etc $r/run
                cp /bin/busybox $r/bin/
                for a in $(busybox --list); do [ $a = busybox ] || ln -s busybox $r/bin/$a; done
                tar -C $r -c . | docker import - busybox:local >/dev/null
                docker save busybox:local | ctr -n forky image import - >/dev/null
                ctr -n forky image ls -q"
            ),
            Duration::from_secs(600),
        )
        .map_err(|e| e.to_string())?;
    if setup.code != 0 {
        return Err(format!("guest setup failed ({}): {}\n{}", setup.code, setup.stdout, setup.stderr));
    }
    eprintln!("containerd's images: {}", setup.stdout.trim());
    Ok(Fixture { guest, _share: share })
}

fn fixture() -> MutexGuard<'static, Option<Fixture>> {
    let f = FIXTURE.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        boot().map(|f| Mutex::new(Some(f)))
    });
    match f {
        Ok(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
        Err(e) => panic!("cannot run the forky guest: {e}"),
    }
}

/// Runs `script` in the guest and prints it with what it returned.
fn run(script: &str) -> CmdOutput {
    let mut f = fixture();
    let Some(f) = f.as_mut() else { panic!("the guest is gone") };
    let o = f.guest.run(script, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{script}: {e}"));
    eprintln!("guest$ {script}\n  -> {} stdout={:?} stderr={:?}", o.code, o.stdout, o.stderr);
    o
}

fn ok(script: &str) -> String {
    let o = run(script);
    assert_eq!(o.code, 0, "{script} failed: {}\n{}", o.stdout, o.stderr);
    o.stdout.trim().to_string()
}

/// The image `boot` imported into containerd's `forky` namespace.
const CTR_IMAGE: &str = "docker.io/library/busybox:local";

#[test]
fn forky_holds_todays_clients() {
    let _t = turn();
    assert_eq!(ok("readlink /proc/1/exe"), "/usr/lib/systemd/systemd");
    assert_eq!(ok("stat -f -c %T /sys/fs/cgroup"), "cgroup2fs");
    assert_eq!(ok("cat /sys/module/apparmor/parameters/enabled"), "Y");
    let versions = ok("uname -r; systemctl --version | head -1; containerd --version; dockerd --version; \
         runc --version | head -1; crun --version | head -1");
    eprintln!("forky guest versions:\n{versions}");
    let v: Vec<&str> = versions.lines().collect();
    assert!(v[0].ends_with("-amd64"), "{versions}");
    assert!(v[2].contains(" 2.1."), "containerd 2.1: {versions}");
    assert!(v[3].starts_with("Docker version 28."), "Docker 28: {versions}");
    assert!(v[4].starts_with("runc version 1.3."), "runc 1.3: {versions}");
    assert!(v[5].starts_with("crun version 1."), "crun: {versions}");
    assert_eq!(ok("systemctl is-active docker.service containerd.service"), "active\nactive");
    let info = ok("docker info --format '{{.CgroupDriver}} {{.CgroupVersion}}'");
    assert_eq!(info, "systemd 2");
    // The criu setting of `boot` reaches the units that start criu (see there).
    let env = ok("for p in $(systemctl show -p MainPID --value containerd docker); do tr '\\0' '\\n' </proc/$p/environ | grep -x CRIU_FAULT=130; done");
    assert_eq!(env, "CRIU_FAULT=130\nCRIU_FAULT=130", "containerd's and dockerd's environment");
}

/// What `ctr` showed for one runtime; compared between berth and runc.
#[derive(Debug, Clone, PartialEq)]
struct CtrReport {
    run_stdout: String,
    run_code: i32,
    /// The binary of the shim serving the detached task.
    shim: String,
    exec_stdout: String,
    exec_code: i32,
    status_before_restart: String,
    status_after_restart: String,
    exec_after_restart: String,
    status_after_kill: String,
    containers_left: String,
    tasks_left: String,
}

/// containerd 2.1 with `ctr` through a runtime's shim: `ctr run --rm` (its output and exit
/// code), a detached task, `ctr task exec`, a containerd restart while the task runs (it
/// survives and is exec'd into after), `ctr task kill` (SIGTERM, which the task traps),
/// `ctr task delete` and `ctr container rm`. Also the bootstrap parameters containerd wrote
/// into the task's bundle: the version of the task API it speaks to that shim.
fn ctr_scenario(runtime: &str, tag: &str) -> (CtrReport, serde_json::Value) {
    let ctr = "ctr -n forky";
    let c = format!("fk-{tag}");
    let o = run(&format!(
        "{ctr} run --rm --runtime {runtime} {CTR_IMAGE} {c}-once sh -c 'echo hello from ctr; cat /proc/self/cgroup; exit 3'"
    ));
    let (run_stdout, run_code) = (o.stdout.replace('\r', ""), o.code);
    ok(&format!(
        "{ctr} run -d --runtime {runtime} {CTR_IMAGE} {c} sh -c 'trap \"echo got TERM; exit 7\" TERM; \
         while :; do sleep 0.2; done' >/dev/null"
    ));
    let shim = ok(&format!(
        "for p in $(pgrep -f containerd-shim); do tr '\\0' ' ' </proc/$p/cmdline | grep -q -- ' -id {c} ' && \
         basename \"$(readlink /proc/$p/exe)\"; done | grep '^containerd-shim' | sort -u"
    ));
    let bootstrap = ok(&format!("cat /run/containerd/io.containerd.runtime.v2.task/forky/{c}/bootstrap.json"));
    let bootstrap: serde_json::Value =
        serde_json::from_str(&bootstrap).unwrap_or_else(|e| panic!("{runtime}: bootstrap.json {bootstrap:?}: {e}"));
    let o = run(&format!(
        "{ctr} task exec --exec-id e1 {c} sh -c 'echo in $(cat /proc/1/cmdline | tr \"\\0\" \" \"); exit 5'"
    ));
    let (exec_stdout, exec_code) = (o.stdout.trim().to_string(), o.code);
    let status = |c: &str| ok(&format!("{ctr} task ls | awk '$1 == \"{c}\" {{print $3}}'"));
    let status_before_restart = status(&c);
    // containerd.service's KillMode=process: the shim and its task outlive containerd.
    ok("systemctl restart containerd && until ctr version >/dev/null 2>&1; do sleep 0.2; done");
    let status_after_restart = status(&c);
    let exec_after_restart = ok(&format!("{ctr} task exec --exec-id e2 {c} echo still here"));
    ok(&format!("{ctr} task kill {c}"));
    // The trap ends the task within a loop turn.
    ok(&format!(
        "for i in $(seq 100); do [ \"$({ctr} task ls | awk '$1 == \"{c}\" {{print $3}}')\" = STOPPED ] && break; sleep 0.1; done"
    ));
    let status_after_kill = status(&c);
    ok(&format!("{ctr} task delete {c} >/dev/null"));
    ok(&format!("{ctr} container rm {c}"));
    let containers_left = ok(&format!("{ctr} container ls -q | grep -c '^{c}' || true"));
    let tasks_left = ok(&format!("{ctr} task ls -q | grep -c '^{c}' || true"));
    let report = CtrReport {
        run_stdout,
        run_code,
        shim,
        exec_stdout,
        exec_code,
        status_before_restart,
        status_after_restart,
        exec_after_restart,
        status_after_kill,
        containers_left,
        tasks_left,
    };
    eprintln!("CTR-REPORT {runtime}: {report:?}; bootstrap.json {bootstrap}");
    (report, bootstrap)
}

#[test]
fn containerd_2_1_runs_ctr_tasks_on_berth_as_on_runc() {
    let _t = turn();
    let (runc, runc_boot) = ctr_scenario("io.containerd.runc.v2", "runc");
    let (berth, berth_boot) = ctr_scenario("io.containerd.berth.v2", "berth");
    eprintln!("BOOTSTRAP versions: berth {} runc {}", berth_boot["version"], runc_boot["version"]);
    for (name, r) in [("runc", &runc), ("berth", &berth)] {
        assert_eq!(r.shim, format!("containerd-shim-{name}-v2"), "{name}: the task's shim");
        // ctr's own namespace puts the task in /forky/<id>; the container has no cgroup
        // namespace of its own there.
        assert_eq!(r.run_stdout, format!("hello from ctr\n0::/forky/fk-{name}-once\n"), "{name}: {r:?}");
        assert_eq!(r.run_code, 3, "{name}: ctr run returns the task's exit code");
        assert_eq!(
            r.exec_stdout, "in sh -c trap \"echo got TERM; exit 7\" TERM; while :; do sleep 0.2; done",
            "{name}"
        );
        assert_eq!(r.exec_code, 5, "{name}: ctr task exec returns the process's exit code");
        assert_eq!(r.status_before_restart, "RUNNING", "{name}");
        assert_eq!(r.status_after_restart, "RUNNING", "{name}: the task survives a containerd restart");
        assert_eq!(r.exec_after_restart, "still here", "{name}");
        assert_eq!(r.status_after_kill, "STOPPED", "{name}");
        assert_eq!((r.containers_left.as_str(), r.tasks_left.as_str()), ("0", "0"), "{name}");
    }
    for (name, b) in [("runc", &runc_boot), ("berth", &berth_boot)] {
        assert_eq!(b["protocol"], "ttrpc", "{name}: {b}");
        let addr = b["address"].as_str().unwrap_or_default();
        assert!(addr.starts_with("unix:///"), "{name}: {b}");
    }
    // containerd-shim-runc-v2 of containerd 2.1 prints its bootstrap as JSON with task API
    // version 3; berth's shim does the same for a containerd 2.x (shim/src/bootstrap.rs), and
    // containerd then speaks containerd.task.v3.Task to it.
    assert_eq!(runc_boot["version"], 3, "runc: {runc_boot}");
    assert_eq!(berth_boot["version"], 3, "berth: {berth_boot}");
    let strip = |r: &CtrReport, name: &str| CtrReport {
        run_stdout: r.run_stdout.replace(name, "X"),
        shim: String::new(),
        ..r.clone()
    };
    assert_eq!(strip(&berth, "berth"), strip(&runc, "runc"), "berth and runc showed different things");
}

/// A field of `ctr plugins inspect-runtime`'s JSON, whichever case ctr gives its keys.
fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let upper = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
    if v[name].is_null() {
        &v[upper.as_str()]
    } else {
        &v[name]
    }
}

/// containerd 2.1's CRI plugin (config version 3) as a kubelet with the systemd cgroup
/// driver uses it, handler `berth` (containerd-shim-berth-v2, its options inline with
/// `SystemdCgroup = true`, `snapshotter = "berth"`: berth-snapshotter as a proxy plugin)
/// beside handler `runc` (runc 1.3, the default overlayfs snapshotter): a pod with two
/// containers in their scopes, exec, logs, stats, an OOM kill reported as OOMKilled, stop and
/// remove, the same on both; each container's rootfs from its handler's snapshotter; no
/// unit, mount, shim or netns left, and no snapshot in either snapshotter once the images are
/// removed. Also the shims' `-info` as containerd 2.1 gets it: through its introspection API
/// (`ctr plugins inspect-runtime`), and the handlers' features in CRI's status. The guest runs
/// the repo's CRI client (src/bin/cri-systemd-pod.rs, as the trixie guest does): Debian forky
/// has no crictl.
#[test]
fn cri_on_containerd_2_1_with_a_snapshotter_per_handler_on_berth_as_on_runc() {
    let _t = turn();
    let bins = "/usr/local/bin";
    let (o, took) = {
        let mut f = fixture();
        let Some(f) = f.as_mut() else { panic!("the guest is gone") };
        let t = Instant::now();
        let o = f
            .guest
            .run(
                &format!(
                    "BERTH={bins}/berth BERTH_SHIM={bins}/containerd-shim-berth-v2 \
                     BERTH_SNAPSHOTTER={bins}/berth-snapshotter BERTH_PAUSE={bins}/berth-pause \
                     {SHARE_MOUNT}/cri-systemd-pod --containerd2"
                ),
                Duration::from_secs(900),
            )
            .unwrap_or_else(|e| panic!("cri-systemd-pod: {e}"));
        (o, t.elapsed())
    };
    eprintln!("cri-systemd-pod --containerd2 took {took:.1?}\nstdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    assert_eq!(o.code, 0, "cri-systemd-pod failed:\n{}\n{}", o.stdout, o.stderr);
    let line = |prefix: &str| -> Vec<serde_json::Value> {
        o.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    };
    let facts = line("CRI-FACTS ");
    assert_eq!(facts.len(), 2, "one line per handler: {}", o.stdout);
    let slice = "kubepods-burstable-pod<uid>.slice";
    for (f, name) in [(&facts[0], "berth"), (&facts[1], "runc")] {
        assert_eq!(f["handler"], name);
        let has = |field: &str, line: &str| {
            let v = f[field].as_array().cloned().unwrap_or_default();
            assert!(v.iter().any(|l| l == line), "{name}: {field} lacks {line:?}: {v:?}");
        };
        for (field, id) in [("web_unit", "<web>"), ("side_unit", "<side>"), ("pod_unit", "<pod>")] {
            has(field, "ActiveState=active");
            has(field, &format!("Slice={slice}"));
            has(
                field,
                &format!("ControlGroup=/kubepods.slice/kubepods-burstable.slice/{slice}/cri-containerd-{id}.scope"),
            );
        }
        has("web_unit", "Delegate=yes");
        has("side_unit", "MemoryMax=67108864");
        has("side_unit", "CPUQuotaPerSecUSec=500ms");
        assert_eq!(f["side_files"], "67108864\n50000 100000", "{name}: the side container's cgroup files");
        assert_eq!(f["exec_exit"], 0, "{name}");
        assert_eq!(f["exec_stdout"], json!(["in", "0::/", "cri-containerd.apparmor.d (enforce)"]), "{name}");
        assert_eq!(f["web_log"], json!(["web up"]), "{name}");
        assert_eq!(f["side_log"], json!(["side up"]), "{name}");
        assert_eq!(f["stats_working_set_nonzero"], true, "{name}");
        assert_eq!(f["stats_cpu_nonzero"], true, "{name}");
        assert_eq!(f["hog_exit"], 137, "{name}: the OOM-killed container's exit code");
        assert_eq!(f["leaks"], json!([]), "{name}: left after RemovePodSandbox");
        assert_eq!(f["units_left"], json!([]), "{name}: units left after the teardown");
        assert_eq!((&f["slice_stop"], &f["slice_dir_left"]), (&json!("stopped"), &json!(false)), "{name}");
    }
    assert_eq!(facts[0]["hog_reason"], "OOMKilled", "berth: the OOM kill's reason");
    // Each handler's containers on its own snapshotter: containerd's record (the verbose
    // status), the snapshotter holding the key, and the rootfs mount's upper layer.
    assert_eq!(
        facts[0]["rootfs"],
        json!({"snapshotter": "berth", "key_held": true, "fstype": "overlay", "upperdir_of": "berth-snapshotter"}),
        "berth: the rootfs comes from berth-snapshotter"
    );
    assert_eq!(
        facts[1]["rootfs"],
        json!({"snapshotter": "overlayfs", "key_held": true, "fstype": "overlay",
               "upperdir_of": "io.containerd.snapshotter.v1.overlayfs"}),
        "runc: the rootfs comes from containerd's overlayfs snapshotter"
    );
    let (mut b, mut r) = (facts[0].clone(), facts[1].clone());
    let mut skip = vec!["handler", "rootfs"];
    // containerd-shim-runc-v2's OOM event can lose the race with the exit under emulation
    // (the CRI plugin then says "Error"; seen in the trixie guest): then only berth's reason
    // is asserted, above.
    if r["hog_reason"] != "OOMKilled" {
        eprintln!("NOTE: runc's OOM-killed container was reported as {}", r["hog_reason"]);
        skip.push("hog_reason");
    }
    for f in skip {
        b[f] = json!(null);
        r[f] = json!(null);
    }
    assert_eq!(b, r, "berth and runc saw different things");

    // The registration CRI introspects (runc's type, berth's shim by runtime_path) runs pods
    // on berth's shim and berth-snapshotter like handler berth.
    let runc_type = line("CRI-RUNC-TYPE ");
    assert_eq!(runc_type.len(), 1, "{}", o.stdout);
    assert_eq!(
        runc_type[0],
        json!({
            "shims": ["containerd-shim-berth-v2"],
            "exec_exit": 0,
            "exec_stdout": ["in", "0::/"],
            "log": ["c up"],
            "rootfs": {"snapshotter": "berth", "key_held": true, "fstype": "overlay", "upperdir_of": "berth-snapshotter"},
            "leaks": 0,
        }),
        "a pod on berth-runc-type"
    );

    let features = line("CRI-FEATURES ");
    assert_eq!(features.len(), 1, "{}", o.stdout);
    let features = &features[0];
    // `-info` through containerd 2.1's introspection API: each shim's RuntimeInfo with its
    // runtime's features (berth's `berth features`, runc's `runc features`).
    for (name, key) in [("berth", "inspect_berth"), ("runc", "inspect_runc")] {
        let info = &features[key];
        assert!(info.get("error").is_none(), "{name}: ctr plugins inspect-runtime: {info}");
        assert_eq!(field(info, "name"), &json!(format!("io.containerd.{name}.v2")), "{name}: {info}");
        let feat = field(info, "features");
        let has = |list: &serde_json::Value, item: &str| list.as_array().is_some_and(|a| a.iter().any(|v| v == item));
        assert!(has(&feat["mountOptions"], "rro"), "{name}: rro among the mount options: {feat}");
        assert!(has(&feat["linux"]["namespaces"], "user"), "{name}: {feat}");
        assert_eq!(feat["linux"]["mountExtensions"]["idmap"]["enabled"], true, "{name}: {feat}");
        assert_eq!(feat["linux"]["cgroup"]["systemd"], true, "{name}: {feat}");
    }
    // CRI's status: containerd 2.1 introspects only handlers of runtime type
    // io.containerd.runc.v2 (internal/cri/server/status.go), so handler berth shows no
    // features, and berth's shim registered with that type and its own runtime_path shows
    // exactly runc's.
    let handlers = &features["cri_handlers"];
    let runc_features = &handlers["runc"];
    eprintln!("CRI's runtime handlers: {handlers}");
    assert_eq!(runc_features["recursive_read_only_mounts"], true, "runc: {handlers}");
    assert_eq!(
        handlers["berth-runc-type"],
        json!({"recursive_read_only_mounts": true, "user_namespaces": true}),
        "berth's shim as runc's type: {handlers}"
    );
    assert_eq!(handlers["berth"], json!(null), "handler berth (io.containerd.berth.v2): {handlers}");
    assert_eq!(&handlers["<default>"], runc_features, "the default handler is runc: {handlers}");

    let cleanup = line("CRI-CLEANUP ");
    assert_eq!(cleanup.len(), 1, "{}", o.stdout);
    let c = &cleanup[0];
    for s in ["berth", "overlayfs"] {
        assert!(c["snapshots_before_rmi"][s].as_u64().unwrap_or(0) > 0, "{s}: the images' layers: {c}");
    }
    assert_eq!(c["berth_snapshots_left"], json!([]), "berth-snapshotter after rmi: {c}");
    assert_eq!(c["overlayfs_snapshots_left"], json!([]), "overlayfs after rmi: {c}");
    assert_eq!(c["mounts_left"], json!([]), "{c}");
    assert_eq!(c["images_left"], "", "{c}");
}

/// Registers the runtimes of the Docker tests in daemon.json: berth by path (dockerd runs it
/// under containerd-shim-runc-v2 with its own options, SystemdCgroup among them), and the
/// berth shim by `runtimeType`, next to runc's shim registered the same way.
fn register_runtimes(daemon_json: &str) {
    ok(&format!(
        "mkdir -p /etc/berth && printf 'SystemdCgroup = true\\n' >/etc/berth/shim-systemd.toml
         cat >/etc/docker/daemon.json <<'EOF'\n{daemon_json}\nEOF
         systemctl reload docker"
    ));
}

const DAEMON_JSON: &str = r#"{"runtimes":{
 "berth":{"path":"/usr/local/bin/berth"},
 "berth-shim":{"runtimeType":"io.containerd.berth.v2","options":{"ConfigPath":"/etc/berth/shim-systemd.toml"}},
 "berth-shim-bare":{"runtimeType":"io.containerd.berth.v2"},
 "berth-shim-sdopt":{"runtimeType":"io.containerd.berth.v2","options":{"SystemdCgroup":true}},
 "runc-shim-bare":{"runtimeType":"io.containerd.runc.v2"},
 "runc-shim":{"runtimeType":"io.containerd.runc.v2","options":{"SystemdCgroup":true}}
}}"#;

/// Docker 28's everyday commands through each runtime: `docker run --rm` (its output and
/// exit code), `run -d`, `exec`, `stop` (SIGTERM reaches the container), `rm`.
fn docker_scenario(rt: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let o = run(&format!(
        "docker run --rm --runtime {rt} busybox:local sh -c 'echo hello from docker; cat /proc/self/cgroup; exit 3'"
    ));
    seen.push(format!("run: {} {:?}", o.code, o.stdout));
    let o = run(&format!(
        "docker run -d --runtime {rt} --name fd busybox:local sh -c 'trap \"exit 7\" TERM; while :; do sleep 0.2; done'"
    ));
    seen.push(format!("run -d: {}", o.code));
    if o.code == 0 {
        let o = run("docker exec fd sh -c 'echo in; cat /proc/1/cmdline | tr \"\\0\" \" \"; exit 4'");
        seen.push(format!("exec: {} {:?}", o.code, o.stdout));
        let o = run("docker stop -t 10 fd && docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' fd");
        seen.push(format!("stop: {} {:?}", o.code, o.stdout.trim()));
    }
    let o = run("docker rm -f fd >/dev/null 2>&1; docker ps -aq --filter name=fd | wc -l");
    seen.push(format!("left: {}", o.stdout.trim()));
    eprintln!("DOCKER-REPORT {rt}: {seen:?}");
    seen
}

/// Docker 28 with berth registered in daemon.json by path and by `runtimeType` with
/// options, next to runc: the same output, exit codes and states on each.
#[test]
fn docker_28_runs_on_berth_as_on_runc() {
    let _t = turn();
    register_runtimes(DAEMON_JSON);
    let runc = docker_scenario("runc");
    assert_eq!(
        runc,
        [
            "run: 3 \"hello from docker\\n0::/\\n\"",
            "run -d: 0",
            "exec: 4 \"in\\nsh -c trap \\\"exit 7\\\" TERM; while :; do sleep 0.2; done \"",
            "stop: 0 \"fd\\nexited 7\"",
            "left: 0",
        ],
        "runc"
    );
    for rt in ["berth", "berth-shim", "runc-shim"] {
        assert_eq!(docker_scenario(rt), runc, "{rt} differs from runc");
    }
    // Without options a shim registered by runtimeType gets no SystemdCgroup, while dockerd
    // (systemd cgroup driver) still gives a `system.slice:docker:<id>` cgroups path. runc
    // then takes it as a relative cgroupfs path, a directory named so below the parent of
    // its own cgroup, outside any unit systemd knows; berth refuses the systemd form without
    // --systemd-cgroup, naming it (docs/spec-conformance.md). SystemdCgroup among the options
    // of a runtimeType other than runc's is dropped by dockerd, which decodes them as
    // runtimeoptions.v1.Options (TypeUrl, ConfigPath, ConfigBody): berth's shim takes it from
    // the ConfigPath file, as `berth-shim` above does.
    let cg = ok("docker run -d --runtime runc-shim-bare --name fb busybox:local sleep 100 >/dev/null && \
         cat /proc/$(docker inspect -f '{{.State.Pid}}' fb)/cgroup; docker rm -f fb >/dev/null");
    eprintln!("runc-shim-bare: the container's cgroup is {cg}");
    assert!(cg.starts_with("0::/"), "{cg}");
    assert!(cg.contains("/system.slice:docker:"), "runc took the systemd form as a cgroupfs path: {cg}");
    for rt in ["berth-shim-bare", "berth-shim-sdopt"] {
        let o = run(&format!("docker run --rm --runtime {rt} busybox:local true"));
        eprintln!("{rt}: {} {}", o.code, o.stderr.trim());
        assert_eq!(o.code, 125, "{rt}: {}", o.stderr);
        assert!(o.stderr.contains("needs --systemd-cgroup"), "{rt}: {}", o.stderr);
    }
}

/// A container with `process.terminal: true` checkpointed and restored through one runtime,
/// with recvtty (conformance/src/bin/recvtty.rs) on the console sockets: a busybox shell
/// sets a variable before the dump, and after `restore --console-socket` the new pty master
/// the runtime sent (criu's `orphan-pts-master`) reaches the same shell, which answers with
/// that variable. What each step showed, for comparison between runtimes.
fn tty_checkpoint_scenario(rt: &str) -> Vec<String> {
    let id = format!("tty-{rt}");
    let d = format!("/root/ttyck-{rt}");
    let wait_for = |file: &str, what: &str| {
        format!(
            "i=0; until grep -q '{what}' {file} 2>/dev/null; do i=$((i + 1)); \
             [ $i -lt 600 ] || {{ echo timeout waiting for {what} in {file}; cat {file}; exit 1; }}; sleep 0.1; done"
        )
    };
    let mut seen = Vec::new();
    let o = run(&format!(
        "set -e
         rm -rf {d}; mkdir -p {d}/bundle; cp -a /root/rootfs {d}/bundle/rootfs
         cd {d}/bundle && runc spec && grep -q '\"terminal\": true' config.json
         setsid recvtty {d}/c.sock 'X=kept-$$; echo before-$((6*7))' before-42 hold >{d}/c.out 2>&1 </dev/null &
         echo $! >{d}/c.pid
         {}
         {rt} create --bundle {d}/bundle --console-socket {d}/c.sock {id}
         {rt} start {id}
         {}
         {rt} state {id} | grep -o '\"status\": *\"[a-z]*\"' | tr -d ' '",
        wait_for_socket(&format!("{d}/c.sock")),
        wait_for(&format!("{d}/c.out"), "recvtty: marker")
    ));
    seen.push(format!("create: {} {}", o.code, o.stdout.trim()));
    let o = run(&format!("grep -x before-42 {d}/c.out"));
    seen.push(format!("before: {}", o.stdout.trim()));
    let o = run(&format!(
        "{rt} checkpoint --image-path {d}/img {id} 2>&1; rc=$?; echo checkpoint-rc=$rc
         [ $rc = 0 ] || grep -h 'Error' {d}/img/*.log | head -5
         {rt} delete {id} 2>/dev/null; kill $(cat {d}/c.pid); {rt} list -q | grep -cx {id}"
    ));
    eprintln!("{rt} checkpoint: {}", o.stdout);
    seen.push(format!("checkpoint: {}", o.stdout.lines().find(|l| l.starts_with("checkpoint-rc=")).unwrap_or("?")));
    seen.push(format!("after checkpoint, listed: {}", o.stdout.lines().last().unwrap_or("?")));
    let o = run(&format!(
        "setsid recvtty {d}/r.sock 'echo after-$X' after-kept-1 hold >{d}/r.out 2>&1 </dev/null &
         echo $! >{d}/r.pid
         {}
         {rt} restore -d --image-path {d}/img --bundle {d}/bundle --console-socket {d}/r.sock {id} 2>&1
         rc=$?; echo restore-rc=$rc
         [ $rc = 0 ] || grep -h 'Error' {d}/img/restore.log | head -5
         {}
         cat {d}/r.out",
        wait_for_socket(&format!("{d}/r.sock")),
        wait_for(&format!("{d}/r.out"), "recvtty: marker")
    ));
    eprintln!("{rt} restore: {}", o.stdout);
    seen.push(format!("restore: {}", o.stdout.lines().find(|l| l.starts_with("restore-rc=")).unwrap_or("?")));
    seen.push(format!("answer: {}", o.stdout.lines().any(|l| l == "after-kept-1")));
    let o = run(&format!(
        "{rt} state {id} | grep -o '\"status\": *\"[a-z]*\"' | tr -d ' '
         pid=$({rt} state {id} | grep -o '\"pid\": *[0-9]*' | grep -o '[0-9]*$')
         readlink /proc/$pid/fd/0 | sed 's/[0-9]*$/N/'"
    ));
    seen.push(format!("restored: {}", o.stdout.trim().replace('\n', " ")));
    let o = run(&format!(
        "kill $(cat {d}/r.pid); {rt} kill {id} KILL; sleep 1; {rt} delete -f {id}; {rt} list -q | grep -cx {id}; rm -rf {d}"
    ));
    seen.push(format!("left: {}", o.stdout.trim()));
    eprintln!("TTY-CHECKPOINT-REPORT {rt}: {seen:?}");
    seen
}

fn wait_for_socket(path: &str) -> String {
    format!("i=0; until [ -S {path} ]; do i=$((i + 1)); [ $i -lt 300 ] || {{ echo no socket {path}; exit 1; }}; sleep 0.1; done")
}

/// process.terminal: true through checkpoint and `restore --console-socket`, on berth as on
/// runc 1.3 (both with the guest's criu 4): the restored pty's master reaches the console
/// socket and the same shell answers on it.
#[test]
fn terminal_container_checkpoint_and_restore_with_console_socket_on_berth_as_on_runc() {
    let _t = turn();
    {
        let f = fixture();
        let Some(f) = f.as_ref() else { panic!("the guest is gone") };
        conformance::systemd_guest::copy_into(f._share.path(), "recvtty", Path::new(env!("CARGO_BIN_EXE_recvtty")))
            .unwrap_or_else(|e| panic!("recvtty into the share: {e}"));
    }
    ok(&format!("install -m 0755 {SHARE_MOUNT}/recvtty /usr/local/bin/"));
    eprintln!("criu: {}", run("criu --version | head -1").stdout.trim());
    let runc = tty_checkpoint_scenario("runc");
    assert_eq!(
        runc,
        [
            "create: 0 \"status\":\"running\"",
            "before: before-42",
            "checkpoint: checkpoint-rc=0",
            "after checkpoint, listed: 0",
            "restore: restore-rc=0",
            "answer: true",
            "restored: \"status\":\"running\" /dev/pts/N",
            "left: 0",
        ],
        "runc"
    );
    assert_eq!(tty_checkpoint_scenario("berth"), runc, "berth differs from runc");
}

// ---------------------------------------------------------------------------------------
// Checkpoint/restore with criu 4 (issue 15, item 4): berth's CLI, containerd 2.1 through
// berth's shim and Docker 28, each beside runc 1.3.6. The guest's criu is checked first.
// ---------------------------------------------------------------------------------------

/// The counting container's loop: a counter in the shell's memory, written to /data/count
/// every tenth of a second. Restored, it goes on from where it was; started afresh, from 1.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i >/data/count; sleep 0.1; done";

/// The bundle config of the CLI scenario: runc's `runc spec` defaults (every namespace but
/// user, so a network namespace of its own with only `lo`), no terminal, an httpd listening
/// on 127.0.0.1:8080, a bind mount of the bundle's `data` at /data, a cgroup `/ck/<rt>`, and
/// one hook of each host-side kind appending its name to the bundle's `hooks.log`.
fn criu_bundle_config(rt: &str, dir: &str) -> String {
    let hook = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >>{dir}/hooks.log")]});
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let args = format!("httpd -p 127.0.0.1:8080 -h /data; {COUNTER}");
    let tmpfs = |dest: &str, src: &str, opts: &[&str]| serde_json::json!({"destination": dest, "type": "tmpfs", "source": src, "options": opts});
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", args],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "ck",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            tmpfs("/dev", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            tmpfs("/dev/shm", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": format!("{dir}/data"), "options": ["rbind", "rw"]}
        ],
        "hooks": {
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")]
        },
        "linux": {
            "cgroupsPath": format!("/ck/{rt}"),
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
    .to_string()
}

/// The guest's shell helpers of the CLI scenario: `count` reads the counter, `advanced N`
/// waits (up to 20 s) until it is above N and prints it, `still` says whether it stayed put
/// for half a second, `st ID` is the runtime's status of ID or `gone`, `net` what the
/// container's loopback shows and whether the httpd serves `/data/static` over it (never
/// the counter: the shell truncates and rewrites it ten times a second, and a fetch that
/// met the truncation ended "connection closed prematurely", for runc's container and for
/// berth's in CI), `hooks` the hooks run since the log was last emptied.
const CK_HELPERS: &str = r#"
count() { cat $d/data/count 2>/dev/null || echo 0; }
advanced() { for _ in $(seq 200); do c=$(count); [ "$c" -gt "$1" ] && { echo $c; return; }; sleep 0.1; done; echo "stuck at $(count)"; }
still() { a=$(count); sleep 0.5; [ "$(count)" = "$a" ] && echo frozen || echo moving; }
st() { s=$($R state $1 2>/dev/null | tr -d ' \n' | grep -o '"status":"[a-z]*"' | cut -d'"' -f4); echo ${s:-gone}; }
net() { $R exec $ID sh -c 'ip addr show lo | grep -o "inet [0-9./]*"; wget -q -O - http://127.0.0.1:8080/static >/dev/null && echo served' 2>&1 | tr '\n' ' '; }
hooks() { tr '\n' ' ' <$d/hooks.log 2>/dev/null; }
out() { echo "$1: $2"; printf '%s@%ss ' "$1" $SECONDS >&2; }
"#;

/// One runtime through the CLI scenario; each line says what a step showed, with nothing
/// that differs between two correct runs (pids, times, counter values).
fn criu_cli_scenario(rt: &str) -> (Vec<String>, Duration) {
    let d = format!("/root/ck-{rt}");
    let config = criu_bundle_config(rt, &d);
    let t = Instant::now();
    let o = run(&format!(
        r#"R={rt}; ID=ck-{rt}; d={d}
{CK_HELPERS}
rm -rf $d; mkdir -p $d/data; echo ok >$d/data/static; cp -a /root/rootfs $d/rootfs
cat >$d/config.json <<'CONFIG'
{config}
CONFIG
cd $d
: | $R run -d -b $d $ID > >(cat >>$d/stdout) 2>&1; out run $?
advanced 2 >/dev/null; out hooks-after-run "$(hooks)"; : >$d/hooks.log
out net-before "$(net)"
# 1. --leave-running: images written, the container runs on.
$R checkpoint --leave-running --image-path $d/img1 $ID 2>&1; out leave-running $?
out after-leave-running "$(st $ID) $(still)"
# 2. pre-dump (the container runs on), then a dump on it (--parent-path): the container
# stops and is gone, its poststop hook run; restored, the counter goes on.
$R checkpoint --pre-dump --image-path $d/pre $ID 2>&1; out pre-dump $?
out after-pre-dump "$(st $ID) $(still)"
$R checkpoint --image-path $d/img2 --parent-path ../pre $ID 2>&1; out checkpoint $?
c1=$(count); out after-checkpoint "$(st $ID) $(still)"
out hooks-after-checkpoint "$(hooks)"; : >$d/hooks.log
: | $R restore -d -b $d --image-path $d/img2 $ID > >(cat >>$d/stdout) 2>&1; out restore $?
sleep 0.2; out restore-said "$(tr '\n' ' ' <$d/stdout)"
c2=$(advanced $c1); out after-restore "$(st $ID) $([ "$c2" -gt "$c1" ] 2>/dev/null && [ "$c2" -lt $((c1 + 50)) ] && echo continues || echo "from-zero($c1->$c2)")"
out hooks-after-restore "$(hooks)"; : >$d/hooks.log
out net-after-restore "$(net)"
# 3. the end: nothing left.
$R kill $ID KILL; for _ in $(seq 50); do [ "$(st $ID)" = stopped ] && break; sleep 0.1; done
$R delete $ID; out delete $?
out hooks-after-delete "$(hooks)"
out left "state=$(st $ID) cgroup=$([ -d /sys/fs/cgroup/ck/$R ] && echo yes || echo no) mounts=$(grep -c " $d" /proc/self/mountinfo) procs=$(pgrep -xc httpd || true)"
rmdir /sys/fs/cgroup/ck 2>/dev/null; true"#
    ));
    let took = t.elapsed();
    let mut lines: Vec<String> = o.stdout.lines().map(str::to_string).collect();
    if o.code != 0 {
        lines.push(format!("script exit {}: {}", o.code, o.stderr.trim()));
    }
    eprintln!("CRIU-CLI-REPORT {rt} ({took:.1?}): {lines:#?}");
    eprintln!("CRIU-CLI-STEPS {rt} (step@seconds): {}", steps(&o.stderr));
    (lines, took)
}

/// The `step@Ns` marks the scenarios' `out` writes to stderr: when each step ended, in
/// seconds since the script began (printed, never compared).
fn steps(stderr: &str) -> String {
    stderr.split_whitespace().filter(|w| w.contains('@') && w.ends_with('s')).collect::<Vec<_>>().join(" ")
}

/// The line `key: value` of a report, as `value`.
fn step(r: &[String], key: &str) -> String {
    r.iter()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .map(str::to_string)
        .unwrap_or_else(|| format!("no {key} line in {r:#?}"))
}

/// A runtime's report of a criu scenario, from a second run when one of the first run's
/// criu steps (`criu_steps`) did not exit 0; the same rule for runc and for berth. criu 4.2
/// in the loaded emulated guest fails now and then whatever the runtime: it gave up on
/// runc 1.3.6's container and on berth's after its 10 s seize timeout ("Unseizable
/// non-zombie ... state D"; 2 of 18 Docker scenarios on berth on this machine, with no other
/// guest running), and runc's restore through its shim failed once with "criu
/// failed: type RESTORE errno 0". A runtime that fails a step twice still fails the test;
/// the first failure's report is printed.
fn criu_report(who: &str, criu_steps: &[&str], mut scenario: impl FnMut(u32) -> Vec<String>) -> Vec<String> {
    let first = scenario(1);
    let failed: Vec<&str> = criu_steps.iter().copied().filter(|k| step(&first, k) != "0").collect();
    if failed.is_empty() {
        return first;
    }
    eprintln!("{who}: {failed:?} did not exit 0; the scenario runs once more: {first:#?}");
    scenario(2)
}

/// The criu steps of the CLI scenario.
const CLI_CRIU_STEPS: &[&str] = &["leave-running", "pre-dump", "checkpoint", "restore"];
/// The criu steps of the containerd and Docker scenarios.
const CLIENT_CRIU_STEPS: &[&str] = &["checkpoint", "restore"];

#[test]
fn criu_4_checkpoint_restore_on_the_berth_cli_as_on_runc() {
    let _t = turn();
    let check = run("criu --version | head -1; criu check 2>&1 | tail -1");
    eprintln!("criu in forky: {}", check.stdout.trim());
    assert!(check.stdout.contains("Version: 4."), "criu 4: {check:?}");
    assert!(check.stdout.contains("Looks good."), "criu check: {check:?}");
    // Each runtime gets a second try when a criu step failed (criu_report says why); the
    // time is that of the try reported.
    let report = |runtime: &str| {
        let mut took = Duration::ZERO;
        let r = criu_report(runtime, CLI_CRIU_STEPS, |_| {
            let (r, t) = criu_cli_scenario(runtime);
            took = t;
            r
        });
        (r, took)
    };
    let (runc, runc_took) = report("runc");
    let (berth, berth_took) = report("berth");
    eprintln!("CRIU-CLI timings: runc {runc_took:.1?}, berth {berth_took:.1?}");
    // runc 1.3.6 is the reference: its key facts first, then berth must show the same.
    for (k, v) in [
        ("run", "0"),
        ("leave-running", "0"),
        ("after-leave-running", "running moving"),
        ("pre-dump", "0"),
        ("after-pre-dump", "running moving"),
        ("checkpoint", "0"),
        ("after-checkpoint", "gone frozen"),
        ("restore", "0"),
        ("after-restore", "running continues"),
        ("delete", "0"),
        ("left", "state=gone cgroup=no mounts=0 procs=0"),
    ] {
        assert_eq!(step(&runc, k), v, "runc: {k}: {runc:#?}");
    }
    // runc brings the new network namespace's loopback up at create; criu 4.2 restores
    // the namespace with `lo` down and without its address (for runc as for berth).
    assert_eq!(step(&runc, "net-before"), "inet 127.0.0.1/8 served ", "runc: {runc:#?}");
    assert_eq!(step(&runc, "hooks-after-restore"), "prestart createRuntime ", "runc: {runc:#?}");
    // After a restore berth's container has its loopback as it was dumped (up, 127.0.0.1,
    // the httpd serving); runc 1.3.6's comes back with `lo` down ("Network is unreachable")
    // with the same criu. The one place berth is allowed to differ: those lines are compared
    // with berth's own line before the checkpoint instead.
    let net_after = |k: &str| k == "net-after-restore";
    assert_eq!(step(&berth, "net-after-restore"), step(&berth, "net-before"), "berth: {berth:#?}");
    let key = |l: &String| l.split(": ").next().unwrap_or("").to_string();
    let differ: Vec<String> = runc
        .iter()
        .zip(&berth)
        .filter(|(a, b)| a != b && !(net_after(&key(a)) && key(a) == key(b)))
        .map(|(a, b)| format!("runc {a:?} / berth {b:?}"))
        .collect();
    assert!(differ.is_empty() && runc.len() == berth.len(), "berth differs from runc: {differ:#?}\n{berth:#?}");
}

/// Shell helper of the containerd and Docker scenarios: `diagnose STEP` prints, as `diag:`
/// lines (which no correct run has), where the runtimes, criu and the shims are blocked,
/// every task in uninterruptible sleep (what criu's "Unseizable ... state D" names), and the
/// end of each criu dump and restore log, for a step that failed or that `timeout` had to stop.
const DIAGNOSE: &str = r#"diagnose() {
  echo "diag: $1 failed or timed out"
  for p in $(pgrep -f 'berth|criu|runc|containerd-shim'); do
    echo "diag: $(ps -o pid=,ppid=,stat=,wchan:24=,args= -p $p | cut -c1-200)"
    echo "diag:   stack $(tr '\n' ' ' </proc/$p/stack 2>/dev/null | cut -c1-300)"
    echo "diag:   fds $(for f in /proc/$p/fd/*; do printf '%s=%s ' ${f##*/} "$(readlink $f)"; done | cut -c1-400)"
  done
  for s in /proc/[0-9]*/stat; do
    read -r l <"$s" 2>/dev/null || continue; st=${l##*) }; [ "${st%% *}" = D ] || continue
    p=${s#/proc/}; p=${p%/stat}
    echo "diag: state D: $p $(cat /proc/$p/comm 2>/dev/null) stack $(tr '\n' ' ' </proc/$p/stack 2>/dev/null | cut -c1-300)"
  done
  for w in /run/containerd/io.containerd.runtime.v2.task/*/*/criu-work /run/containerd/io.containerd.runtime.v2.task/*/*/work; do
    [ -d "$w" ] && echo "diag: $w: $(ls -a $w | tr '\n' ' ')"
  done
  for l in $(find /run/containerd /var/lib/docker /run/docker \( -name 'restore.log' -o -name '*dump.log' \) 2>/dev/null); do
    grep -E 'Error|Warn|fifo|bad mode|inherit' "$l" | tail -n 12 | sed "s|^|diag: $l: |"; tail -n 6 "$l" | sed "s|^|diag: $l: |"
  done
  journalctl -q -n 14 --no-pager -u docker -u containerd 2>/dev/null | sed 's/^/diag: journal: /'
  journalctl -q --no-pager -u containerd 2>/dev/null | grep 'checkpoint .*exit' | tail -n 2 | sed 's/^/diag: shim said: /'
}"#;

/// The counter of the containerd and Docker scenarios, written to /count in the image's
/// root; `$c ... cat /count` reads it through an exec (again when it read the file between
/// the shell's truncation and its write: runc's Docker run once saw it empty).
fn counter_at(path: &str) -> String {
    COUNTER.replace("/data/count", path)
}

/// containerd 2.1 through a runtime's shim: a counting task, `ctr c checkpoint --task` (the
/// task runs on), the task and container removed, `ctr c restore --live` (container and task
/// from the checkpoint, on the runtime it names), the counter going on from the checkpoint.
/// The task has no stdio (`--null-io`): `ctr c restore` gives the restored task none, and
/// berth's shim hands the init containerd's FIFOs themselves, which criu restores only onto
/// a file of the same type and mode (runc's shim copies through pipes, which criu reconnects
/// to anything).
fn ctr_criu_scenario(runtime: &str, tag: &str) -> Vec<String> {
    let c = format!("ckc-{tag}");
    let o = run(&format!(
        r#"ctr="ctr -n forky"; c={c}; ref=berth.test/ck/{c}:1
out() {{ echo "$1: $2"; printf '%s@%ss ' "$1" $SECONDS >&2; }}
{DIAGNOSE}
count() {{ for _ in 1 2 3 4 5; do v=$($ctr task exec --exec-id r$RANDOM $c cat /count 2>/dev/null); [ -n "$v" ] && {{ echo $v; return; }}; sleep 0.1; done; echo 0; }}
status() {{ s=$($ctr task ls | awk -v c=$c '$1 == c {{print $3}}'); echo ${{s:-none}}; }}
shim() {{ for p in $(pgrep -f containerd-shim); do tr '\0' ' ' </proc/$p/cmdline | grep -q -- " -id $c " && basename "$(readlink /proc/$p/exe)"; done | sort -u | tr '\n' ' '; }}
$ctr run -d --null-io --runtime {runtime} {CTR_IMAGE} $c sh -c '{counter}' >/dev/null; out run $?
for _ in $(seq 200); do [ "$(count)" -ge 20 ] && break; sleep 0.1; done
out shim "$(shim)"
before=$(count)
$ctr container checkpoint --task $c $ref 2>&1; out checkpoint $?
out after-checkpoint "$(status)"
$ctr task kill -s KILL $c; for _ in $(seq 100); do [ "$(status)" = STOPPED ] && break; sleep 0.1; done
$ctr task delete $c >/dev/null; $ctr container rm $c; out removed $?
timeout 100 $ctr container restore --live $c $ref 2>&1; r=$?; [ $r != 0 ] && diagnose restore; out restore $r
out after-restore "$(status)"
after=$(count)
out counter "$([ "$after" -ge "$before" ] 2>/dev/null && echo continues || echo "from-zero($before->$after)")"
out shim-after-restore "$(shim)"
$ctr task kill -s KILL $c; for _ in $(seq 100); do [ "$(status)" = STOPPED ] && break; sleep 0.1; done
$ctr task delete $c >/dev/null; $ctr container rm $c; out rm $?
$ctr image rm $ref >/dev/null; out image-rm $?
out left "containers=$($ctr container ls -q | grep -c "^$c$") tasks=$($ctr task ls -q | grep -c "^$c$") cgroup=$([ -d /sys/fs/cgroup/forky/$c ] && echo yes || echo no) shims=$(shim | wc -w)"
true"#,
        counter = counter_at("/count"),
    ));
    let mut lines: Vec<String> = o.stdout.lines().map(str::to_string).collect();
    if o.code != 0 {
        lines.push(format!("script exit {}: {}", o.code, o.stderr.trim()));
    }
    eprintln!("CRIU-CTR-REPORT {runtime}: {lines:#?}");
    eprintln!("CRIU-CTR-STEPS {runtime} (step@seconds): {}", steps(&o.stderr));
    lines
}

#[test]
fn criu_4_checkpoint_restore_through_containerd_2_1_on_berths_shim_as_on_runcs() {
    let _t = turn();
    let t = Instant::now();
    // Each shim gets a second try when a criu step failed (criu_report says why), under a
    // new container name.
    let report = |name: &str| {
        let shim = format!("io.containerd.{name}.v2");
        criu_report(name, CLIENT_CRIU_STEPS, |n| {
            let tag = if n == 1 { name.to_string() } else { format!("{name}-again") };
            ctr_criu_scenario(&shim, &tag)
        })
    };
    let (runc, berth) = (report("runc"), report("berth"));
    eprintln!("CRIU-CTR timing: {:.1?} for both", t.elapsed());
    for (name, r) in [("runc", &runc), ("berth", &berth)] {
        let shim = format!("containerd-shim-{name}-v2 ");
        for (k, v) in [
            ("run", "0"),
            ("shim", shim.as_str()),
            ("checkpoint", "0"),
            ("after-checkpoint", "RUNNING"),
            ("removed", "0"),
            ("restore", "0"),
            ("after-restore", "RUNNING"),
            ("counter", "continues"),
            ("shim-after-restore", shim.as_str()),
            ("rm", "0"),
            ("image-rm", "0"),
            ("left", "containers=0 tasks=0 cgroup=no shims=0"),
        ] {
            assert_eq!(step(r, k), v, "{name}: {k}: {r:#?}");
        }
        assert_eq!(r.len(), 12, "{name}: {r:#?}");
    }
}

/// daemon.json of the Docker checkpoint test: experimental (docker checkpoint needs it),
/// berth by path and berth's shim by runtimeType. Docker 28 gives checkpoint options (and
/// with them `Exit`) only to a runtime of type `io.containerd.runc.v2`, so berth's shim is
/// told by its options file what a checkpoint without options does (docs/shim.md).
const DAEMON_JSON_CRIU: &str = r#"{"experimental":true,"runtimes":{
 "berth":{"path":"/usr/local/bin/berth"},
 "berth-shim":{"runtimeType":"io.containerd.berth.v2","options":{"ConfigPath":"/etc/berth/shim-docker.toml"}}
}}"#;

/// The options file of that registration, as docs/shim.md gives it.
const SHIM_DOCKER_TOML: &str = "SystemdCgroup = true\nCheckpointExitWithoutOptions = true\n";

/// Docker 28 on a runtime: a counting container (host network: `docker start --checkpoint`
/// fails on a bridge or none network with runc too, containerd #12141), `docker checkpoint
/// create` (the container stops), `docker start --checkpoint`, the counter going on.
fn docker_criu_scenario(rt: &str) -> Vec<String> {
    let o = run(&format!(
        r#"c=ckd
out() {{ echo "$1: $2"; printf '%s@%ss ' "$1" $SECONDS >&2; }}
{DIAGNOSE}
count() {{ for _ in 1 2 3 4 5; do v=$(docker exec $c cat /count 2>/dev/null); [ -n "$v" ] && {{ echo $v; return; }}; sleep 0.1; done; echo 0; }}
state() {{ docker inspect -f '{{{{.State.Status}}}}' $c 2>/dev/null || echo none; }}
docker run -d --runtime {rt} --network host --name $c busybox:local sh -c '{counter}' >/dev/null; out run $?
for _ in $(seq 200); do [ "$(count)" -ge 20 ] && break; sleep 0.1; done
before=$(count)
docker checkpoint create $c cp1 2>&1; out checkpoint $?
s=$(state); [ "$s" = exited ] || diagnose checkpoint; out after-checkpoint "$s"
out checkpoints "$(docker checkpoint ls $c 2>&1 | awk 'NR > 1 {{print $1}}' | tr '\n' ' ')"
timeout 100 docker start --checkpoint cp1 $c 2>&1; r=$?; [ $r != 0 ] && diagnose restore; out restore $r
out after-restore "$(state)"
after=$(count)
out counter "$([ "$after" -ge "$before" ] 2>/dev/null && echo continues || echo "from-zero($before->$after)")"
docker rm -f $c >/dev/null; out rm $?
out left "containers=$(docker ps -aq --filter name=$c | wc -l) scopes=$(systemctl list-units --all --no-legend 'docker-*.scope' | wc -l)"
true"#,
        counter = counter_at("/count"),
    ));
    let mut lines: Vec<String> = o.stdout.lines().map(str::to_string).collect();
    if o.code != 0 {
        lines.push(format!("script exit {}: {}", o.code, o.stderr.trim()));
    }
    eprintln!("CRIU-DOCKER-REPORT {rt}: {lines:#?}");
    eprintln!("CRIU-DOCKER-STEPS {rt} (step@seconds): {}", steps(&o.stderr));
    lines
}

#[test]
fn criu_4_docker_28_checkpoint_and_start_on_berth_as_on_runc() {
    let _t = turn();
    let t = Instant::now();
    ok(&format!("mkdir -p /etc/berth && printf '{SHIM_DOCKER_TOML}' >/etc/berth/shim-docker.toml"));
    register_runtimes(DAEMON_JSON_CRIU);
    // experimental is not among the options a reload changes.
    ok("[ \"$(docker info --format '{{.ExperimentalBuild}}')\" = true ] || systemctl restart docker");
    assert_eq!(ok("docker info --format '{{.ExperimentalBuild}}'"), "true");
    // Each runtime gets a second try when a criu step failed (criu_report says why).
    let runc = criu_report("runc", CLIENT_CRIU_STEPS, |_| docker_criu_scenario("runc"));
    for (k, v) in [
        ("run", "0"),
        ("checkpoint", "0"),
        ("after-checkpoint", "exited"),
        ("checkpoints", "cp1 "),
        ("restore", "0"),
        ("after-restore", "running"),
        ("counter", "continues"),
        ("rm", "0"),
        ("left", "containers=0 scopes=0"),
    ] {
        assert_eq!(step(&runc, k), v, "runc: {k}: {runc:#?}");
    }
    let mut differ = Vec::new();
    for rt in ["berth", "berth-shim"] {
        let r = criu_report(rt, CLIENT_CRIU_STEPS, |_| docker_criu_scenario(rt));
        if r != runc {
            differ.push(format!("{rt}: {r:#?}"));
        }
    }
    eprintln!("CRIU-DOCKER timing: {:.1?} for runc, berth, berth-shim", t.elapsed());
    assert!(differ.is_empty(), "differ from runc {runc:#?}: {differ:#?}");
}

/// The files whose comparison tests (those built on `each_runtime`) run in the guest, most
/// telling first. The `skip` lists name what cannot run in this guest and why.
const COMPARISON_BINARIES: &[TestBinary] = &[
    TestBinary {
        name: "runc_compat",
        source: include_str!("runc_compat.rs"),
        // Both assert a v1 hierarchy before comparing (the guest is pure cgroup v2).
        skip: &[
            ("delete_removes_a_pre_existing_empty_cgroup_directory", "v1 hierarchies"),
            ("pre_existing_frozen_cgroup_is_refused_with_runcs_phrase", "a v1 freezer hierarchy"),
        ],
    },
    TestBinary { name: "exec", source: include_str!("exec.rs"), skip: &[] },
    TestBinary { name: "cli", source: include_str!("cli.rs"), skip: &[] },
    TestBinary { name: "process", source: include_str!("process.rs"), skip: &[] },
    TestBinary { name: "mounts", source: include_str!("mounts.rs"), skip: &[] },
    TestBinary { name: "hooks", source: include_str!("hooks.rs"), skip: &[] },
    TestBinary { name: "namespaces", source: include_str!("namespaces.rs"), skip: &[] },
    TestBinary {
        name: "cgroups",
        source: include_str!("cgroups.rs"),
        // Both write v1 files (cpuset, cpu.rt_*): the guest is pure cgroup v2, where
        // cgroup_v2.rs and systemd_cgroup.rs test the same.
        skip: &[
            ("empty_cpuset_in_a_pre_existing_ancestor_is_filled", "a v1 cpuset hierarchy"),
            ("update_rt_period_and_runtime_in_the_order_the_kernel_accepts", "v1 cpu.rt_* files"),
        ],
    },
    TestBinary {
        name: "seccomp",
        source: include_str!("seccomp.rs"),
        // Both compile a syscall helper with gcc, which the image does not hold (its package
        // list stays as it is: a change rebuilds it).
        skip: &[
            ("enosys_stub_follows_the_default_action", "gcc"),
            ("syscalls_above_the_highest_the_profile_names_get_enosys", "gcc"),
        ],
    },
    TestBinary { name: "console", source: include_str!("console.rs"), skip: &[] },
    TestBinary {
        name: "userns",
        source: include_str!("userns.rs"),
        // It writes below a v1 hierarchy (/sys/fs/cgroup/pids); its mount of cgroup2 from a
        // user namespace also changed the guest's cgroup2 superblock options (nsdelegate
        // gone), which the leak check of the test beside it reported.
        skip: &[("cgroup_mount_follows_its_ro_option_but_not_in_a_user_namespace_without_cgroupns", "v1 paths")],
    },
    TestBinary {
        name: "rootless",
        source: include_str!("rootless.rs"),
        // The guest's unprivileged user has no delegated cgroup: the rootless containers run
        // in the runtime's own cgroup, as on the v1 host.
        skip: &[
            ("rootless_maps_with_subordinate_ids_go_through_newuidmap", "newuidmap (uidmap is not in the image)"),
            ("rootless_cgroup_mount_without_a_cgroup_shows_the_users_own_read_only", "v1 hierarchies"),
        ],
    },
    TestBinary {
        name: "lsm",
        source: include_str!("lsm.rs"),
        // The guest boots with AppArmor on (and SELinux off): the tests of a config asking
        // for AppArmor where it is off cannot apply; lsm_applied.rs tests it applied. The
        // SELinux ones, the empty labels and `features` compare here as on the host.
        skip: &[
            ("apparmor_profile_where_apparmor_is_off_fails_create", "AppArmor is on"),
            ("exec_apparmor_and_process_label_where_the_module_is_off_fail", "AppArmor is on"),
        ],
    },
];

/// Modern oracles (issue 15): the comparison tests run in the guest, where runc 1.3.6 and
/// crun 1.28 are the references, against berth's static release binary; one run per test
/// binary, all in this one boot. Prints each binary's pass/fail counts, and berth's, runc's
/// and crun's side by side; every binary must pass.
#[test]
fn comparison_tests_pass_on_berth_and_on_runc_1_3_and_crun_1_28() {
    let _t = turn();
    let dir = "/root/oracle-tests";
    // By hand: BERTH_ORACLE_BINARIES=exec,cli runs only those; BERTH_ORACLE_NO_SKIP=1 also
    // compares where a test skips a runtime (conformance/src/oracle.rs).
    let only = std::env::var("BERTH_ORACLE_BINARIES").ok();
    let bins: Vec<TestBinary> = COMPARISON_BINARIES
        .iter()
        .filter(|b| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == b.name)))
        .copied()
        .collect();
    let mut env = "BERTH=/usr/local/bin/berth".to_string();
    if std::env::var_os(conformance::oracle::NO_SKIP_ENV).is_some() {
        env.push_str(&format!(" {}=1", conformance::oracle::NO_SKIP_ENV));
    }
    {
        let f = fixture();
        let Some(f) = f.as_ref() else { panic!("the guest is gone") };
        let into = f._share.path().join("tests");
        std::fs::create_dir_all(&into).unwrap_or_else(|e| panic!("{}: {e}", into.display()));
        for b in &bins {
            let path = guest_tests::sibling_test_binary(b.name).unwrap_or_else(|e| panic!("{e}"));
            conformance::systemd_guest::copy_into(&into, b.name, &path)
                .unwrap_or_else(|e| panic!("{} into the share: {e}", b.name));
        }
    }
    // On the guest's own disk: the tests' files (under /tmp) and their binaries apart from
    // the 9p share, which the guest reads slowly.
    ok(&format!("rm -rf {dir}; cp -r {SHARE_MOUNT}/tests {dir}"));
    let versions = ok("/usr/sbin/runc --version | head -1; /usr/bin/crun --version | head -1");
    eprintln!("the oracles: {}", versions.replace('\n', ", "));
    let t = Instant::now();
    let runs = {
        let mut f = fixture();
        let Some(f) = f.as_mut() else { panic!("the guest is gone") };
        guest_tests::run_all(&mut f.guest, dir, &env, &bins, Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}"))
    };
    eprintln!(
        "the comparison tests in the forky guest ({}), {:.1?}:\n{}",
        versions.replace('\n', ", "),
        t.elapsed(),
        guest_tests::table(&runs, &["berth", "runc", "crun"])
    );
    let failed: Vec<&guest_tests::BinaryRun> = runs.iter().filter(|r| !r.passed()).collect();
    assert!(failed.is_empty(), "failed in the guest: {:?}", failed.iter().map(|r| &r.name).collect::<Vec<_>>());
    for label in ["runc", "crun"] {
        let n: u32 = runs.iter().filter_map(|r| r.runtimes.get(label)).map(|c| c.passed).sum();
        assert!(n > 0, "no comparison ran on the guest's {label}");
    }
}
