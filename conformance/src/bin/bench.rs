//! `make bench`: berth vs runc vs crun, side by side in one run, as medians and ratios.
//!
//! Scenarios on a busybox bundle running /bin/true, strictly interleaved (A B C A B C …, so
//! drift on this shared machine hits every runtime alike): `run`; create + start + wait +
//! delete, with the peak RSS of `create` (ru_maxrss from wait4) and the PSS of the created
//! init before `start`; `exec true` into a running container; `events --stats` of that
//! container (runtimes without it are reported and left out); `list` with no containers;
//! `--version`; and the kernel floor (`bench-floor`: namespaces, mounts, pivot_root, exec
//! and nothing else). Then `run` again in blocks of 10 per runtime, the first 2 of each
//! block dropped (warm caches, as a burst of starts sees them), and `list` with 10 and 100
//! created containers. Last, a table of the goals, each met or not.
//!
//! N iterations: `BENCH_N` (default 100); `--quick` (or `BENCH_QUICK=1`): N = 15 and two
//! blocks, about two minutes. Binaries: `BERTH` (default: the workspace's newest build),
//! `RUNC`, `CRUN` (default from PATH). A runtime that is missing or fails is reported and
//! skipped. `BENCH_GLOBAL_ARGS` (space-separated, e.g. `--systemd-cgroup`) go before every
//! container command of every runtime: all three take runc's global flags.

use conformance::Bundle;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Rt {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
    /// Why it was dropped, if it was.
    broken: Option<String>,
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Spawns, waits with wait4, returns (wall time, exit status, ru_maxrss KiB, stderr).
fn timed(bin: &Path, args: &[&OsStr]) -> (Duration, i32, i64, String) {
    static GLOBAL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let global = GLOBAL.get_or_init(|| {
        std::env::var("BENCH_GLOBAL_ARGS").unwrap_or_default().split_whitespace().map(str::to_string).collect()
    });
    // Global flags go with container commands (they all start with --root), not --version.
    let global: &[String] = if args.first() == Some(&os("--root")) { global } else { &[] };
    let err = tempfile_path();
    let errf = std::fs::File::create(&err).expect("create stderr capture");
    let t0 = Instant::now();
    let child =
        Command::new(bin).args(global).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(errf).spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return (t0.elapsed(), -1, 0, format!("spawn {}: {e}", bin.display())),
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, whose Child handle we never wait on.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let dt = t0.elapsed();
    let code = if r < 0 {
        -1
    } else if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    (dt, code, ru.ru_maxrss, stderr)
}

fn tempfile_path() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!("berth-bench-err-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

/// Reaps container inits re-parented to us (we are a child subreaper) and
/// stray helpers; only called when no timed child is outstanding.
fn reap_strays() {
    loop {
        let mut st = 0;
        // SAFETY: non-blocking wait for any child.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// Proportional set size of `pid` (smaps_rollup), in KiB.
fn pss_kib(pid: i32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

struct Samples(BTreeMap<(&'static str, &'static str), Vec<f64>>);

impl Samples {
    fn push(&mut self, scenario: &'static str, rt: &'static str, v: f64) {
        self.0.entry((scenario, rt)).or_default().push(v);
    }
    fn stats(&self, scenario: &'static str, rt: &'static str) -> Option<(f64, f64, usize)> {
        let mut v = self.0.get(&(scenario, rt))?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN samples"));
        Some((percentile(&v, 0.5), percentile(&v, 0.9), v.len()))
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("BENCH_QUICK").is_some_and(|v| v == "1");
    let n: usize = std::env::var("BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 15 } else { 100 });
    let blocks = if quick { 2 } else { (n / 10).max(2) };
    let floor =
        std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join("bench-floor"))).filter(|p| p.is_file());
    // SAFETY: prctl with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let work = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let mut bundle = Bundle::new(&work.join("bundle"));
    bundle.set_args(&["/bin/true"]);
    bundle.write();

    let candidates: [(&'static str, Option<PathBuf>); 3] = [
        ("berth", Some(conformance::util::workspace_binary("berth", "BERTH"))),
        ("runc", std::env::var_os("RUNC").map(PathBuf::from).or_else(|| which("runc"))),
        ("crun", std::env::var_os("CRUN").map(PathBuf::from).or_else(|| which("crun"))),
    ];
    let mut rts: Vec<Rt> = Vec::new();
    for (name, bin) in candidates {
        let root = work.join(format!("root-{name}"));
        std::fs::create_dir_all(&root).expect("create state root");
        match bin {
            Some(b) if b.is_file() => rts.push(Rt { name, bin: b, root, broken: None }),
            Some(b) => println!("{name}: {} not found, skipped", b.display()),
            None => println!("{name}: not on PATH, skipped"),
        }
    }
    // One trial run each: a runtime that cannot run the bundle is reported, not timed.
    for rt in rts.iter_mut() {
        let id = format!("bench-{}-probe", rt.name);
        let (_, code, _, err) = timed(
            &rt.bin,
            &[os("--root"), rt.root.as_os_str(), os("run"), os("--bundle"), bundle.dir.as_os_str(), os(&id)],
        );
        if code != 0 {
            rt.broken = Some(format!("`run` exited {code}: {}", err.trim()));
            let _ = timed(&rt.bin, &[os("--root"), rt.root.as_os_str(), os("delete"), os("--force"), os(&id)]);
        }
        reap_strays();
    }
    for rt in &rts {
        match &rt.broken {
            Some(why) => println!("{}: {} — FAILS on this host, skipped: {why}", rt.name, rt.bin.display()),
            None => println!("{}: {}", rt.name, rt.bin.display()),
        }
    }
    let live: Vec<&Rt> = rts.iter().filter(|r| r.broken.is_none()).collect();
    println!("N = {n} per scenario, interleaved\n");

    // One long-running container per runtime for `exec` and `events --stats`.
    let mut sleeper = Bundle::new(&work.join("bundle-exec"));
    sleeper.set_args(&["sleep", "1000000"]);
    sleeper.write();
    let exec_id = |rt: &Rt| format!("bench-{}-exec", rt.name);
    // Its own state root, so that `list` still lists nothing.
    let exec_root = |rt: &Rt| work.join(format!("root-{}-exec", rt.name));
    let mut exec_ok: BTreeMap<&str, bool> = BTreeMap::new();
    let mut stats_ok: BTreeMap<&str, bool> = BTreeMap::new();
    for rt in &live {
        let (_, code, _, err) = timed(
            &rt.bin,
            &[
                os("--root"),
                exec_root(rt).as_os_str(),
                os("run"),
                os("-d"),
                os("--bundle"),
                sleeper.dir.as_os_str(),
                os(&exec_id(rt)),
            ],
        );
        if code != 0 {
            println!("{}: cannot start the container for exec: {}", rt.name, err.trim());
        }
        exec_ok.insert(rt.name, code == 0);
        if code == 0 {
            let (_, probe, _, perr) = timed(
                &rt.bin,
                &[os("--root"), exec_root(rt).as_os_str(), os("events"), os("--stats"), os(&exec_id(rt))],
            );
            if probe == 0 {
                stats_ok.insert(rt.name, true);
            } else {
                println!("{}: `events --stats` not measured: {}", rt.name, perr.trim());
            }
        }
    }

    let mut s = Samples(BTreeMap::new());
    let mut failures: BTreeMap<(&str, &str), String> = BTreeMap::new();
    let pidfile = |rt: &Rt| work.join(format!("{}.pid", rt.name));
    for i in 0..n {
        for rt in &live {
            let r = rt.root.as_os_str();
            let id = format!("bench-{}-{i}", rt.name);
            // run
            let (dt, code, _, err) =
                timed(&rt.bin, &[os("--root"), r, os("run"), os("--bundle"), bundle.dir.as_os_str(), os(&id)]);
            if code == 0 {
                s.push("run", rt.name, dt.as_secs_f64() * 1e3);
            } else {
                failures.entry(("run", rt.name)).or_insert(err);
                let _ = timed(&rt.bin, &[os("--root"), r, os("delete"), os("--force"), os(&id)]);
            }
            reap_strays();
            // create + start + wait + delete
            let pf = pidfile(rt);
            let _ = std::fs::remove_file(&pf);
            let t0 = Instant::now();
            let (_, c1, rss, err) = timed(
                &rt.bin,
                &[
                    os("--root"),
                    r,
                    os("create"),
                    os("--bundle"),
                    bundle.dir.as_os_str(),
                    os("--pid-file"),
                    pf.as_os_str(),
                    os(&id),
                ],
            );
            let mut pss = None;
            let ok = c1 == 0 && {
                let pid: i32 = std::fs::read_to_string(&pf).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
                pss = pss_kib(pid);
                let (_, c2, _, _) = timed(&rt.bin, &[os("--root"), r, os("start"), os(&id)]);
                let mut st = 0;
                // SAFETY: the init was re-parented to us (subreaper) when create exited.
                let w = if pid > 0 { unsafe { libc::waitpid(pid, &mut st, 0) } } else { -1 };
                let (_, c3, _, _) = timed(&rt.bin, &[os("--root"), r, os("delete"), os(&id)]);
                c2 == 0 && w == pid && c3 == 0
            };
            let dt = t0.elapsed();
            if ok {
                s.push("create+start+wait+delete", rt.name, dt.as_secs_f64() * 1e3);
                s.push("create peak RSS (KiB)", rt.name, rss as f64);
                if let Some(k) = pss {
                    s.push("created init PSS (KiB)", rt.name, k);
                }
            } else {
                failures.entry(("create+start+wait+delete", rt.name)).or_insert(if err.is_empty() {
                    "start/wait/delete failed".into()
                } else {
                    err
                });
                let _ = timed(&rt.bin, &[os("--root"), r, os("delete"), os("--force"), os(&id)]);
            }
            reap_strays();
            // exec into the running container
            if exec_ok.get(rt.name) == Some(&true) {
                let (dt, code, _, err) = timed(
                    &rt.bin,
                    &[os("--root"), exec_root(rt).as_os_str(), os("exec"), os(&exec_id(rt)), os("true")],
                );
                if code == 0 {
                    s.push("exec true", rt.name, dt.as_secs_f64() * 1e3)
                } else {
                    failures.entry(("exec true", rt.name)).or_insert(err);
                }
            }
            if stats_ok.get(rt.name) == Some(&true) {
                let (dt, code, _, err) = timed(
                    &rt.bin,
                    &[os("--root"), exec_root(rt).as_os_str(), os("events"), os("--stats"), os(&exec_id(rt))],
                );
                if code == 0 {
                    s.push("events --stats", rt.name, dt.as_secs_f64() * 1e3)
                } else {
                    failures.entry(("events --stats", rt.name)).or_insert(err);
                }
            }
            // do-nothing commands
            let (dt, code, _, err) = timed(&rt.bin, &[os("--root"), r, os("list")]);
            if code == 0 {
                s.push("list (empty)", rt.name, dt.as_secs_f64() * 1e3)
            } else {
                failures.entry(("list (empty)", rt.name)).or_insert(err);
            }
            let (dt, code, _, err) = timed(&rt.bin, &[os("--version")]);
            if code == 0 {
                s.push("--version", rt.name, dt.as_secs_f64() * 1e3)
            } else {
                failures.entry(("--version", rt.name)).or_insert(err);
            }
        }
        if let Some(f) = &floor {
            let (dt, code, _, err) = timed(f, &[bundle.rootfs.path.as_os_str(), os("/bin/true")]);
            if code == 0 {
                s.push("run", "floor", dt.as_secs_f64() * 1e3);
            } else {
                failures.entry(("run", "floor")).or_insert(err);
            }
            reap_strays();
        }
    }

    // `run` in blocks: each runtime starts 10 in a row, the first 2 are dropped.
    for b in 0..blocks {
        for rt in &live {
            let r = rt.root.as_os_str();
            for j in 0..10 {
                let id = format!("bench-{}-b{b}-{j}", rt.name);
                let (dt, code, _, err) =
                    timed(&rt.bin, &[os("--root"), r, os("run"), os("--bundle"), bundle.dir.as_os_str(), os(&id)]);
                if code == 0 {
                    if j >= 2 {
                        s.push("run (blocks of 10)", rt.name, dt.as_secs_f64() * 1e3);
                    }
                } else {
                    failures.entry(("run (blocks of 10)", rt.name)).or_insert(err);
                    let _ = timed(&rt.bin, &[os("--root"), r, os("delete"), os("--force"), os(&id)]);
                }
                reap_strays();
            }
        }
        if let Some(f) = &floor {
            for j in 0..10 {
                let (dt, code, _, _) = timed(f, &[bundle.rootfs.path.as_os_str(), os("/bin/true")]);
                if code == 0 && j >= 2 {
                    s.push("run (blocks of 10)", "floor", dt.as_secs_f64() * 1e3);
                }
                reap_strays();
            }
        }
    }

    // `list` with 10, then 100 created containers (each runtime under a root of its own).
    let list_root = |rt: &Rt| work.join(format!("root-{}-list", rt.name));
    let mut listed: BTreeMap<&str, usize> = BTreeMap::new();
    for (count, scenario) in [(10usize, "list (10 created)"), (100, "list (100 created)")] {
        for rt in &live {
            let have = listed.entry(rt.name).or_insert(0);
            while *have < count {
                let id = format!("bench-{}-list-{have}", rt.name);
                let (_, code, _, err) = timed(
                    &rt.bin,
                    &[
                        os("--root"),
                        list_root(rt).as_os_str(),
                        os("create"),
                        os("--bundle"),
                        bundle.dir.as_os_str(),
                        os(&id),
                    ],
                );
                if code != 0 {
                    failures.entry((scenario, rt.name)).or_insert(err);
                    break;
                }
                *have += 1;
            }
        }
        for _ in 0..n {
            for rt in &live {
                if listed.get(rt.name) != Some(&count) {
                    continue;
                }
                let (dt, code, _, err) = timed(&rt.bin, &[os("--root"), list_root(rt).as_os_str(), os("list")]);
                if code == 0 {
                    s.push(scenario, rt.name, dt.as_secs_f64() * 1e3)
                } else {
                    failures.entry((scenario, rt.name)).or_insert(err);
                }
            }
        }
    }
    for rt in &live {
        for k in 0..listed.get(rt.name).copied().unwrap_or(0) {
            let id = format!("bench-{}-list-{k}", rt.name);
            let _ = timed(&rt.bin, &[os("--root"), list_root(rt).as_os_str(), os("delete"), os("--force"), os(&id)]);
        }
    }

    for rt in &live {
        let _ =
            timed(&rt.bin, &[os("--root"), exec_root(rt).as_os_str(), os("delete"), os("--force"), os(&exec_id(rt))]);
    }
    reap_strays();
    let scenarios = [
        "run",
        "run (blocks of 10)",
        "create+start+wait+delete",
        "exec true",
        "events --stats",
        "list (empty)",
        "list (10 created)",
        "list (100 created)",
        "--version",
        "create peak RSS (KiB)",
        "created init PSS (KiB)",
    ];
    let med = |sc: &'static str, name: &'static str| s.stats(sc, name).map(|x| x.0);
    let ratio = |sc, a, b| match (med(sc, a), med(sc, b)) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    };
    let fmt_ratio = |r: Option<f64>| r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "n/a".into());
    println!("{:<26} {:<6} {:>10} {:>10} {:>5}", "scenario", "rt", "median", "p90", "n");
    for sc in scenarios {
        let unit = if sc.contains("KiB") { "" } else { " ms" };
        let mut names: Vec<&'static str> = live.iter().map(|r| r.name).collect();
        if sc.starts_with("run") && floor.is_some() {
            names.push("floor");
        }
        for name in names {
            match s.stats(sc, name) {
                Some((m, p, k)) => println!("{sc:<26} {name:<6} {m:>7.2}{unit:<3} {p:>7.2}{unit:<3} {k:>5}"),
                None if sc == "events --stats" && !stats_ok.contains_key(name) => {
                    println!("{sc:<26} {name:<6} {:>10}", "n/a")
                }
                None => println!("{sc:<26} {name:<6} {:>10}", "failed"),
            }
        }
        println!(
            "{:<26} berth/runc = {}   berth/crun = {}\n",
            "",
            fmt_ratio(ratio(sc, "berth", "runc")),
            fmt_ratio(ratio(sc, "berth", "crun"))
        );
    }

    // The goals of issue 13, each as a ratio of medians from this run.
    let goals: [(&str, &'static str, &'static str, f64); 7] = [
        ("run, strictly interleaved", "run", "crun", 0.7),
        ("run, blocks of 10", "run (blocks of 10)", "crun", 0.7),
        ("create+start+wait+delete", "create+start+wait+delete", "crun", 0.8),
        ("list, 100 containers", "list (100 created)", "crun", 0.8),
        ("peak RSS of create", "create peak RSS (KiB)", "crun", 1.0),
        ("PSS of a created init", "created init PSS (KiB)", "crun", 1.0),
        ("run vs the kernel floor", "run", "floor", 2.0),
    ];
    println!("{:<28} {:>12} {:>8} {:>6} verdict", "goal", "berth/", "ratio", "max");
    for (what, sc, other, max) in goals {
        let r = ratio(sc, "berth", other);
        let verdict = match r {
            Some(r) if r <= max => "met",
            Some(_) => "NOT met",
            None => "not measured",
        };
        println!("{what:<28} {other:>12} {:>8} {max:>6.2} {verdict}", fmt_ratio(r));
    }
    println!();
    for ((sc, rt), err) in &failures {
        println!("FAILED {rt} {sc}: {}", err.lines().last().unwrap_or("").trim());
    }
    reap_strays();
    let _ = std::fs::remove_dir_all(&work);
}
