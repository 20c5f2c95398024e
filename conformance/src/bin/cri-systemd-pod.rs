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

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use conformance::cri::{v1 as cri, CriEnv, CriOptions};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let env = CriEnv::start_with(CriOptions { systemd_cgroup: true, apparmor: true })?;
    for handler in ["berth", "runc"] {
        let facts = pod_facts(&env, handler)?;
        println!("CRI-FACTS {facts}");
    }
    Ok(())
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
    let hog_status = env.wait_exited(&hog, Duration::from_secs(120))?;

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

    Ok(json!({
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
    }))
}
