//! berth's production-like guest: Debian 13 (trixie) with systemd as PID 1, pure cgroup v2,
//! AppArmor on, trixie's docker.io, containerd, podman, runc and crun (see
//! docs/production-guest.md). One boot serves every test here; each asserts what the guest
//! reported through the command channel. The image is built on first use and cached under
//! /var/cache/berth/guests. Needs root, qemu-system-x86, debootstrap and BERTH (the static
//! release binary, as `make conformance` sets it); without them every test fails.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use conformance::systemd_guest::{ensure_image, BootOptions, CmdOutput, Guest, Suite, SHARE_MOUNT};
use serde_json::json;

/// The booted guest and the share it reads berth's binaries from; taken and dropped at exit
/// (statics are never dropped), which kills qemu and removes the share.
struct Fixture {
    guest: Guest,
    _share: tempfile::TempDir,
}

static FIXTURE: OnceLock<Result<Mutex<Option<Fixture>>, String>> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some(Ok(m)) = FIXTURE.get() {
        let taken = m.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
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

/// The share: berth, the shim (and the snapshotter when built), and a busybox bundle's
/// config.json from `berth spec` on the host.
fn make_share(berth: &std::path::Path) -> Result<tempfile::TempDir, String> {
    let share = tempfile::Builder::new().prefix("berth-trixie-share-").tempdir().map_err(|e| e.to_string())?;
    let copy = |from: &std::path::Path, name: &str| {
        std::fs::copy(from, share.path().join(name)).map(|_| ()).map_err(|e| format!("{}: {e}", from.display()))
    };
    copy(berth, "berth")?;
    // The shim and snapshotter of the same build as BERTH (the release ones under `make
    // conformance`), else the newest built.
    let sibling = |name: &str, env: &str| match berth.parent().map(|d| d.join(name)) {
        Some(p) if p.is_file() && std::env::var_os(env).is_none() => p,
        _ => conformance::util::workspace_binary(name, env),
    };
    copy(&sibling("containerd-shim-berth-v2", "BERTH_SHIM"), "containerd-shim-berth-v2")?;
    // The CRI test's pod: the snapshotter and pause image of the same build, and the CRI
    // client that drives containerd from inside the guest.
    copy(&sibling("berth-snapshotter", "BERTH_SNAPSHOTTER"), "berth-snapshotter")?;
    copy(&sibling("berth-pause", "BERTH_PAUSE"), "berth-pause")?;
    copy(std::path::Path::new(env!("CARGO_BIN_EXE_cri-systemd-pod")), "cri-systemd-pod")?;
    let spec_dir = share.path().join("bundle");
    std::fs::create_dir(&spec_dir).map_err(|e| e.to_string())?;
    let st =
        std::process::Command::new(berth).args(["spec", "-b"]).arg(&spec_dir).status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("berth spec: {st}"));
    }
    let path = spec_dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["sh", "-c", "echo hello from berth; cat /proc/self/cgroup; exit 3"]);
    c["root"] = json!({"path": "rootfs", "readonly": true});
    c["linux"]["cgroupsPath"] = json!("/berth-test/hello");
    std::fs::write(&path, serde_json::to_vec_pretty(&c).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    // The systemd cgroup driver's checks (conformance/qemu/trixie-systemd-cgroup.sh says what
    // it expects here): three bundles' configs beside the script.
    let sd = |args: &[&str], cgroups_path: &str| {
        let mut c = c.clone();
        c["process"]["args"] = json!(args);
        c["linux"]["cgroupsPath"] = json!(cgroups_path);
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 42}});
        serde_json::to_vec_pretty(&c).map_err(|e| e.to_string())
    };
    for (name, args, cgroups_path) in [
        ("config.json", &["sleep", "1000"][..], "system.slice:berth:sdt"),
        ("config2.json", &["sleep", "1000"][..], "bt-pod1.slice:cri:sdn"),
        ("config3.json", &["true"][..], "system.slice:berth:sdd"),
    ] {
        std::fs::write(share.path().join(name), sd(args, cgroups_path)?).map_err(|e| e.to_string())?;
    }
    std::fs::write(share.path().join("trixie-systemd-cgroup.sh"), SYSTEMD_CGROUP_SH).map_err(|e| e.to_string())?;
    std::fs::write(share.path().join("trixie-podman-rootless.sh"), PODMAN_ROOTLESS_SH).map_err(|e| e.to_string())?;
    std::fs::write(share.path().join("trixie-docker-rootless.sh"), DOCKER_ROOTLESS_SH).map_err(|e| e.to_string())?;
    Ok(share)
}

/// Run in the guest by `rootless_podman_with_limits_on_berth_as_on_runc_and_crun`.
const PODMAN_ROOTLESS_SH: &str = include_str!("../qemu/trixie-podman-rootless.sh");
/// Run in the guest by `rootless_docker_runs_on_berth_as_on_runc`.
const DOCKER_ROOTLESS_SH: &str = include_str!("../qemu/trixie-docker-rootless.sh");

/// Run in the guest by `the_systemd_driver_makes_scopes_systemd_knows`.
const SYSTEMD_CGROUP_SH: &str = include_str!("../qemu/trixie-systemd-cgroup.sh");

fn boot() -> Result<Fixture, String> {
    let berth = berth_binary()?;
    let t = Instant::now();
    let img = ensure_image(Suite::Trixie).map_err(|e| e.to_string())?;
    match img.built_in {
        Some(d) => eprintln!("trixie image built from scratch in {d:.1?}: {}", img.dir.display()),
        None => eprintln!("trixie image cached: {} ({:.1?})", img.dir.display(), t.elapsed()),
    }
    let share = make_share(&berth)?;
    let opts = BootOptions { share: Some(share.path().to_path_buf()), ..BootOptions::default() };
    let mut guest = Guest::boot(&img, &opts).map_err(|e| e.to_string())?;
    eprintln!("trixie guest ready in {:.1?}: systemd says {:?}", guest.boot_to_ready, guest.system_state);
    // berth's binaries, and the containers' busybox root (imported as an image into docker
    // and podman by their tests: no registry is reachable, so images are made locally).
    let setup = guest
        .run(
            &format!(
                "set -e
                install -m 0755 {SHARE_MOUNT}/berth* {SHARE_MOUNT}/containerd-shim-berth-v2 /usr/local/bin/
                r=/root/bundle/rootfs
                mkdir -p $r/bin $r/dev $r/proc $r/sys $r/tmp $r/etc $r/run
                cp {SHARE_MOUNT}/bundle/config.json /root/bundle/
                cp /bin/busybox $r/bin/
                for a in $(busybox --list); do [ $a = busybox ] || ln -s busybox $r/bin/$a; done"
            ),
            Duration::from_secs(600),
        )
        .map_err(|e| e.to_string())?;
    if setup.code != 0 {
        return Err(format!("guest setup failed ({}): {}\n{}", setup.code, setup.stdout, setup.stderr));
    }
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
        Err(e) => panic!("cannot run the trixie guest: {e}"),
    }
}

/// Runs `script` in the guest and prints it with what it returned.
fn run(script: &str) -> CmdOutput {
    run_for(script, Duration::from_secs(180))
}

fn run_for(script: &str, timeout: Duration) -> CmdOutput {
    let mut f = fixture();
    let Some(f) = f.as_mut() else { panic!("the guest is gone") };
    let o = f.guest.run(script, timeout).unwrap_or_else(|e| panic!("{script}: {e}"));
    eprintln!("guest$ {script}\n  -> {} stdout={:?} stderr={:?}", o.code, o.stdout, o.stderr);
    o
}

fn ok(script: &str) -> String {
    let o = run(script);
    assert_eq!(o.code, 0, "{script} failed: {}\n{}", o.stdout, o.stderr);
    o.stdout.trim().to_string()
}

#[test]
fn pid1_is_systemd_257_and_the_system_is_up() {
    let state = {
        let f = fixture();
        f.as_ref().map(|f| f.guest.system_state.clone()).unwrap_or_default()
    };
    assert_eq!(ok("readlink /proc/1/exe"), "/usr/lib/systemd/systemd");
    let v = ok("systemctl --version | head -1");
    assert!(v.starts_with("systemd 257 "), "{v}");
    let failed = ok("systemctl list-units --failed --no-legend --plain");
    eprintln!("system state {state:?}; failed units: {failed:?}");
    assert!(state == "running" || state == "degraded", "is-system-running: {state:?}; failed: {failed}");
}

#[test]
fn cgroup_v2_is_the_only_hierarchy() {
    assert_eq!(ok("stat -f -c %T /sys/fs/cgroup"), "cgroup2fs");
    let mounts = ok("awk '$3 ~ /^cgroup/ {print $2, $3}' /proc/self/mounts");
    assert_eq!(mounts, "/sys/fs/cgroup cgroup2", "{mounts}");
    let controllers = ok("cat /sys/fs/cgroup/cgroup.controllers");
    for c in ["cpu", "memory", "pids", "io"] {
        assert!(controllers.split(' ').any(|x| x == c), "{c} missing: {controllers}");
    }
}

#[test]
fn apparmor_is_enabled_with_profiles_loaded() {
    assert_eq!(ok("cat /sys/module/apparmor/parameters/enabled"), "Y");
    let lsm = ok("cat /sys/kernel/security/lsm");
    assert!(lsm.split(',').any(|l| l == "apparmor"), "{lsm}");
    assert_eq!(ok("systemctl is-active apparmor.service"), "active");
}

#[test]
fn kernel_is_trixies_6_12() {
    let r = ok("uname -r");
    assert!(r.starts_with("6.12.") && r.ends_with("-amd64"), "{r}");
}

#[test]
fn clients_are_trixies_and_running() {
    let docker = ok("dockerd --version");
    assert!(docker.starts_with("Docker version 26.1."), "{docker}");
    let ctrd = ok("containerd --version");
    assert!(ctrd.contains(" 1.7."), "{ctrd}");
    let podman = ok("podman --version");
    assert!(podman.starts_with("podman version 5."), "{podman}");
    assert!(ok("runc --version").starts_with("runc version 1.1."));
    assert!(ok("crun --version").starts_with("crun version 1."));
    assert_eq!(ok("systemctl is-active docker.service containerd.service"), "active\nactive");
    // Docker's own view of the host: what it puts in every spec follows from this.
    let info = ok("docker info --format '{{.CgroupDriver}} {{.CgroupVersion}} {{json .SecurityOptions}}'");
    assert!(info.starts_with("systemd 2 "), "{info}");
    assert!(info.contains("name=apparmor"), "{info}");
}

/// The bundle's busybox root imported into docker (`docker`) or podman (`podman`) as
/// busybox:local, once.
fn import_busybox(client: &str) {
    ok(&format!(
        "{client} image inspect busybox:local >/dev/null 2>&1 || \
         tar -C /root/bundle/rootfs -c . | {client} import - busybox:local >/dev/null"
    ));
}

/// berth registered by path in dockerd's daemon.json, as docs/operations.md says.
fn register_berth_in_docker() {
    ok(
        r#"printf '{"runtimes":{"berth":{"path":"/usr/local/bin/berth"}}}\n' >/etc/docker/daemon.json && systemctl reload docker"#,
    );
}

#[test]
fn docker_runs_a_local_busybox_image_on_runc() {
    import_busybox("docker");
    let out = ok("docker run --rm --runtime runc busybox:local sh -c 'echo hello from docker; cat /proc/self/attr/current; cat /proc/self/cgroup'");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"hello from docker"), "{out}");
    // dockerd's default profile, applied by runc: what berth must learn (issue 14 item 3).
    assert_eq!(lines.get(1), Some(&"docker-default (enforce)"), "{out}");
    assert_eq!(lines.get(2), Some(&"0::/"), "{out}");
}

#[test]
fn podman_runs_a_local_busybox_image_on_runc_and_crun() {
    import_busybox("podman");
    for rt in ["runc", "crun"] {
        let out = ok(&format!(
            "podman run --rm --runtime {rt} --network none busybox:local sh -c 'echo hello from {rt}; cat /proc/self/cgroup'"
        ));
        assert_eq!(out, format!("hello from {rt}\n0::/"), "{rt}: {out}");
    }
}

#[test]
fn berth_runs_a_busybox_bundle_with_the_cgroupfs_driver() {
    let v = ok("berth --version");
    assert!(v.starts_with("berth"), "{v}");
    let o = run("cd /root/bundle && berth --root /run/berth-test run hello-guest");
    assert_eq!(o.code, 3, "the container's exit code; stdout {:?} stderr {:?}", o.stdout, o.stderr);
    assert_eq!(o.stdout, "hello from berth\n0::/berth-test/hello\n", "stderr: {}", o.stderr);
    // The container's cgroup and state went with it.
    assert_eq!(ok("test -e /sys/fs/cgroup/berth-test/hello && echo left || echo gone"), "gone");
    assert_eq!(ok("ls /run/berth-test"), "");
}

/// Docker with its defaults on this host (the systemd cgroup driver, the docker-default
/// AppArmor profile) and berth registered by path in daemon.json: the container runs under
/// the profile, in a scope systemd knows.
#[test]
fn docker_runs_on_berth_under_docker_default_in_a_systemd_scope() {
    import_busybox("docker");
    register_berth_in_docker();
    // --cidfile: the id names the scope, checked after --rm removed the container (other
    // tests' containers run at the same time in this guest).
    let o = run("rm -f /run/bdd.cid; docker run --rm --cidfile /run/bdd.cid --runtime berth busybox:local sh -c 'echo hello from berth; cat /proc/self/attr/current; echo; cat /proc/self/cgroup'");
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let lines: Vec<&str> = o.stdout.lines().map(|l| l.trim_end_matches('\0')).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.first().copied(), Some("hello from berth"), "{}", o.stdout);
    assert_eq!(lines.get(1).copied(), Some("docker-default (enforce)"), "{}", o.stdout);
    // Docker's default cgroupns is private on cgroup v2: the container sees its scope as /.
    assert_eq!(lines.get(2).copied(), Some("0::/"), "{}", o.stdout);
    // What the profile denies is denied.
    let o = run("docker run --rm --runtime berth busybox:local sh -c 'echo h > /proc/sysrq-trigger'");
    assert_ne!(o.code, 0, "writing /proc/sysrq-trigger under docker-default: {}\n{}", o.stdout, o.stderr);
    // No scope is left once the container is gone.
    assert_eq!(ok("systemctl list-units --all --no-legend docker-$(cat /run/bdd.cid).scope | wc -l"), "0");
}

/// `berth --systemd-cgroup` against systemd 257: the container is a transient scope in its
/// slice with the resources as unit properties (and the same values in the cgroup files),
/// `update` and `daemon-reload` keep them, a missing nested slice is made, `delete` leaves no
/// unit, and the name of a container whose init died can be reused.
#[test]
fn the_systemd_driver_makes_scopes_systemd_knows() {
    let o =
        run_for(&format!("sh {share}/trixie-systemd-cgroup.sh {share}", share = SHARE_MOUNT), Duration::from_secs(300));
    assert!(
        o.stdout.lines().any(|l| l == "RESULT: ok"),
        "code {}\nstdout:\n{}\nstderr:\n{}",
        o.code,
        o.stdout,
        o.stderr
    );
}

/// podman 5 with its systemd cgroup manager and `--runtime` given berth's path, next to
/// runc: run, a memory limit the container sees, exec into a detached container, stop, rm.
#[test]
fn podman_runs_on_berth_as_on_runc() {
    import_busybox("podman");
    for rt in ["runc", "/usr/local/bin/berth"] {
        let p = format!("podman --runtime {rt}");
        let out = ok(&format!(
            "{p} run --rm --network none --memory 64m busybox:local sh -c 'echo hello; cat /sys/fs/cgroup/memory.max'"
        ));
        assert_eq!(out, "hello\n67108864", "{rt}: {out}");
        let id = ok(&format!("{p} run -d --network none --name pb busybox:local sleep 1000"));
        assert!(!id.is_empty(), "{rt}: no id");
        let out = ok(&format!("{p} exec pb sh -c 'echo in; id -u'"));
        assert_eq!(out, "in\n0", "{rt}: {out}");
        ok(&format!("{p} stop -t 1 pb >/dev/null && {p} rm pb >/dev/null"));
        assert_eq!(ok(&format!("{p} ps -a --filter name=pb --format '{{{{.Names}}}}'")), "", "{rt}");
    }
}

/// Docker's everyday commands on berth, as on runc: a detached container, exec, pause and
/// unpause, a memory limit that OOM-kills (exit 137), stop and rm.
#[test]
fn docker_exec_pause_oom_stop_on_berth_as_on_runc() {
    import_busybox("docker");
    register_berth_in_docker();
    for rt in ["runc", "berth"] {
        ok(&format!("docker run -d --runtime {rt} --name db busybox:local sleep 1000 >/dev/null"));
        assert_eq!(ok("docker exec db sh -c 'echo in'"), "in", "{rt}");
        ok("docker pause db >/dev/null");
        assert_eq!(ok("docker inspect -f '{{.State.Status}}' db"), "paused", "{rt}");
        ok("docker unpause db >/dev/null");
        assert_eq!(ok("docker exec db echo back"), "back", "{rt}");
        ok("docker stop -t 1 db >/dev/null && docker rm db >/dev/null");
        // A tail of /dev/zero grows until the 16 MiB limit kills it.
        let o = run(&format!(
            "docker run --rm --runtime {rt} --memory 16m --memory-swap 16m busybox:local sh -c 'tail /dev/zero'"
        ));
        assert_eq!(o.code, 137, "{rt}: OOM kill; stdout {:?} stderr {:?}", o.stdout, o.stderr);
    }
}

/// The rest of Docker's everyday commands on berth, as on runc: `-it` gives the container a
/// terminal; `--cpus` and `--pids-limit` become the scope's properties and the cgroup's files;
/// `update` changes both while the container runs; `stats` reads the container's usage; and
/// `systemctl` shows the container's scope as active.
#[test]
fn docker_tty_cpus_pids_update_stats_on_berth_as_on_runc() {
    import_busybox("docker");
    register_berth_in_docker();
    for rt in ["runc", "berth"] {
        // script(1) gives docker a terminal, as a person at a shell has. Its stdin is the
        // agent's /dev/null: the NUL it then writes comes back echoed as "^@" (with runc too).
        let tty = ok(&format!(
            "script -qec \"docker run -it --rm --runtime {rt} busybox:local sh -c \
             'test -t 0 && echo stdin-tty; test -t 1 && echo stdout-tty; tty; echo done'\" /dev/null \
             | tr -d '\\r' | sed 's/^\\^@//'"
        ));
        assert_eq!(tty, "stdin-tty\nstdout-tty\n/dev/pts/0\ndone", "{rt}: docker run -it");
        let id = ok(&format!(
            "docker run -d --runtime {rt} --name dl --cpus 0.5 --pids-limit 42 --memory 64m --memory-swap 64m \
             busybox:local sleep 1000"
        ));
        let unit = format!("docker-{id}.scope");
        assert_eq!(ok(&format!("systemctl is-active {unit}")), "active", "{rt}");
        let files = ok("docker exec dl sh -c 'cd /sys/fs/cgroup; cat cpu.max pids.max memory.max'");
        assert_eq!(files, "50000 100000\n42\n67108864", "{rt}: the container's cgroup files");
        let props = ok(&format!("systemctl show {unit} -p CPUQuotaPerSecUSec -p TasksMax -p MemoryMax | sort"));
        assert_eq!(props, "CPUQuotaPerSecUSec=500ms\nMemoryMax=67108864\nTasksMax=42", "{rt}: {unit}");

        ok("docker update --memory 32m --memory-swap 32m --pids-limit 50 dl >/dev/null");
        let files = ok("docker exec dl sh -c 'cd /sys/fs/cgroup; cat pids.max memory.max'");
        assert_eq!(files, "50\n33554432", "{rt}: after docker update");
        let props = ok(&format!("systemctl show {unit} -p TasksMax -p MemoryMax | sort"));
        assert_eq!(props, "MemoryMax=33554432\nTasksMax=50", "{rt}: {unit} after docker update");

        let stats = ok("docker stats --no-stream --format '{{.PIDs}} {{.MemUsage}}' dl");
        let (pids, mem) = stats.split_once(' ').unwrap_or_default();
        assert_eq!(pids, "1", "{rt}: docker stats: {stats}");
        assert!(mem.ends_with("/ 32MiB") && !mem.starts_with("0B"), "{rt}: docker stats: {stats}");
        ok("docker rm -f dl >/dev/null");
        assert_eq!(ok(&format!("systemctl list-units --all --no-legend {unit} | wc -l")), "0", "{rt}: {unit} left");
    }
}

/// containerd 1.7's CRI plugin as a kubelet with the systemd cgroup driver uses it
/// (`SystemdCgroup = true`, its default AppArmor profile) through containerd-shim-berth-v2,
/// next to runc: a two-container pod in `kubepods-burstable-pod<uid>.slice`, each container a
/// delegated `cri-containerd-<id>.scope` with its limits as unit properties and cgroup files,
/// exec, logs, stats, a container OOM-killed (`OOMKilled`, 137), and a teardown that leaves
/// no unit, cgroup, mount, shim or netns. The guest runs the CRI client
/// (src/bin/cri-systemd-pod.rs), which prints what it saw.
#[test]
fn cri_pods_with_systemd_cgroup_on_berth_as_on_runc() {
    let bins = "/usr/local/bin";
    let o = run_for(
        &format!(
            "BERTH={bins}/berth BERTH_SHIM={bins}/containerd-shim-berth-v2 BERTH_SNAPSHOTTER={bins}/berth-snapshotter \
             BERTH_PAUSE={bins}/berth-pause {SHARE_MOUNT}/cri-systemd-pod"
        ),
        Duration::from_secs(900),
    );
    assert_eq!(o.code, 0, "cri-systemd-pod failed:\n{}\n{}", o.stdout, o.stderr);
    let facts: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CRI-FACTS "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(facts.len(), 2, "one line per handler: {}", o.stdout);
    let berth = &facts[0];
    assert_eq!(berth["handler"], "berth");
    let has = |field: &str, line: &str| {
        let v = berth[field].as_array().cloned().unwrap_or_default();
        assert!(v.iter().any(|l| l == line), "berth: {field} lacks {line:?}: {v:?}");
    };
    let slice = "kubepods-burstable-pod<uid>.slice";
    for (field, id) in [("web_unit", "<web>"), ("side_unit", "<side>"), ("pod_unit", "<pod>")] {
        has(field, "ActiveState=active");
        has(field, &format!("Slice={slice}"));
        has(field, &format!("ControlGroup=/kubepods.slice/kubepods-burstable.slice/{slice}/cri-containerd-{id}.scope"));
    }
    has("web_unit", "Delegate=yes");
    has("side_unit", "MemoryMax=67108864");
    has("side_unit", "CPUQuotaPerSecUSec=500ms");
    assert_eq!(berth["side_files"], "67108864\n50000 100000", "berth: the side container's cgroup files");
    assert_eq!(berth["exec_exit"], 0);
    assert_eq!(berth["exec_stdout"], json!(["in", "0::/", "cri-containerd.apparmor.d (enforce)"]));
    assert_eq!(berth["web_log"], json!(["web up"]));
    assert_eq!(berth["side_log"], json!(["side up"]));
    assert_eq!(berth["stats_working_set_nonzero"], true);
    assert_eq!(berth["stats_cpu_nonzero"], true);
    assert_eq!((&berth["hog_exit"], &berth["hog_reason"]), (&json!(137), &json!("OOMKilled")));
    assert_eq!(berth["leaks"], json!([]), "berth: left after RemovePodSandbox");
    assert_eq!(berth["units_left"], json!([]), "berth: units left after the teardown");
    assert_eq!((&berth["slice_stop"], &berth["slice_dir_left"]), (&json!("stopped"), &json!(false)));
    let (mut b, mut r) = (facts[0].clone(), facts[1].clone());
    // containerd-shim-runc-v2 reports an OOM kill as an event that can lose the race with
    // the exit under load (the CRI plugin then says "Error"; seen once in three runs); the
    // exit code 137 is compared, the reason asserted for berth above.
    for f in ["handler", "hog_reason"] {
        b[f] = json!(null);
        r[f] = json!(null);
    }
    assert_eq!(b, r, "berth and runc saw different things");
}

/// Rootless podman 5 as a user with a lingering systemd instance (issue 12, item 2): its
/// systemd cgroup manager puts each container in a `libpod-<id>.scope` of the user's own
/// manager, reached on the user's bus, in the cgroup v2 subtree systemd delegates to the
/// user. On runc, crun and berth alike: the limits are in the container's files, enforced
/// (OOM kill, refused forks), a detached container's scope is active with its MemoryMax and
/// gone after rm.
#[test]
fn rootless_podman_with_limits_on_berth_as_on_runc_and_crun() {
    import_busybox("podman");
    let (get, all) = report(run_for(&format!("sh {SHARE_MOUNT}/trixie-podman-rootless.sh"), Duration::from_secs(900)));
    assert!(get("host", "delegated").split(',').any(|c| c == "memory"), "memory is delegated to the user\n{all}");
    for rt in ["runc", "crun", "berth"] {
        assert_eq!(get(rt, "limits"), "0,67108864,42", "{rt}: root inside, the limits in the files\n{all}");
        assert_eq!(get(rt, "oom"), "137", "{rt}: the 16m container is OOM-killed\n{all}");
        assert_ne!(get(rt, "refused_forks"), "0", "{rt}: pids.max 5 refuses forks\n{all}");
        assert_eq!(get(rt, "exec"), "0", "{rt}: podman exec\n{all}");
        assert_eq!(get(rt, "scope"), "active,33554432", "{rt}: the user manager's scope\n{all}");
        assert_eq!(get(rt, "units_left"), "0", "{rt}: no unit after rm\n{all}");
    }
    assert_eq!(get("host", "containers_left"), "0", "{all}");
}

/// A guest script's "<runtime> <what>=<value>" report: a lookup (panicking with the whole
/// output when a line is missing) and that output.
fn report(o: CmdOutput) -> (impl Fn(&str, &str) -> String, String) {
    let all = format!("code {}\nstdout:\n{}\nstderr:\n{}", o.code, o.stdout, o.stderr);
    let shown = all.clone();
    let get = move |rt: &str, key: &str| -> String {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{rt} {key}=")))
            .unwrap_or_else(|| panic!("no {rt} {key} in the report\n{shown}"))
            .to_string()
    };
    (get, all)
}

/// Rootless Docker (issue 12, item 3): trixie's dockerd-rootless.sh (rootlesskit,
/// slirp4netns) as a user with a lingering systemd instance, berth added by path; Docker
/// uses the systemd cgroup driver of the user's manager. On runc and berth: root inside is
/// the user, the limits are in the files, exec, stop with SIGTERM, no unit left.
#[test]
fn rootless_docker_runs_on_berth_as_on_runc() {
    let (get, all) = report(run_for(&format!("sh {SHARE_MOUNT}/trixie-docker-rootless.sh"), Duration::from_secs(900)));
    assert_eq!(get("host", "rootless"), "1,systemd", "dockerd runs rootless with the systemd driver\n{all}");
    let runc_run = get("runc", "run");
    assert!(runc_run.starts_with("0,"), "root inside\n{all}");
    for rt in ["runc", "berth"] {
        assert_eq!(get(rt, "run"), runc_run, "{rt}: root inside is the user, the same map\n{all}");
        assert_eq!(get(rt, "limits"), "67108864,42", "{rt}\n{all}");
        assert_eq!(get(rt, "exec"), "0", "{rt}\n{all}");
        assert_eq!(get(rt, "stopped"), "exited,0", "{rt}: SIGTERM reached the container\n{all}");
        assert_eq!(get(rt, "units_left"), "0", "{rt}\n{all}");
    }
    assert_eq!(get("host", "containers_left"), "0", "{all}");
    assert_eq!(get("host", "dockerd_stopped"), "yes", "{all}");
}
