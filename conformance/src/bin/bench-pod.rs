//! `make bench` pod benchmark: through CRI, a pod of one sleeping container started to running
//! (RunPodSandbox + CreateContainer + StartContainer) and torn down (StopContainer,
//! RemoveContainer, StopPodSandbox, RemovePodSandbox), handler berth and handler runc
//! interleaved; then the shims' memory per pod (PSS) with 10 pods up. BENCH_POD_N iterations
//! per handler (default 20).

use std::fs;
use std::time::{Duration, Instant};

use conformance::cri::{CriEnv, HANDLERS};

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

fn pss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("BENCH_POD_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let env = CriEnv::start()?;
    let mut start: [Vec<Duration>; 2] = Default::default();
    let mut stop: [Vec<Duration>; 2] = Default::default();
    // One warm-up pod per handler: the first pod pays for image and CNI setup.
    for (h, handler) in HANDLERS.iter().enumerate() {
        let (pod, ids) = env.sleeping_pod(&format!("warm{h}"), handler, 1)?;
        env.teardown_pod(&pod, &ids)?;
    }
    for i in 0..n {
        for (h, handler) in HANDLERS.iter().enumerate() {
            let t0 = Instant::now();
            let (pod, ids) = env.sleeping_pod(&format!("b{i}-{h}"), handler, 1)?;
            start[h].push(t0.elapsed());
            let t1 = Instant::now();
            env.teardown_pod(&pod, &ids)?;
            stop[h].push(t1.elapsed());
        }
    }
    println!("pod benchmark, {n} pods per handler, interleaved (median):");
    for (h, handler) in HANDLERS.iter().enumerate() {
        println!(
            "  {handler:6} start to running {:7.1} ms   teardown {:7.1} ms",
            median_ms(start[h].clone()),
            median_ms(stop[h].clone())
        );
    }
    let ratio = median_ms(start[0].clone()) / median_ms(start[1].clone()).max(f64::MIN_POSITIVE);
    println!("  berth/runc pod start: {ratio:.2} (target <= 0.90)");

    const PODS: usize = 10;
    for handler in HANDLERS {
        let before: std::collections::BTreeSet<u32> = env.shim_pids().into_iter().collect();
        let mut pods = Vec::new();
        for i in 0..PODS {
            pods.push(env.sleeping_pod(&format!("m{handler}{i}"), handler, 1)?);
        }
        let shims: Vec<u32> = env.shim_pids().into_iter().filter(|p| !before.contains(p)).collect();
        let total: u64 = shims.iter().map(|p| pss_kib(*p)).sum();
        println!(
            "  {handler:6} shim memory: {} shims for {PODS} pods, {:.0} KiB PSS per pod (target <= 1024 for berth)",
            shims.len(),
            total as f64 / PODS as f64
        );
        for (pod, ids) in pods {
            env.teardown_pod(&pod, &ids)?;
        }
    }
    Ok(())
}
