//! Shim benchmark: `ctr run -d` + `ctr task kill` + `ctr task rm` latency through
//! io.containerd.berth.v2 vs io.containerd.runc.v2, interleaved in one run, and the shims'
//! RSS/PSS per container with 10 containers running. Needs root and a release build of the
//! shim: cargo build --release -p containerd-shim-berth-v2 &&
//!       cargo run --release -p conformance --bin bench-shim [iterations]

use std::{
    fs,
    time::{Duration, Instant},
};

use conformance::shim_fixture::{
    runtime_binary, shim_containerd, shim_pids, shims_of, Containerd, IMAGE, SHIM_RUNTIME,
};

const RUNC_SHIM: &str = "io.containerd.runc.v2";

/// Errors are values here, not panics: the release profile aborts on panic, which would skip
/// the fixture's cleanup and leave containerd, shims and mounts behind.
type R<T> = Result<T, String>;

fn ok(cd: &Containerd, args: &[&str]) -> R<()> {
    let out = cd.ctr_raw("default", args).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> R<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cycle(cd: &Containerd, runtime: &str, id: &str) -> R<Duration> {
    let t = Instant::now();
    ok(cd, &["run", "-d", "--runtime", runtime, IMAGE, id, "sleep", "1000"])?;
    ok(cd, &["tasks", "kill", "-s", "KILL", id])?;
    // --force waits for the exit before deleting.
    ok(cd, &["tasks", "rm", "-f", id])?;
    ok(cd, &["containers", "rm", id])?;
    Ok(t.elapsed())
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    (p(0.5), p(0.9))
}

/// (rss, pss, private) in KiB from smaps_rollup, and the thread count.
fn memory(pid: u32) -> (u64, u64, u64, u64) {
    let roll = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let get = |k: &str| -> u64 {
        roll.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads =
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (get("Rss:"), get("Pss:"), get("Private_Clean:") + get("Private_Dirty:"), threads)
}

fn memory_of(cd: &Containerd, runtime: &str, n: usize) -> R<(f64, f64, f64, f64)> {
    let ids: Vec<String> = (0..n).map(|i| format!("mem-{i}")).collect();
    for id in &ids {
        ok(cd, &["run", "-d", "--runtime", runtime, IMAGE, id, "sleep", "1000"])?;
    }
    let pids = poll("shims", || {
        let p = if runtime == SHIM_RUNTIME {
            shim_pids(&cd.address)
        } else {
            shims_of("containerd-shim-runc-v2", &cd.address)
        };
        (p.len() == n).then_some(p)
    })?;
    let mut tot = (0u64, 0u64, 0u64, 0u64);
    for p in &pids {
        let m = memory(*p);
        tot = (tot.0 + m.0, tot.1 + m.1, tot.2 + m.2, tot.3 + m.3);
    }
    for id in &ids {
        ok(cd, &["tasks", "kill", "-s", "KILL", id])?;
        ok(cd, &["tasks", "rm", "-f", id])?;
        ok(cd, &["containers", "rm", id])?;
    }
    let k = pids.len() as f64;
    Ok((tot.0 as f64 / k, tot.1 as f64 / k, tot.2 as f64 / k, tot.3 as f64 / k))
}

/// One pod of `n` containers sharing one shim (the sandbox-id annotation): the shim's cost
/// per container.
fn memory_of_pod(cd: &Containerd, n: usize) -> R<(f64, f64, f64, f64)> {
    let ids: Vec<String> = (0..n).map(|i| format!("pod-{i}")).collect();
    for id in &ids {
        ok(
            cd,
            &[
                "run",
                "-d",
                "--runtime",
                SHIM_RUNTIME,
                "--annotation",
                "io.kubernetes.cri.sandbox-id=pod-0",
                IMAGE,
                id,
                "sleep",
                "1000",
            ],
        )?;
    }
    let pids = shim_pids(&cd.address);
    if pids.len() != 1 {
        return Err(format!("expected one shim for the pod, found {}", pids.len()));
    }
    let m = memory(pids[0]);
    for id in ids.iter().rev() {
        ok(cd, &["tasks", "kill", "-s", "KILL", id])?;
        ok(cd, &["tasks", "rm", "-f", id])?;
        ok(cd, &["containers", "rm", id])?;
    }
    let k = n as f64;
    Ok((m.0 as f64 / k, m.1 as f64 / k, m.2 as f64 / k, m.3 as f64))
}

fn main() {
    let iterations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let cd = match shim_containerd() {
        Ok(cd) => cd,
        Err(e) => {
            eprintln!("bench-shim: {e}");
            std::process::exit(1);
        }
    };
    let result = bench(&cd, iterations);
    drop(cd);
    if let Err(e) = result {
        eprintln!("bench-shim: {e}");
        std::process::exit(1);
    }
}

fn bench(cd: &Containerd, iterations: usize) -> R<()> {
    println!("runtime binary for the berth shim: {}", runtime_binary());
    // Warm-up: first runs pay for page cache and cgroup creation.
    cycle(cd, SHIM_RUNTIME, "warm-b")?;
    cycle(cd, RUNC_SHIM, "warm-r")?;
    let (mut b, mut r) = (Vec::new(), Vec::new());
    for i in 0..iterations {
        b.push(cycle(cd, SHIM_RUNTIME, &format!("b{i}"))?);
        r.push(cycle(cd, RUNC_SHIM, &format!("r{i}"))?);
    }
    let (bm, b9) = stats(b);
    let (rm, r9) = stats(r);
    println!("run -d + kill + rm, {iterations} interleaved cycles:");
    println!("  berth shim  median {bm:7.1} ms  p90 {b9:7.1} ms");
    println!("  runc shim   median {rm:7.1} ms  p90 {r9:7.1} ms");
    println!("  ratio berth/runc (median) {:.2}", bm / rm);
    for (name, rt) in [("berth shim", SHIM_RUNTIME), ("runc shim", RUNC_SHIM)] {
        let (rss, pss, private, threads) = memory_of(cd, rt, 10)?;
        println!(
            "  {name}: per container (10 running): RSS {rss:.0} KiB, PSS {pss:.0} KiB, private {private:.0} KiB, threads {threads:.0}"
        );
    }
    let (rss, pss, private, threads) = memory_of_pod(cd, 10)?;
    println!(
        "  berth shim, one pod of 10 containers (one shim): per container RSS {rss:.0} KiB, PSS {pss:.0} KiB, private {private:.0} KiB; shim threads {threads:.0}"
    );
    Ok(())
}
