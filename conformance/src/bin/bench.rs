//! `make bench`: berth vs runc vs crun, side by side in one run, interleaved
//! (A B C A B C …) so drift on this shared machine hits every runtime alike.
//!
//! Scenarios on a busybox bundle running /bin/true: `run`; create + start +
//! wait + delete; `exec true` into a running container; `events --stats` of that
//! container (runtimes without an `events` command are reported and left out); `list`
//! with no containers; `--version`; and the peak RSS of `create` (ru_maxrss from wait4).
//! N iterations: `BENCH_N` (default 100).
//! Binaries: `BERTH` (default: the workspace's newest build), `RUNC`, `CRUN` (default
//! from PATH). A runtime that is missing or fails is reported and skipped.
//! `BENCH_GLOBAL_ARGS` (space-separated, e.g. `--systemd-cgroup`) go before every
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
    let n: usize = std::env::var("BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
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
            let ok = c1 == 0 && {
                let pid: i32 = std::fs::read_to_string(&pf).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
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
    }

    for rt in &live {
        let _ =
            timed(&rt.bin, &[os("--root"), exec_root(rt).as_os_str(), os("delete"), os("--force"), os(&exec_id(rt))]);
    }
    reap_strays();
    let scenarios = [
        "run",
        "create+start+wait+delete",
        "exec true",
        "events --stats",
        "list (empty)",
        "--version",
        "create peak RSS (KiB)",
    ];
    println!("{:<26} {:<6} {:>10} {:>10} {:>5}", "scenario", "rt", "median", "p90", "n");
    for sc in scenarios {
        let unit = if sc.contains("RSS") { "" } else { " ms" };
        for rt in &live {
            match s.stats(sc, rt.name) {
                Some((m, p, k)) => println!("{sc:<26} {:<6} {:>7.2}{unit:<3} {:>7.2}{unit:<3} {k:>5}", rt.name, m, p),
                None if sc == "events --stats" && !stats_ok.contains_key(rt.name) => {
                    println!("{sc:<26} {:<6} {:>10}", rt.name, "n/a")
                }
                None => println!("{sc:<26} {:<6} {:>10}", rt.name, "failed"),
            }
        }
        let med = |name| s.stats(sc, name).map(|x| x.0);
        let ratio = |other| match (med("berth"), med(other)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "n/a".into(),
        };
        println!("{:<26} berth/runc = {}   berth/crun = {}\n", "", ratio("runc"), ratio("crun"));
    }
    for ((sc, rt), err) in &failures {
        println!("FAILED {rt} {sc}: {}", err.lines().last().unwrap_or("").trim());
    }
    reap_strays();
    let _ = std::fs::remove_dir_all(&work);
}
