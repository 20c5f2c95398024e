//! `make soak` (not in CI): one pod through CRI on handler berth, so one shim serves it all.
//! For SOAK_MINUTES (default 30), rounds of SOAK_CONTAINERS (default 200) containers are
//! created and started SOAK_THREADS-way (default 32), then stopped and removed; then
//! SOAK_EXECS (default 1000) ExecSyncs go into one long-lived container of the pod. No
//! call may fail, and the shim's fds, threads and memory must be flat: they are printed
//! after a warm-up round and at the end, and compared.

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use conformance::cri::CriEnv;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the shim holds: open fds, threads, resident and proportional memory (KiB).
#[derive(Clone, Copy)]
struct ShimUse {
    fds: usize,
    threads: u64,
    rss_kib: u64,
    pss_kib: u64,
}

impl std::fmt::Display for ShimUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} fds, {} threads, RSS {} KiB, PSS {} KiB", self.fds, self.threads, self.rss_kib, self.pss_kib)
    }
}

fn field(text: &str, key: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

fn shim_use(pid: u32) -> ShimUse {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("shim status");
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    ShimUse {
        fds: fs::read_dir(format!("/proc/{pid}/fd")).expect("shim fds").count(),
        threads: field(&status, "Threads:"),
        rss_kib: field(&status, "VmRSS:"),
        pss_kib: field(&rollup, "Pss:"),
    }
}

/// Runs `job(i)` for i in 0..n on `threads` threads; returns the failures.
fn fan_out(n: usize, threads: usize, job: impl Fn(usize) -> Result<(), String> + Sync) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                if let Err(e) = job(i) {
                    failures.lock().expect("lock").push(e);
                }
            });
        }
    });
    failures.into_inner().expect("lock")
}

#[test]
#[ignore = "soak test: make soak"]
fn containers_and_execs_through_one_shim_without_failures_or_growth() {
    let minutes = knob("SOAK_MINUTES", 30);
    let per_round = knob("SOAK_CONTAINERS", 200) as usize;
    let threads = knob("SOAK_THREADS", 32) as usize;
    let execs = knob("SOAK_EXECS", 1000) as usize;
    let handler = std::env::var("BERTH_LOAD_HANDLER").unwrap_or_else(|_| "berth".into());
    let env = CriEnv::start().expect("containerd with CRI");
    let cfg = env.pod_config("soak");
    let pod = env.run_pod(&cfg, &handler).expect("RunPodSandbox");
    let netns = env.pod_netns(&pod).expect("pod netns");
    let target = env
        .run_container(&pod, env.container_config("target", "exec sleep 100000"), &cfg)
        .expect("the exec target container");
    let shims = env.shim_pids();
    assert_eq!(shims.len(), 1, "one shim serves the pod: {shims:?}");
    let shim = shims[0];

    let round = |r: usize, n: usize| -> Vec<String> {
        let ids = Mutex::new(Vec::new());
        let mut failures = fan_out(n, threads, |i| {
            let id = env
                .run_container(&pod, env.container_config(&format!("r{r}-c{i}"), "exec sleep 600"), &cfg)
                .map_err(|e| format!("round {r} container {i} create/start: {e}"))?;
            ids.lock().expect("lock").push(id);
            Ok(())
        });
        let ids = ids.into_inner().expect("lock");
        failures.extend(fan_out(ids.len(), threads, |i| {
            env.stop_container(&ids[i], 0).map_err(|e| format!("round {r} stop {}: {e}", ids[i]))?;
            env.remove_container(&ids[i]).map_err(|e| format!("round {r} remove {}: {e}", ids[i]))
        }));
        failures
    };

    // Warm-up, one full round: the shim's records, pools and the allocator's arenas reach
    // the high-water mark of `per_round` live containers, so what grows after it is a leak.
    let mut failures = round(0, per_round);
    let start = shim_use(shim);
    println!("shim {shim} at start: {start}");
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(minutes * 60);
    let mut rounds = 0;
    while Instant::now() < deadline && failures.is_empty() {
        rounds += 1;
        failures.extend(round(rounds, per_round));
    }
    let churn = t0.elapsed();
    println!("shim {shim} after the containers: {}", shim_use(shim));
    let t1 = Instant::now();
    failures.extend(fan_out(execs, threads, |i| {
        let r =
            env.exec_sync(&target, &["sh", "-c", &format!("echo {i}")], 30).map_err(|e| format!("exec {i}: {e}"))?;
        let out = String::from_utf8_lossy(&r.stdout);
        if r.exit_code != 0 || out.trim() != i.to_string() {
            return Err(format!(
                "exec {i}: exit {} stdout {out:?} stderr {:?}",
                r.exit_code,
                String::from_utf8_lossy(&r.stderr)
            ));
        }
        Ok(())
    }));
    let exec_time = t1.elapsed();
    // Exits are reaped and their fds closed asynchronously: give the shim a moment.
    let settle = Instant::now() + Duration::from_secs(30);
    let end = loop {
        let u = shim_use(shim);
        if (u.fds <= start.fds && u.threads <= start.threads) || Instant::now() >= settle {
            break u;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("shim {shim} at end:   {end}");
    println!(
        "handler {handler}: {rounds} rounds x {per_round} containers {threads}-way in {:.1} min ({} containers), \
         {execs} execs in {:.1} s, {} failures",
        churn.as_secs_f64() / 60.0,
        rounds * per_round,
        exec_time.as_secs_f64(),
        failures.len()
    );
    if !failures.is_empty() {
        // containerd's side of the story (e.g. a shim call that timed out).
        let log = env.log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("level=error")).collect();
        eprintln!("containerd's errors (last 20 of {}):", errors.len());
        for l in errors.iter().rev().take(20).rev() {
            eprintln!("  {l}");
        }
    }
    assert!(failures.is_empty(), "{} failures: {failures:#?}", failures.len());
    assert!(end.fds <= start.fds, "the shim's fds grew: {} at start, {} at end", start.fds, end.fds);
    assert!(
        end.threads <= start.threads,
        "the shim's threads grew: {} at start, {} at end",
        start.threads,
        end.threads
    );
    // Memory: the allocator may keep a little; growth beyond a few MiB is a leak.
    assert!(
        end.rss_kib <= start.rss_kib + 4096,
        "the shim's memory grew: {} KiB at start, {} KiB at end",
        start.rss_kib,
        end.rss_kib
    );
    env.teardown_pod(&pod, &[target]).expect("teardown");
    let leaks = env.leaks_after(&netns, Duration::from_secs(10));
    assert!(leaks.is_empty(), "left behind: {leaks:#?}");
}
