//! `make test-load` (not in CI): 50 pods of 2 containers each, created and removed by 4
//! threads at once through CRI on handler berth (BERTH_LOAD_HANDLER=runc for the reference).
//! Every pod must come up and go away, nothing may be left, and the latency percentiles of
//! pod start (RunPodSandbox + 2 × Create/StartContainer) and teardown are printed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use conformance::cri::CriEnv;

const PODS: usize = 50;
const THREADS: usize = 4;

fn percentiles(name: &str, v: &mut [Duration]) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

#[test]
#[ignore = "load test: make test-load"]
fn fifty_pods_four_at_a_time_without_failures_or_leaks() {
    let handler = std::env::var("BERTH_LOAD_HANDLER").unwrap_or_else(|_| "berth".into());
    let env = CriEnv::start().expect("containerd with CRI");
    let next = Mutex::new(0usize);
    let starts = Mutex::new(Vec::new());
    let stops = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let netns = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let n = {
                    let mut g = next.lock().expect("lock");
                    *g += 1;
                    *g
                };
                if n > PODS {
                    return;
                }
                let t0 = Instant::now();
                let (pod, ids) = match env.sleeping_pod(&format!("load{n}"), &handler, 2) {
                    Ok(p) => p,
                    Err(e) => {
                        failures.lock().expect("lock").push(format!("pod {n} start: {e}"));
                        continue;
                    }
                };
                starts.lock().expect("lock").push(t0.elapsed());
                if let Ok(ns) = env.pod_netns(&pod) {
                    netns.lock().expect("lock").push(ns);
                }
                let t1 = Instant::now();
                match env.teardown_pod(&pod, &ids) {
                    Ok(()) => stops.lock().expect("lock").push(t1.elapsed()),
                    Err(e) => failures.lock().expect("lock").push(format!("pod {n} teardown: {e}")),
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(failures.is_empty(), "{} failures: {failures:#?}", failures.len());
    let mut leaks = Vec::new();
    for ns in netns.into_inner().expect("lock") {
        leaks.extend(env.leaks_after(&ns, Duration::from_secs(10)));
    }
    leaks.sort();
    leaks.dedup();
    assert!(leaks.is_empty(), "left behind: {leaks:#?}");
    println!("handler {handler}: {PODS} pods x 2 containers, {THREADS} at a time, 0 failures, no leaks");
    percentiles("pod start (RunPodSandbox + 2 containers running)", &mut starts.into_inner().expect("lock"));
    percentiles("pod teardown (stop/remove containers, stop/remove pod)", &mut stops.into_inner().expect("lock"));
}
