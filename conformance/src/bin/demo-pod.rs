//! `make demo`: the whole stack as Kubernetes uses it. Starts berth-snapshotter and a private
//! containerd with the CRI plugin, runs a pod with two containers on runtime handler berth,
//! execs into one, prints what each step saw, and tears everything down. The binaries are the
//! installed ones when BERTH, BERTH_SHIM, BERTH_SNAPSHOTTER and BERTH_PAUSE name them.

use std::time::Instant;

use conformance::cri::{CriEnv, BUSYBOX_IMAGE, PAUSE_IMAGE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    println!("== starting berth-snapshotter and containerd (CRI plugin, handler berth, CNI bridge)");
    let env = CriEnv::start()?;
    println!("   state in {}, images {PAUSE_IMAGE} and {BUSYBOX_IMAGE} imported", env.dir.display());
    let cfg = env.pod_config("demo");
    let pod = env.run_pod(&cfg, "berth")?;
    println!("== RunPodSandbox (handler berth): pod {}", &pod[..12]);
    let web = env.run_container(&pod, env.container_config("web", "echo web up; exec sleep 600"), &cfg)?;
    let side = env.run_container(&pod, env.container_config("sidecar", "echo sidecar up; exec sleep 600"), &cfg)?;
    println!("== CreateContainer + StartContainer: web {} and sidecar {}", &web[..12], &side[..12]);
    println!("   shims serving the pod: {:?} (one per pod)", env.shim_pids());
    let r = env.exec_sync(
        &web,
        &[
            "sh",
            "-c",
            "echo \"hostname: $(hostname)\"; echo \"user: $(id)\"; echo processes:; ps; \
            echo \"pod address: $(grep -B1 'host LOCAL' /proc/net/fib_trie | grep -o '10\\.[0-9.]*' | head -1)\"",
        ],
        10,
    )?;
    println!("== ExecSync into web (exit {}):", r.exit_code);
    print!("{}", String::from_utf8_lossy(&r.stdout));
    let (wp, sp) = (env.container_pid(&web)?, env.container_pid(&side)?);
    let link = |pid: u32, ns: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|l| l.display().to_string()).unwrap_or_default()
    };
    println!(
        "   web and sidecar share net {} and ipc {}",
        link(wp, "net") == link(sp, "net"),
        link(wp, "ipc") == link(sp, "ipc")
    );
    let log = std::path::Path::new(&cfg.log_directory).join("web.log");
    println!("== web's log ({}):", log.display());
    print!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    let netns = env.pod_netns(&pod)?;
    env.teardown_pod(&pod, &[web, side])?;
    let leaks = env.leaks_after(&netns, std::time::Duration::from_secs(10));
    println!("== StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox: left behind {leaks:?}");
    drop(env);
    println!("== containerd and berth-snapshotter stopped; {:.1} s in all", t.elapsed().as_secs_f64());
    Ok(())
}
