//! The pod path as kubelet drives it: CRI v1 calls to a private containerd whose CRI plugin
//! runs pods with runtime handler `berth` (containerd-shim-berth-v2 + berth) and, as the
//! reference, handler `runc`. Every test runs for both handlers with the same code.
//! Needs: containerd, containernetworking-plugins, busybox-static (`make deps`), and the
//! workspace's berth, berth-pause, berth-snapshotter and containerd-shim-berth-v2 built.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use conformance::cri::v1 as cri;
use conformance::cri::CriEnv;

const EXIT_WAIT: Duration = Duration::from_secs(30);
const LEAK_WAIT: Duration = Duration::from_secs(10);

fn env() -> CriEnv {
    CriEnv::start().unwrap_or_else(|e| panic!("starting containerd with CRI: {e}"))
}

/// The `F`ull lines of a CRI log file for one stream, without timestamps.
fn log_lines(path: &std::path::Path, stream: &str) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let ts = f.next().unwrap_or("");
            let st = f.next().unwrap_or("");
            let tag = f.next().unwrap_or("");
            let msg = f.next().unwrap_or("");
            assert!(
                ts.contains('T') && ts.ends_with('Z') || ts.contains('+'),
                "CRI log line without an RFC 3339 timestamp: {l:?}"
            );
            assert!(st == "stdout" || st == "stderr", "bad stream in {l:?}");
            assert!(tag == "F" || tag == "P", "bad tag in {l:?}");
            (st.to_string(), msg.to_string())
        })
        .filter(|(st, _)| st == stream)
        .map(|(_, m)| m)
        .collect()
}

fn log_path(pod: &cri::PodSandboxConfig, c: &cri::ContainerConfig) -> std::path::PathBuf {
    std::path::Path::new(&pod.log_directory).join(&c.log_path)
}

fn ns_link(pid: u32, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{ns}: {e}"))
}

/// Removes the pod and asserts nothing of it is left on the host.
fn remove_pod_without_leaks(env: &CriEnv, pod: &str) {
    let netns = env.pod_netns(pod).expect("pod netns");
    env.remove_pod(pod).expect("stop and remove pod");
    let leaks = env.leaks_after(&netns, LEAK_WAIT);
    assert!(leaks.is_empty(), "left after RemovePodSandbox: {leaks:#?}");
}

/// RunPodSandbox, then a container with env, a bind mount, resources, runAsUser and a
/// read-only rootfs; what it saw is read back from its CRI log file.
fn container_config_is_applied(handler: &str) {
    let env = env();
    let pod_cfg = env.pod_config("cfg");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let host_dir = env.dir.join("shared");
    fs::create_dir_all(&host_dir).expect("host dir");
    fs::write(host_dir.join("hello"), "from the host\n").expect("host file");
    let mut c = env.container_config(
        "app",
        "echo greeting=$GREETING; cat /data/hello; id -u; id -g; \
         touch /rootfs-write 2>/dev/null && echo rootfs=rw || echo rootfs=ro; \
         touch /tmp/x && echo tmp=rw; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/cpu/cpu.shares; \
         echo to-stderr >&2",
    );
    c.envs = vec![cri::KeyValue { key: "GREETING".into(), value: "hello berth".into() }];
    c.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: host_dir.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    }];
    // A writable volume (an emptyDir's stand-in) on the read-only rootfs, writable for uid 1000.
    let tmp_dir = env.dir.join("scratch");
    fs::create_dir_all(&tmp_dir).expect("scratch dir");
    fs::set_permissions(&tmp_dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).expect("chmod");
    c.mounts.push(cri::Mount {
        container_path: "/tmp".into(),
        host_path: tmp_dir.to_string_lossy().into_owned(),
        ..Default::default()
    });
    let linux = c.linux.get_or_insert_with(Default::default);
    linux.resources =
        Some(cri::LinuxContainerResources { memory_limit_in_bytes: 64 << 20, cpu_shares: 512, ..Default::default() });
    linux.security_context = Some(cri::LinuxContainerSecurityContext {
        run_as_user: Some(cri::Int64Value { value: 1000 }),
        run_as_group: Some(cri::Int64Value { value: 1000 }),
        readonly_rootfs: true,
        ..Default::default()
    });
    let id = env.run_container(&pod, c.clone(), &pod_cfg).expect("create+start");
    let st = env.wait_exited(&id, EXIT_WAIT).expect("exit");
    assert_eq!(st.exit_code, 0, "container status {st:?}");
    let out = log_lines(&log_path(&pod_cfg, &c), "stdout");
    assert_eq!(
        out,
        [
            "greeting=hello berth",
            "from the host",
            "1000",
            "1000",
            "rootfs=ro",
            "tmp=rw",
            &(64u64 << 20).to_string(),
            "512"
        ],
        "what the container printed"
    );
    assert_eq!(log_lines(&log_path(&pod_cfg, &c), "stderr"), ["to-stderr"]);
    env.remove_container(&id).expect("RemoveContainer");
    remove_pod_without_leaks(&env, &pod);
}

/// Runs each security context in its own container of a privileged pod and returns the
/// `CapEff:` and `Seccomp:` lines of /proc/self/status the container printed.
fn status_lines_under(handler: &str, contexts: Vec<(&str, cri::LinuxContainerSecurityContext)>) -> Vec<Vec<String>> {
    let env = env();
    let mut pod_cfg = env.pod_config("sec");
    // The CRI plugin allows a privileged container only in a privileged sandbox.
    if let Some(sc) = pod_cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
    }
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -s '\\t ' ' '";
    let mut all = Vec::new();
    for (name, sc) in contexts {
        let mut c = env.container_config(name, script);
        c.linux.get_or_insert_with(Default::default).security_context = Some(sc);
        let id = env.run_container(&pod, c.clone(), &pod_cfg).expect("create+start");
        let st = env.wait_exited(&id, EXIT_WAIT).expect("exit");
        assert_eq!(st.exit_code, 0, "{name}: {st:?}");
        env.remove_container(&id).expect("RemoveContainer");
        all.push(log_lines(&log_path(&pod_cfg, &c), "stdout"));
    }
    remove_pod_without_leaks(&env, &pod);
    all
}

/// Capabilities add/drop and privileged as the container sees them.
fn capabilities_and_privileged_are_applied(handler: &str) {
    let out = status_lines_under(
        handler,
        vec![
            (
                "caps",
                cri::LinuxContainerSecurityContext {
                    capabilities: Some(cri::Capability {
                        add_capabilities: vec!["NET_ADMIN".into()],
                        drop_capabilities: vec!["ALL".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ),
            ("priv", cri::LinuxContainerSecurityContext { privileged: true, ..Default::default() }),
        ],
    );
    // CAP_NET_ADMIN alone: bit 12.
    assert!(out[0].contains(&"CapEff: 0000000000001000".to_string()), "{:?}", out[0]);
    assert!(out[1].contains(&"Seccomp: 0".to_string()), "{:?}", out[1]);
    let full = out[1]
        .iter()
        .find_map(|l| l.strip_prefix("CapEff: "))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    assert!(full.count_ones() >= 38, "privileged CapEff {full:x}");
}

/// seccomp RuntimeDefault: the container runs under a filter (mode 2).
fn seccomp_runtime_default_is_applied(handler: &str) {
    let out = status_lines_under(
        handler,
        vec![(
            "seccomp",
            cri::LinuxContainerSecurityContext {
                seccomp: Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )],
    );
    assert!(out[0].contains(&"Seccomp: 2".to_string()), "{:?}", out[0]);
}

/// ExecSync in a running container, stats, and a live resource update.
fn exec_stats_update(handler: &str) {
    let env = env();
    let pod_cfg = env.pod_config("exec");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let mut c = env.container_config("srv", "echo started; exec sleep 600");
    c.linux.get_or_insert_with(Default::default).resources =
        Some(cri::LinuxContainerResources { memory_limit_in_bytes: 64 << 20, ..Default::default() });
    let id = env.run_container(&pod, c, &pod_cfg).expect("create+start");
    let r = env.exec_sync(&id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10).expect("ExecSync");
    assert_eq!((r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()), (3, &b"out\n"[..], &b"err\n"[..]));

    let streamed = env
        .exec_stream(&id, &["sh", "-c", "echo streamed out; echo streamed err >&2; exit 5"])
        .expect("Exec streaming");
    assert_eq!(String::from_utf8_lossy(&streamed.stdout), "streamed out\n");
    assert_eq!(String::from_utf8_lossy(&streamed.stderr), "streamed err\n");
    assert!(
        streamed.status.contains("Failure") && streamed.status.contains("\"5\""),
        "exit code 5 in the status channel: {}",
        streamed.status
    );

    let mut rs = env.runtime.clone();
    env.block(rs.update_container_resources(cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 96 << 20,
            cpu_shares: 256,
            ..Default::default()
        }),
        ..Default::default()
    }))
    .expect("UpdateContainerResources");
    let r = env
        .exec_sync(
            &id,
            &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares"],
            10,
        )
        .expect("ExecSync after update");
    assert_eq!(String::from_utf8_lossy(&r.stdout), format!("{}\n256\n", 96u64 << 20));

    let stats = env
        .block(rs.container_stats(cri::ContainerStatsRequest { container_id: id.clone() }))
        .expect("ContainerStats")
        .into_inner()
        .stats
        .expect("stats");
    let mem = stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0);
    assert!(mem > 0, "working set of a running sleep: {mem}");
    assert!(stats.cpu.and_then(|c| c.usage_core_nano_seconds).is_some(), "cpu usage reported");
    let pstats = env
        .block(rs.pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: pod.clone() }))
        .expect("PodSandboxStats")
        .into_inner()
        .stats
        .expect("pod stats");
    let linux = pstats.linux.expect("linux pod stats");
    assert!(
        linux.containers.iter().any(|s| s.attributes.as_ref().map(|a| a.id.as_str()) == Some(id.as_str())),
        "pod stats list the container: {:?}",
        linux.containers
    );
    env.stop_container(&id, 2).expect("StopContainer");
    env.remove_container(&id).expect("RemoveContainer");
    remove_pod_without_leaks(&env, &pod);
}

/// StopContainer sends SIGTERM, and SIGKILL once the grace period is over.
fn stop_escalates_to_sigkill(handler: &str) {
    let env = env();
    let pod_cfg = env.pod_config("stop");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let polite = env.run_container(&pod, env.container_config("polite", "exec sleep 600"), &pod_cfg).expect("polite");
    let stubborn_cfg =
        env.container_config("stubborn", "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done");
    let stubborn = env.run_container(&pod, stubborn_cfg.clone(), &pod_cfg).expect("stubborn");
    conformance::util::poll_until("stubborn ready", EXIT_WAIT, || {
        fs::read_to_string(log_path(&pod_cfg, &stubborn_cfg)).ok().filter(|t| t.contains("ready"))
    });
    env.stop_container(&polite, 2).expect("stop polite");
    let st = env.wait_exited(&polite, EXIT_WAIT).expect("polite exited");
    // sleep as pid 1 of its pid namespace ignores TERM... unless it is not pid 1; either way
    // it must be gone, by TERM (143) or by KILL (137).
    assert!(st.exit_code == 143 || st.exit_code == 137, "polite: {st:?}");
    env.stop_container(&stubborn, 1).expect("stop stubborn");
    let st = env.wait_exited(&stubborn, EXIT_WAIT).expect("stubborn exited");
    assert_eq!(st.exit_code, 137, "stubborn: {st:?}");
    assert!(
        log_lines(&log_path(&pod_cfg, &stubborn_cfg), "stdout").contains(&"got TERM".to_string()),
        "TERM was delivered first"
    );
    env.remove_container(&polite).expect("rm");
    env.remove_container(&stubborn).expect("rm");
    remove_pod_without_leaks(&env, &pod);
}

/// Two containers of one pod: one shim for the pod, the pod's network and ipc namespaces.
fn pod_shares_shim_and_namespaces(handler: &str) {
    let env = env();
    let pod_cfg = env.pod_config("two");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let a = env.run_container(&pod, env.container_config("a", "exec sleep 600"), &pod_cfg).expect("a");
    let b = env.run_container(&pod, env.container_config("b", "exec sleep 600"), &pod_cfg).expect("b");
    let shims: BTreeSet<u32> = env.shim_pids().into_iter().collect();
    assert_eq!(shims.len(), 1, "one shim per pod: {shims:?}");
    let (pa, pb) = (env.container_pid(&a).expect("pid a"), env.container_pid(&b).expect("pid b"));
    for ns in ["net", "ipc", "uts"] {
        assert_eq!(ns_link(pa, ns), ns_link(pb, ns), "{ns} namespace shared");
    }
    assert_ne!(ns_link(pa, "mnt"), ns_link(pb, "mnt"), "each container has its own rootfs");
    let netns = env.pod_netns(&pod).expect("netns");
    let pod_net = fs::metadata(&netns).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).expect("netns");
    assert_eq!(ns_link(pa, "net"), format!("net:[{pod_net}]"), "the pod's netns file is the one joined");
    let r = env.exec_sync(&a, &["cat", "/proc/net/fib_trie"], 10).expect("exec");
    assert!(String::from_utf8_lossy(&r.stdout).contains("10.231."), "pod address on the private subnet");
    for id in [&a, &b] {
        env.stop_container(id, 1).expect("stop");
        env.remove_container(id).expect("rm");
    }
    remove_pod_without_leaks(&env, &pod);
}

/// A container over its memory limit is killed by the kernel: reason OOMKilled, exit 137.
fn oom_killed_is_reported(handler: &str) {
    let env = env();
    let pod_cfg = env.pod_config("oom");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let mut c = env.container_config("hog", "exec dd if=/dev/zero of=/dev/null bs=128M count=1");
    c.linux.get_or_insert_with(Default::default).resources =
        Some(cri::LinuxContainerResources { memory_limit_in_bytes: 32 << 20, ..Default::default() });
    let id = env.run_container(&pod, c, &pod_cfg).expect("create+start");
    let st = env.wait_exited(&id, EXIT_WAIT).expect("exit");
    assert_eq!(st.exit_code, 137, "{st:?}");
    // containerd 1.6's runc shim races its OOM watcher against the reaper, so the reference
    // handler sometimes reports "Error" (containerd#8180, fixed upstream in #12714). berth's
    // shim publishes the OOM before the exit it caused, and must always say OOMKilled.
    let accepted: &[&str] = if handler == "runc" { &["OOMKilled", "Error"] } else { &["OOMKilled"] };
    assert!(accepted.contains(&st.reason.as_str()), "{handler}: reason {:?}: {st:?}", st.reason);
    env.remove_container(&id).expect("rm");
    remove_pod_without_leaks(&env, &pod);
}

/// A container whose command the kernel will not exec (an image for another architecture)
/// starts and exits, as under runc: kubelet sees it exited with reason Error, the reason in
/// its log (`kubectl logs`), and restarts it by its policy; not a StartContainer error.
/// An ExecSync of such a file (an exec probe) likewise gets the process's exit code and
/// its stderr, not an error of the call.
fn command_the_kernel_cannot_exec_exits_with_the_reason_in_its_log(handler: &str) {
    let env = env();
    let bad = env.dir.join("not-for-this-arch");
    conformance::util::write_binary_for_no_machine(&bad);
    let entry = cri::Mount {
        container_path: "/entry".into(),
        host_path: bad.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    };
    let pod_cfg = env.pod_config("noexec");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let mut c = env.container_config("noexec", "");
    c.command = vec!["/entry".into()];
    c.mounts = vec![entry.clone()];
    let id = env.run_container(&pod, c.clone(), &pod_cfg).expect("CreateContainer and StartContainer");
    let st = env.wait_exited(&id, EXIT_WAIT).expect("exit");
    // runc 1.1 (the reference handler here) exits 1; runc 1.2 and later 255, as berth.
    let codes: &[i32] = if handler == "runc" { &[1, 255] } else { &[255] };
    assert!(codes.contains(&st.exit_code), "{handler}: exit code {}: {st:?}", st.exit_code);
    assert_eq!(st.reason, "Error", "{handler}: {st:?}");
    assert_eq!(log_lines(&log_path(&pod_cfg, &c), "stderr"), ["exec /entry: exec format error"], "{handler}");
    env.remove_container(&id).expect("RemoveContainer");

    let mut c = env.container_config("sleeper", "exec sleep 600");
    c.mounts = vec![entry];
    let sleeper = env.run_container(&pod, c, &pod_cfg).expect("the sleeper");
    let r = env.exec_sync(&sleeper, &["/entry"], 10).expect("ExecSync of a file the kernel cannot exec");
    assert!(codes.contains(&r.exit_code), "{handler}: ExecSync exit code {}", r.exit_code);
    assert_eq!(String::from_utf8_lossy(&r.stderr), "exec /entry: exec format error\n", "{handler}: ExecSync stderr");
    env.stop_container(&sleeper, 1).expect("stop");
    env.remove_container(&sleeper).expect("rm");
    remove_pod_without_leaks(&env, &pod);
}

/// A host directory made a shared mount point of its own (this host's / is private, and
/// containerd refuses Bidirectional propagation from a source that is not shared); dropping
/// it unmounts the directory with whatever propagated into it, even if the test fails.
struct SharedMount(std::path::PathBuf);

impl SharedMount {
    fn new(dir: &std::path::Path) -> SharedMount {
        fs::create_dir_all(dir).expect("shared dir");
        let guard = SharedMount(dir.to_path_buf());
        let d = dir.display();
        let (rc, out) = conformance::sh(&format!("mount --bind {d} {d} && mount --make-shared {d}"));
        assert_eq!(rc, 0, "cannot make {d} a shared mount: {out}");
        guard
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        conformance::sh(&format!("umount -R -l {}", self.0.display()));
    }
}

/// Kubernetes' Bidirectional mount propagation (what CSI node plugins rely on; critest's
/// "mount propagation" test): a tmpfs a privileged container mounts inside the volume
/// shows on the host.
fn bidirectional_mount_propagation_reaches_the_host(handler: &str) {
    let env = env();
    let host_dir = env.dir.join("bidi");
    let shared = SharedMount::new(&host_dir);
    fs::create_dir(host_dir.join("sub")).expect("sub dir");
    let mut pod_cfg = env.pod_config("bidi");
    if let Some(sc) = pod_cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
    }
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let mut c = env.container_config("bidi", "mount -t tmpfs -o size=1m tmpfs /vol/sub && echo from-ctr > /vol/sub/f");
    c.mounts = vec![cri::Mount {
        container_path: "/vol".into(),
        host_path: host_dir.to_string_lossy().into_owned(),
        propagation: cri::MountPropagation::PropagationBidirectional as i32,
        ..Default::default()
    }];
    c.linux.get_or_insert_with(Default::default).security_context =
        Some(cri::LinuxContainerSecurityContext { privileged: true, ..Default::default() });
    let id = env.run_container(&pod, c, &pod_cfg).expect("create+start");
    let st = env.wait_exited(&id, EXIT_WAIT).expect("exit");
    assert_eq!(st.exit_code, 0, "{st:?}");
    let sub = host_dir.join("sub");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let on_host = mountinfo.lines().any(|l| l.split(' ').nth(4) == sub.to_str() && l.contains(" - tmpfs "));
    assert!(on_host, "{handler}: the container's tmpfs on /vol/sub did not reach the host");
    assert_eq!(fs::read_to_string(sub.join("f")).expect("file"), "from-ctr\n");
    env.remove_container(&id).expect("RemoveContainer");
    drop(shared);
    remove_pod_without_leaks(&env, &pod);
}

/// Stopping a container through CRI leaves containerd's copy of its output intact. The
/// container has no namespace options, so it joins the pod's pid namespace and its `sleep`
/// outlives the `sh` init, holding stdout and stderr; containerd closes its ends of the
/// FIFOs as soon as it handles the exit, so what is left must be killed (and gone) before
/// the shim reports the exit ("Failed to pipe stdout … file already closed" otherwise), as
/// runc's shim does. Also, the shim's NotFound answer to containerd's kill-all after the
/// exit is not logged at info level.
fn stop_keeps_stdio_until_the_exit(handler: &str) {
    let env = env();
    let pod_cfg = env.pod_config("stdio");
    let pod = env.run_pod(&pod_cfg, handler).expect("RunPodSandbox");
    let cfg = env.container_config("looper", "id -G; echo ready; while :; do sleep 1; done");
    let id = env.run_container(&pod, cfg.clone(), &pod_cfg).expect("create+start");
    conformance::util::poll_until("looper ready", EXIT_WAIT, || {
        fs::read_to_string(log_path(&pod_cfg, &cfg)).ok().filter(|t| t.contains("ready"))
    });
    env.stop_container(&id, 1).expect("StopContainer");
    let st = env.wait_exited(&id, EXIT_WAIT).expect("exited");
    assert!(st.exit_code == 143 || st.exit_code == 137, "{st:?}");
    let out = log_lines(&log_path(&pod_cfg, &cfg), "stdout");
    assert_eq!(out, ["0", "ready"], "id -G and ready, each once, in the log");
    env.remove_container(&id).expect("RemoveContainer");
    remove_pod_without_leaks(&env, &pod);
    let log = env.log();
    let bad: Vec<&str> =
        log.lines().filter(|l| l.contains("file already closed") || l.contains("Failed to pipe")).collect();
    // runc's shim kills what is left (`runc kill --all`) but does not wait for it to die
    // before the TaskExit, so it loses this race now and then (about 1 run in 4 here);
    // berth's shim waits, and must never lose it.
    if handler == "runc" && !bad.is_empty() {
        eprintln!("runc's shim lost the stdio race this time:\n{}", bad.join("\n"));
    } else {
        assert!(bad.is_empty(), "{handler}: containerd lost the container's stdio:\n{}", bad.join("\n"));
    }
    if handler == "berth" {
        let noisy: Vec<&str> =
            log.lines().filter(|l| l.contains("level=info") && l.contains("already finished")).collect();
        assert!(noisy.is_empty(), "the shim logs the kill-all NotFound at info:\n{}", noisy.join("\n"));
    }
}

macro_rules! for_handlers {
    ($($name:ident),* $(,)?) => {
        mod berth {
            $( #[test] fn $name() { super::$name("berth") } )*
        }
        mod runc {
            $( #[test] fn $name() { super::$name("runc") } )*
        }
    };
}

for_handlers!(
    container_config_is_applied,
    capabilities_and_privileged_are_applied,
    seccomp_runtime_default_is_applied,
    exec_stats_update,
    stop_escalates_to_sigkill,
    pod_shares_shim_and_namespaces,
    oom_killed_is_reported,
    command_the_kernel_cannot_exec_exits_with_the_reason_in_its_log,
    bidirectional_mount_propagation_reaches_the_host,
    stop_keeps_stdio_until_the_exit,
);
