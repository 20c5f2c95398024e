//! Runs inside the trixie guest (conformance/tests/systemd_guest.rs copies it in): a private
//! containerd whose CRI plugin has `SystemdCgroup = true` and its AppArmor default, as on a
//! node whose kubelet uses the systemd cgroup driver. For each handler (berth, then runc) it
//! runs a pod as kubelet would under `kubepods-burstable-pod<uid>.slice`: two long-running
//! containers (one with a memory limit), an exec, the logs, the stats, a third container the
//! memory limit OOM-kills, and the teardown, then stops the pod slice as kubelet does.
//!
//! It asserts nothing: it prints one line `CRI-FACTS <json>` per handler with what the CRI
//! client, systemd and the cgroup files showed, ids replaced by placeholders so that the two
//! handlers' lines compare equal when they behave alike; the test asserts on them.
//!
//! With `--containerd2` (the forky guest, conformance/tests/forky_guest.rs) the containerd is
//! a 2.x with config version 3, a snapshotter per handler (berth's own for handler berth,
//! overlayfs for runc); each handler's facts then also say where its containers' rootfs came
//! from, and three more lines follow: `CRI-FEATURES <json>` (the runtime handlers' features in
//! CRI's status, and `ctr plugins inspect-runtime` of each shim, i.e. its `-info`),
//! `CRI-RUNC-TYPE <json>` (a pod on berth's shim registered with runc's runtime type) and
//! `CRI-CLEANUP <json>` (the snapshots and mounts left once the images are removed).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use conformance::cri::{v1 as cri, CriEnv, CriOptions, BERTH_RUNC_TYPE};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let containerd2 = std::env::args().any(|a| a == "--containerd2");
    let env = CriEnv::start_with(CriOptions { systemd_cgroup: true, apparmor: true, containerd2 })?;
    let t = Instant::now();
    for handler in ["berth", "runc"] {
        let t = Instant::now();
        let facts = pod_facts(&env, handler)?;
        println!("CRI-FACTS {facts}");
        eprintln!("{handler}: the pod's lifecycle took {:.1?}", t.elapsed());
    }
    if containerd2 {
        println!("CRI-RUNC-TYPE {}", runc_type_pod(&env)?);
        println!("CRI-FEATURES {}", features(&env)?);
        println!("CRI-CLEANUP {}", cleanup(&env)?);
    }
    eprintln!("cri-systemd-pod: {:.1?} after containerd was up", t.elapsed());
    Ok(())
}

/// The runtime handlers' features as CRI's status gives them, and what containerd's
/// introspection API (`ctr plugins inspect-runtime`: containerd runs the shim's `-info`)
/// gives for each shim, with the options each handler has.
fn features(env: &CriEnv) -> Result<Value, Error> {
    let handlers: serde_json::Map<String, Value> = env
        .runtime_handlers()?
        .into_iter()
        .map(|h| {
            let f = h.features.map(|f| {
                json!({"recursive_read_only_mounts": f.recursive_read_only_mounts, "user_namespaces": f.user_namespaces})
            });
            (if h.name.is_empty() { "<default>".to_string() } else { h.name }, f.unwrap_or(Value::Null))
        })
        .collect();
    let berth_opts = env.dir.join("berth-shim.toml");
    let inspect = |args: &[&str]| -> Value {
        let out = env.ctr().args(["plugins", "inspect-runtime"]).args(args).output();
        match out {
            Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| json!({"error": format!("{e}: {}", String::from_utf8_lossy(&o.stdout))})),
            Ok(o) => json!({"error": String::from_utf8_lossy(&o.stderr)}),
            Err(e) => json!({"error": e.to_string()}),
        }
    };
    let berth_opts = berth_opts.to_string_lossy();
    Ok(json!({
        "cri_handlers": handlers,
        "inspect_berth": inspect(&["--runtime", "io.containerd.berth.v2", "--runtime-config-path", &berth_opts]),
        "inspect_runc": inspect(&["--runtime", "io.containerd.runc.v2", "--runc-binary", "/usr/sbin/runc"]),
    }))
}

/// A pod on handler [`BERTH_RUNC_TYPE`] (berth's shim registered with runc's runtime type, as
/// a node needs it for CRI to report berth's features): which shim serves it, an exec, where
/// the rootfs came from, and nothing left after the teardown.
fn runc_type_pod(env: &CriEnv) -> Result<Value, Error> {
    let cfg = env.pod_config("prunctype");
    let pod = env.run_pod(&cfg, BERTH_RUNC_TYPE)?;
    let c = env.run_container(&pod, env.container_config("c", "echo c up; exec sleep 600"), &cfg)?;
    let shims: std::collections::BTreeSet<String> = env
        .shim_pids()
        .into_iter()
        .filter_map(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
        .filter_map(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let exec = env.exec_sync(&c, &["sh", "-c", "echo in; cat /proc/self/cgroup"], 20)?;
    let rootfs = rootfs_facts(env, &c)?;
    let netns = env.pod_netns(&pod)?;
    env.teardown_pod(&pod, std::slice::from_ref(&c))?;
    let leaks = env.leaks_after(&netns, Duration::from_secs(20));
    Ok(json!({
        "shims": shims,
        "exec_exit": exec.exit_code,
        "exec_stdout": String::from_utf8_lossy(&exec.stdout).lines().collect::<Vec<_>>(),
        "log": log_messages(&cfg.log_directory, "c.log"),
        "rootfs": rootfs,
        "leaks": leaks.len(),
    }))
}

/// Snapshot keys in the k8s.io namespace of one snapshotter.
fn snapshot_keys(env: &CriEnv, snapshotter: &str) -> Vec<String> {
    env.ctr()
        .args(["snapshots", "--snapshotter", snapshotter, "ls"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|e| vec![format!("ctr: {e}")])
}

/// After both pods are gone: the images removed through CRI (as kubelet's image GC does),
/// then what is left in each snapshotter (containerd's garbage collector removes an image's
/// snapshots once nothing references them), and mounts of either snapshotter's layers.
fn cleanup(env: &CriEnv) -> Result<Value, Error> {
    let before =
        json!({"berth": snapshot_keys(env, "berth").len(), "overlayfs": snapshot_keys(env, "overlayfs").len()});
    for image in [conformance::cri::BUSYBOX_IMAGE, conformance::cri::PAUSE_IMAGE] {
        env.remove_image(image)?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (berth, overlay) = loop {
        let (b, o) = (snapshot_keys(env, "berth"), snapshot_keys(env, "overlayfs"));
        if (b.is_empty() && o.is_empty()) || Instant::now() > deadline {
            break (b, o);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let dirs: Vec<String> = [env.snapshotter_dir(), Some(env.dir.join("root"))]
        .into_iter()
        .flatten()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| dirs.iter().any(|d| l.contains(d.as_str())))
        .map(str::to_string)
        .collect();
    let images = String::from_utf8_lossy(&env.ctr().args(["images", "ls", "-q"]).output()?.stdout).trim().to_string();
    Ok(json!({
        "snapshots_before_rmi": before,
        "berth_snapshots_left": berth,
        "overlayfs_snapshots_left": overlay,
        "mounts_left": mounts,
        "images_left": images,
    }))
}

/// Where a container's rootfs came from: the snapshotter and key containerd recorded (the
/// verbose status), whether that snapshotter holds the key, and the rootfs mount the shim
/// made in the task's bundle (type, and whose directory its layers are in).
fn rootfs_facts(env: &CriEnv, id: &str) -> Result<Value, Error> {
    let (_, info) = env.container_status(id)?;
    let info: Value = info.get("info").and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
    let snapshotter = info["snapshotter"].as_str().unwrap_or_default().to_string();
    let key = info["snapshotKey"].as_str().unwrap_or_default().to_string();
    let held = snapshot_keys(env, &snapshotter).contains(&key);
    let target = format!("/{id}/rootfs");
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(' ').nth(4).is_some_and(|m| m.ends_with(&target)))
        .map(str::to_string)
        .unwrap_or_default();
    // "... - overlay overlay rw,lowerdir=...,upperdir=...": the type and the layers' home.
    let (fstype, options) = mount
        .split_once(" - ")
        .map(|(_, r)| {
            let mut f = r.split(' ');
            (f.next().unwrap_or_default().to_string(), f.nth(1).unwrap_or_default().to_string())
        })
        .unwrap_or_default();
    let upper = options.split(',').find_map(|o| o.strip_prefix("upperdir=")).unwrap_or_default();
    let berth_root = env.snapshotter_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
    let containerd_root = env.dir.join("root").to_string_lossy().into_owned();
    let home = if !berth_root.is_empty() && upper.starts_with(&berth_root) {
        "berth-snapshotter".to_string()
    } else if let Some(rest) = upper.strip_prefix(&containerd_root) {
        rest.split('/').nth(1).unwrap_or_default().to_string()
    } else {
        format!("elsewhere: {upper}")
    };
    Ok(json!({"snapshotter": snapshotter, "key_held": held, "fstype": fstype, "upperdir_of": home}))
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("sh: {e}"))
}

/// `systemctl show` of the properties, as `Name=value` lines in name order.
fn unit_props(unit: &str, props: &[&str]) -> Vec<String> {
    let mut cmd = format!("systemctl show {unit}");
    for p in props {
        cmd.push_str(&format!(" -p {p}"));
    }
    let mut lines: Vec<String> = sh(&cmd).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn log_messages(dir: &str, file: &str) -> Vec<String> {
    std::fs::read_to_string(Path::new(dir).join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
        .collect()
}

fn pod_facts(env: &CriEnv, handler: &str) -> Result<Value, Error> {
    let mut cfg = env.pod_config(&format!("p{handler}"));
    let uid = cfg.metadata.as_ref().map(|m| m.uid.replace('-', "_")).unwrap_or_default();
    // kubelet's name for a burstable pod's slice; systemd makes the slices above it.
    let slice = format!("kubepods-burstable-pod{uid}.slice");
    if let Some(l) = cfg.linux.as_mut() {
        l.cgroup_parent = slice.clone();
    }
    let pod = env.run_pod(&cfg, handler)?;
    let web = env.run_container(&pod, env.container_config("web", "echo web up; exec sleep 600"), &cfg)?;
    let rootfs = if env.options.containerd2 { rootfs_facts(env, &web)? } else { Value::Null };
    let mut side = env.container_config("side", "echo side up >&2; exec sleep 600");
    side.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let side = env.run_container(&pod, side, &cfg)?;
    let ids = [("<pod>", pod.as_str()), ("<web>", web.as_str()), ("<side>", side.as_str())];
    let norm = |s: &str| {
        let mut s = s.replace(&uid, "<uid>");
        for (name, id) in ids {
            s = s.replace(id, name);
        }
        s
    };
    let props = ["ActiveState", "Slice", "ControlGroup", "Delegate", "MemoryMax", "CPUQuotaPerSecUSec"];
    let web_unit = unit_props(&format!("cri-containerd-{web}.scope"), &props);
    let side_unit = unit_props(&format!("cri-containerd-{side}.scope"), &props);
    let pod_unit = unit_props(&format!("cri-containerd-{pod}.scope"), &props[..3]);
    let side_dir =
        format!("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/{slice}/cri-containerd-{side}.scope");
    let side_files = sh(&format!("cat {side_dir}/memory.max {side_dir}/cpu.max"));

    let exec = env.exec_sync(&web, &["sh", "-c", "echo in; cat /proc/self/cgroup; cat /proc/self/attr/current"], 20)?;
    let exec_out: Vec<String> = String::from_utf8_lossy(&exec.stdout)
        .lines()
        .map(|l| l.trim_end_matches('\0').to_string())
        .filter(|l| !l.is_empty())
        .collect();

    let mut r = env.runtime.clone();
    let stats = env
        .block(r.container_stats(cri::ContainerStatsRequest { container_id: web.clone() }))?
        .into_inner()
        .stats
        .unwrap_or_default();
    let working_set = stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0);
    let cpu_ns = stats.cpu.and_then(|c| c.usage_core_nano_seconds).map(|v| v.value).unwrap_or(0);

    // A tail of /dev/zero grows until the 16 MiB limit kills it.
    let mut hog = env.container_config("hog", "tail /dev/zero");
    hog.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources { memory_limit_in_bytes: 16 << 20, ..Default::default() }),
        ..Default::default()
    });
    let hog = env.run_container(&pod, hog, &cfg)?;
    let mut hog_status = env.wait_exited(&hog, Duration::from_secs(120))?;
    // The CRI plugin takes the exit from its Wait call and the OOM from the event stream, in
    // two goroutines; a status read between the two says "Error", a later one "OOMKilled".
    // Read it as kubelet does, on a relist (every second) after the exit: berth's shim has
    // handed containerd the TaskOOM before the exit by then (docs/shim.md).
    let settle = std::time::Instant::now() + Duration::from_secs(3);
    while hog_status.exit_code == 137 && hog_status.reason != "OOMKilled" && std::time::Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        hog_status = env.container_status(&hog)?.0;
    }

    // Teardown as kubelet does it: containers, the pod, then the pod's slice.
    let netns = env.pod_netns(&pod)?;
    for id in [&web, &side, &hog] {
        env.stop_container(id, 0)?;
        env.remove_container(id)?;
    }
    env.remove_pod(&pod)?;
    let leaks = env.leaks_after(&netns, Duration::from_secs(20));
    // The scopes go when their last process does; systemd may take a moment to notice.
    let deadline = Instant::now() + Duration::from_secs(20);
    let units_left = loop {
        let left: Vec<String> = [&pod, &web, &side, &hog]
            .iter()
            .map(|id| format!("cri-containerd-{id}.scope"))
            .filter(|u| sh(&format!("systemctl list-units --all --no-legend --plain {u}")).contains(u.as_str()))
            .map(|u| norm(&u.replace(&hog, "<hog>")))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let slice_stop = sh(&format!("systemctl stop {slice} && echo stopped"));
    let slice_dir_left = Path::new(&format!("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/{slice}")).exists();

    let mut facts = json!({
        "handler": handler,
        "pod_unit": pod_unit.iter().map(|l| norm(l)).collect::<Vec<_>>(),
        "web_unit": web_unit.iter().map(|l| norm(l)).collect::<Vec<_>>(),
        "side_unit": side_unit.iter().map(|l| norm(l)).collect::<Vec<_>>(),
        "side_files": side_files,
        "exec_exit": exec.exit_code,
        "exec_stdout": exec_out,
        "web_log": log_messages(&cfg.log_directory, "web.log"),
        "side_log": log_messages(&cfg.log_directory, "side.log"),
        "stats_working_set_nonzero": working_set > 0,
        "stats_cpu_nonzero": cpu_ns > 0,
        "hog_exit": hog_status.exit_code,
        "hog_reason": hog_status.reason,
        "leaks": leaks.iter().map(|l| norm(l)).collect::<Vec<_>>(),
        "units_left": units_left,
        "slice_stop": slice_stop,
        "slice_dir_left": slice_dir_left,
    });
    if env.options.containerd2 {
        facts["rootfs"] = rootfs;
    }
    Ok(facts)
}
