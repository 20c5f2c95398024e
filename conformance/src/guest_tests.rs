//! This package's own test binaries, run inside a booted guest ([`Guest`]): the comparison
//! tests (those built on [`crate::oracle::each_runtime`]) then compare berth with the guest's
//! runc and crun instead of the host's. The forky guest runs them against runc 1.3.6 and
//! crun 1.28 (conformance/tests/forky_guest.rs, issue 15).
//!
//! The binaries are static (.cargo/config.toml links the whole workspace with crt-static),
//! so the guest runs them as built, from the read-only share. Each binary's run is one
//! agent command: libtest's summary gives its pass and fail counts, and the file named by
//! [`crate::oracle::LOG_ENV`] gives each runtime's outcome in each comparison test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::systemd_guest::{Guest, GuestError};

#[derive(Debug, thiserror::Error)]
pub enum GuestTestError {
    #[error("the test binary {name} is not built beside {dir} (cargo test --no-run -p conformance)")]
    NotBuilt { name: String, dir: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("running {name} in the guest: {source}")]
    Guest { name: String, source: GuestError },
}

/// One test binary whose comparison tests run in the guest, with those it must skip there
/// and why.
#[derive(Debug, Clone, Copy)]
pub struct TestBinary {
    /// The test target's name (conformance/tests/<name>.rs).
    pub name: &'static str,
    /// Its source (`include_str!`), which [`comparison_tests`] reads.
    pub source: &'static str,
    /// (exact test name, why it cannot run in the guest).
    pub skip: &'static [(&'static str, &'static str)],
}

impl TestBinary {
    /// The comparison tests to run: all but the skipped ones.
    pub fn tests(&self) -> Vec<String> {
        comparison_tests(self.source).into_iter().filter(|t| !self.skip.iter().any(|(s, _)| s == t)).collect()
    }
}

/// The test binary `name` built beside the running one: cargo puts every test target of a
/// package into the same deps directory as `<name>-<16 hex digits>`; when older builds left
/// several, the newest.
pub fn sibling_test_binary(name: &str) -> Result<PathBuf, GuestTestError> {
    let exe = std::env::current_exe()
        .map_err(|source| GuestTestError::Io { what: "finding the running test binary".into(), source })?;
    let dir = exe.parent().unwrap_or(Path::new("/")).to_path_buf();
    let entries = std::fs::read_dir(&dir)
        .map_err(|source| GuestTestError::Io { what: format!("listing {}", dir.display()), source })?;
    let prefix = format!("{name}-");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(hash) = file.strip_prefix(&prefix) else { continue };
        // `<name>-<hash>` exactly: not `<name>-<hash>.d`, not another target whose name
        // starts with this one's (`lsm` and `lsm_applied`).
        if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(mtime) = e.metadata().and_then(|m| m.modified()) else { continue };
        if best.as_ref().is_none_or(|(t, _)| mtime > *t) {
            best = Some((mtime, e.path()));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| GuestTestError::NotBuilt { name: name.to_string(), dir: dir.display().to_string() })
}

/// The tests of a test file (its source) that compare runtimes: the top-level `#[test]`
/// functions that call [`crate::oracle::each_runtime`] (or `each_runtime_but`), directly or
/// through a helper of the same file. Read from the source because nothing in a built test
/// binary tells them apart; rustfmt's layout (items at column 0, a body ending in a `}` line)
/// is what this relies on.
pub fn comparison_tests(source: &str) -> Vec<String> {
    struct Item<'a> {
        name: &'a str,
        body: String,
        test: bool,
    }
    let mut items: Vec<Item> = Vec::new();
    let mut pending_test = false;
    let mut current: Option<Item> = None;
    for line in source.lines() {
        if let Some(item) = current.as_mut() {
            item.body.push_str(line);
            item.body.push('\n');
            if line == "}" {
                items.extend(current.take());
            }
            continue;
        }
        if line == "#[test]" {
            pending_test = true;
        } else if let Some(rest) = line.strip_prefix("fn ").or_else(|| line.strip_prefix("pub fn ")) {
            let name = rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
            let item = Item { name, body: String::new(), test: pending_test };
            pending_test = false;
            // A one-line function has no closing line of its own.
            if line.ends_with('}') {
                items.push(Item { body: line.to_string(), ..item });
            } else {
                current = Some(item);
            }
        } else if !(line.starts_with("#[") || line.starts_with("//")) {
            pending_test = false;
        }
    }
    let calls = |body: &str, name: &str| {
        body.match_indices(&format!("{name}("))
            .any(|(i, _)| !body[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == ':'))
    };
    let mut helpers: Vec<&str> = Vec::new();
    loop {
        let more: Vec<&str> = items
            .iter()
            .filter(|i| !i.test && !helpers.contains(&i.name))
            .filter(|i| i.body.contains("each_runtime") || helpers.iter().any(|h| calls(&i.body, h)))
            .map(|i| i.name)
            .collect();
        if more.is_empty() {
            break;
        }
        helpers.extend(more);
    }
    items
        .iter()
        .filter(|i| i.test && (i.body.contains("each_runtime") || helpers.iter().any(|h| calls(&i.body, h))))
        .map(|i| i.name.to_string())
        .collect()
}

/// Passes and failures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
}

/// What libtest printed at the end of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub counts: Counts,
    pub ignored: u32,
    /// The names of the failed tests.
    pub failures: Vec<String>,
    /// Whether a `test result:` line was seen at all (a crash or a timeout prints none).
    pub finished: bool,
}

/// Reads libtest's `test <name> ... ok|FAILED|ignored` lines and its `test result:` line.
pub fn parse_libtest(out: &str) -> Summary {
    let mut s = Summary::default();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, verdict)) = rest.rsplit_once(" ... ") {
                match verdict.trim() {
                    "ok" => s.counts.passed += 1,
                    "FAILED" => {
                        s.counts.failed += 1;
                        s.failures.push(name.to_string());
                    }
                    v if v.starts_with("ignored") => s.ignored += 1,
                    _ => {}
                }
            } else if rest.starts_with("result: ") {
                s.finished = true;
            }
        }
    }
    s
}

/// Each runtime's counts from the lines [`crate::oracle`] appends: `<runtime> <ok|FAILED> <test>`.
pub fn parse_oracle_log(text: &str) -> BTreeMap<String, Counts> {
    let mut m: BTreeMap<String, Counts> = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(label), Some(verdict)) = (it.next(), it.next()) else { continue };
        let c = m.entry(label.to_string()).or_default();
        match verdict {
            "ok" => c.passed += 1,
            "FAILED" => c.failed += 1,
            _ => {}
        }
    }
    m
}

/// One binary's run in the guest.
#[derive(Debug, Clone)]
pub struct BinaryRun {
    pub name: String,
    /// The binary's exit code (124: the guest's timeout ended it).
    pub code: i32,
    pub summary: Summary,
    /// Each runtime's comparisons: berth, runc, crun.
    pub runtimes: BTreeMap<String, Counts>,
    /// The comparison tests that failed, with the runtime that failed them.
    pub oracle_failures: Vec<String>,
    pub elapsed: Duration,
    /// stdout and stderr, for the report of a failed binary.
    pub output: String,
}

impl BinaryRun {
    pub fn passed(&self) -> bool {
        self.code == 0 && self.summary.finished && self.summary.counts.failed == 0
    }
}

/// Runs the comparison tests of each of `bins` (already in the guest under `dir`) with `env`
/// (shell assignments, e.g. `BERTH=/usr/local/bin/berth`), ignored ones included (they are
/// ignored for needing root), `--test-threads=2`, each binary bounded by `timeout`.
pub fn run_all(
    guest: &mut Guest,
    dir: &str,
    env: &str,
    bins: &[TestBinary],
    timeout: Duration,
) -> Result<Vec<BinaryRun>, GuestTestError> {
    let mut runs = Vec::new();
    for b in bins {
        let log = format!("/tmp/berth-oracle-{}.log", b.name);
        let tests = b.tests();
        if tests.is_empty() {
            continue;
        }
        // --exact: each filter names one test, not every test whose name contains it.
        let script = format!(
            "rm -f {log}; cd /tmp && {env} {}={log} {}/{} --include-ignored --test-threads=2 --exact {} 2>&1",
            crate::oracle::LOG_ENV,
            dir.trim_end_matches('/'),
            b.name,
            tests.join(" ")
        );
        let t = Instant::now();
        let o =
            guest.run(&script, timeout).map_err(|source| GuestTestError::Guest { name: b.name.to_string(), source })?;
        let elapsed = t.elapsed();
        let l = guest
            .run(&format!("cat {log} 2>/dev/null; rm -f {log}"), Duration::from_secs(30))
            .map_err(|source| GuestTestError::Guest { name: b.name.to_string(), source })?;
        let summary = parse_libtest(&o.stdout);
        let oracle_failures =
            l.stdout.lines().filter(|x| x.split_whitespace().nth(1) == Some("FAILED")).map(str::to_string).collect();
        let run = BinaryRun {
            name: b.name.to_string(),
            code: o.code,
            summary,
            runtimes: parse_oracle_log(&l.stdout),
            oracle_failures,
            elapsed,
            output: format!("{}{}", o.stdout, o.stderr),
        };
        // As each binary ends: a run cut short still says how far it got.
        eprintln!(
            "{}: exit {} in {:.1?}, {:?}, comparisons {:?}",
            run.name, run.code, run.elapsed, run.summary.counts, run.runtimes
        );
        if !run.passed() {
            eprintln!(
                "--- {} failed {:?}; comparisons failed: {:?}\n{}",
                run.name, run.summary.failures, run.oracle_failures, run.output
            );
        }
        runs.push(run);
    }
    Ok(runs)
}

/// A table: per binary its tests passed/failed/ignored, then berth's, runc's and crun's
/// comparisons passed/failed, and the time it took; a total line at the end.
pub fn table(runs: &[BinaryRun], labels: &[&str]) -> String {
    let mut t = format!("{:<14} {:>14}", "binary", "tests ok/fail/ign");
    for l in labels {
        let _ = write!(t, " {:>10}", format!("{l} ok/fail"));
    }
    t.push_str("     time\n");
    let mut total = (Counts::default(), 0, BTreeMap::<&str, Counts>::new(), Duration::ZERO);
    for r in runs {
        let c = r.summary.counts;
        let _ = write!(t, "{:<14} {:>14}", r.name, format!("{}/{}/{}", c.passed, c.failed, r.summary.ignored));
        total.0.passed += c.passed;
        total.0.failed += c.failed;
        total.1 += r.summary.ignored;
        for l in labels {
            let x = r.runtimes.get(*l).copied().unwrap_or_default();
            let _ = write!(t, " {:>10}", format!("{}/{}", x.passed, x.failed));
            let e = total.2.entry(l).or_default();
            e.passed += x.passed;
            e.failed += x.failed;
        }
        total.3 += r.elapsed;
        let _ = writeln!(t, " {:>7.1}s{}", r.elapsed.as_secs_f64(), if r.passed() { "" } else { "  FAILED" });
    }
    let _ = write!(t, "{:<14} {:>14}", "total", format!("{}/{}/{}", total.0.passed, total.0.failed, total.1));
    for l in labels {
        let x = total.2.get(l).copied().unwrap_or_default();
        let _ = write!(t, " {:>10}", format!("{}/{}", x.passed, x.failed));
    }
    let _ = writeln!(t, " {:>7.1}s", total.3.as_secs_f64());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_counted() {
        let out = "running 4 tests\ntest a ... ok\ntest m::b ... FAILED\ntest c ... ignored, needs root\n\
                   test d ... ok\n\nfailures:\n    m::b\n\ntest result: FAILED. 2 passed; 1 failed; 1 ignored";
        let s = parse_libtest(out);
        assert_eq!(s.counts, Counts { passed: 2, failed: 1 });
        assert_eq!((s.ignored, s.failures, s.finished), (1, vec!["m::b".to_string()], true));
        assert!(!parse_libtest("running 1 test\ntest a ... ok\n").finished);
    }

    #[test]
    fn comparison_tests_are_those_calling_each_runtime() {
        let src =
            "use x;\n\n#[test]\n#[ignore = \"needs root\"]\nfn a() {\n    each_runtime(\"a\", |c, rt| {});\n}\n\n\
                   /// doc\n#[test]\nfn b() {\n    let c = Case::new();\n}\n\n\
                   fn helper(x: u32) {\n    conformance::each_runtime_but(&[\"crun\"], \"h\", |c, rt| {});\n}\n\n\
                   fn outer() {\n    helper(1);\n}\n\n#[test]\nfn c() {\n    outer();\n}\n\n\
                   #[test]\nfn d() {\n    my_helper(1);\n    x.helper(2);\n}\n";
        assert_eq!(comparison_tests(src), ["a", "c"]);
    }

    #[test]
    fn oracle_lines_are_counted_per_runtime() {
        let m = parse_oracle_log("berth ok a\nrunc ok a\ncrun FAILED a\nberth ok b\n\ngarbage\n");
        assert_eq!(m["berth"], Counts { passed: 2, failed: 0 });
        assert_eq!(m["runc"], Counts { passed: 1, failed: 0 });
        assert_eq!(m["crun"], Counts { passed: 0, failed: 1 });
    }
}
