//! Running one test body against berth and the reference runtimes (runc, crun), so a
//! test states behaviour the others share, or names the runtime that differs and why.
//!
//! Each runtime's run is caught on its own: a failure on berth does not hide what runc and
//! crun do with the same body, and the test fails once at the end naming every runtime that
//! failed. With `$BERTH_ORACLE_LOG` set, each runtime's outcome is also appended to that file
//! as one line `<runtime> <ok|FAILED> <test>`, from which the forky guest's run counts the
//! passes of berth, runc 1.3 and crun 1.28 side by side (conformance/src/guest_tests.rs).

use crate::case::Case;
use crate::runtime::Runtime;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The reference runtimes installed on this host.
pub const REFERENCES: [(&str, &str); 2] = [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")];

/// A reference runtime's binary: `$BERTH_ORACLE_RUNC` (`…_CRUN`) if set, so that another
/// build (e.g. runc 1.3.6 taken from the forky image) can be compared on this host, else
/// its installed path.
pub fn reference_binary(label: &str, installed: &str) -> PathBuf {
    std::env::var_os(format!("BERTH_ORACLE_{}", label.to_uppercase()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(installed))
}

/// The file each runtime's outcome is appended to, when set.
pub const LOG_ENV: &str = "BERTH_ORACLE_LOG";

/// When set (to anything), every `skip` is ignored: a run shows which differences a newer
/// runc or crun still has, so that each skip names the version where its difference ends.
pub const NO_SKIP_ENV: &str = "BERTH_ORACLE_NO_SKIP";

/// Runs `f` with a fresh case for berth (or `$BERTH`), then for each installed reference
/// runtime not named in `skip`. `f` gets the runtime's label for its messages. A `skip`
/// entry is a label ("crun": never compared) or a label with the version the difference
/// ends at ("runc<1.3": compared with runc 1.3 and later only; see [`skips`]).
pub fn each_runtime_but(skip: &[&str], name: &str, mut f: impl FnMut(&mut Case, &str)) {
    let mut failed = Vec::new();
    let mut one = |label: &str, bin: Option<&Path>| {
        // The case is made and dropped inside: its leak check is part of the runtime's run.
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut c = Case::new(&format!("{name}_{label}"));
            if let Some(bin) = bin {
                c.rt = Runtime::with_binary(bin, &c.dir.join("root"));
            }
            f(&mut c, label);
        }));
        record(name, label, r.is_ok());
        if let Err(p) = r {
            failed.push(format!("{label}: {}", panic_text(p.as_ref())));
        }
    };
    one("berth", None);
    for (label, installed) in REFERENCES {
        if skips(skip, label) && std::env::var_os(NO_SKIP_ENV).is_none() {
            continue;
        }
        let bin = reference_binary(label, installed);
        if !bin.exists() {
            eprintln!("{name}: not compared with {label}: {} is not installed", bin.display());
            continue;
        }
        if let Some(why) = cannot_run_here(label) {
            eprintln!("{name}: not compared with {label}: {why}");
            continue;
        }
        one(label, Some(&bin));
    }
    if !failed.is_empty() {
        panic!("{name} failed on {}", failed.join("\n  and on "));
    }
}

/// [`each_runtime_but`] with every reference runtime.
pub fn each_runtime(name: &str, f: impl FnMut(&mut Case, &str)) {
    each_runtime_but(&[], name, f)
}

/// Whether `skip` leaves `label` out: an entry equal to it, or `<label><<major>.<minor>`
/// while the installed one is older than that (the host's runc 1.1.5 and crun 1.8.1 where
/// the forky guest's runc 1.3.6 and crun 1.28 behave as berth does).
pub fn skips(skip: &[&str], label: &str) -> bool {
    skip.iter().any(|s| match s.strip_prefix(label).map(|r| r.strip_prefix('<')) {
        Some(None) => s.len() == label.len(),
        Some(Some(v)) => match parse_version(&format!("x version {v}")) {
            Some(below) => version(label).is_none_or(|have| have < below),
            // A malformed bound skips: it cannot say where the difference ends.
            None => true,
        },
        None => false,
    })
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Appends `<label> <ok|FAILED> <test>` to `$BERTH_ORACLE_LOG`. The test is libtest's name
/// (the thread's), which `name` only abbreviates. One write of one short line to a file
/// opened for appending: lines of tests running in parallel do not interleave.
fn record(name: &str, label: &str, ok: bool) {
    let Some(path) = std::env::var_os(LOG_ENV) else { return };
    let test = std::thread::current().name().filter(|n| *n != "main").map(str::to_string);
    let line = format!("{label} {} {}\n", if ok { "ok" } else { "FAILED" }, test.as_deref().unwrap_or(name));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("{name}: cannot append to {}: {e}", Path::new(&path).display());
    }
}

/// (major, minor, patch).
pub type Version = (u32, u32, u32);

/// A reference runtime's version as (major, minor, patch), from the first line of
/// `<bin> --version` ("runc version 1.3.6", "crun version 1.28"); None when not installed.
/// Tests use it where runc 1.1 and 1.3 (or crun 1.8 and 1.28) differ, and say so.
pub fn version(label: &str) -> Option<Version> {
    static VERSIONS: OnceLock<Vec<(&'static str, Option<Version>)>> = OnceLock::new();
    let all = VERSIONS.get_or_init(|| {
        REFERENCES
            .iter()
            .map(|(l, installed)| {
                let out = Command::new(reference_binary(l, installed)).arg("--version").output().ok();
                (*l, out.and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout))))
            })
            .collect()
    });
    all.iter().find(|(l, _)| *l == label).and_then(|(_, v)| *v)
}

/// The version in the first line of `--version`'s output: its third word, dotted numbers,
/// a missing patch level read as 0.
fn parse_version(text: &str) -> Option<Version> {
    let word = text.lines().next()?.split_whitespace().nth(2)?;
    let mut it = word.split(['.', '-', '+', '~']).map(|n| n.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = it.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

/// True when `label` is runc at version 1.3 or later (the forky guest's 1.3.6), whose
/// behaviour berth follows where it differs from 1.1 (docs/spec-conformance.md lists where).
pub fn is_runc_1_3(label: &str) -> bool {
    label == "runc" && version("runc").is_some_and(|v| v >= (1, 3, 0))
}

/// Why a reference runtime cannot run any container on this host, if it cannot. crun
/// refuses a hybrid host (cgroup v1 hierarchies beside a cgroup2 mount) whose cgroup2
/// hierarchy carries controllers ("cgroups in hybrid mode not supported"); that is the
/// layout of a VM that leaves a controller (hugetlb here) unmounted in v1, which the
/// kernel then hands to the unified hierarchy.
pub fn cannot_run_here(label: &str) -> Option<String> {
    if label != "crun" {
        return None;
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut v1 = false;
    let mut v2_points = Vec::new();
    for l in mi.lines() {
        let Some((pre, post)) = l.split_once(" - ") else { continue };
        match post.split(' ').next() {
            Some("cgroup") => v1 = true,
            Some("cgroup2") => v2_points.extend(pre.split(' ').nth(4).map(str::to_string)),
            _ => {}
        }
    }
    if !v1 {
        return None;
    }
    v2_points.into_iter().find_map(|p| {
        let ctl = std::fs::read_to_string(Path::new(&p).join("cgroup.controllers")).ok()?;
        (!ctl.trim().is_empty())
            .then(|| format!("hybrid cgroups with controllers ({}) in the cgroup2 hierarchy at {p}", ctl.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_first_line() {
        assert_eq!(
            parse_version(
                "runc version 1.3.6
commit: v1.3.6
spec: 1.2.1"
            ),
            Some((1, 3, 6))
        );
        assert_eq!(
            parse_version(
                "runc version 1.1.5+ds1
commit: 1.1.5+ds1-1"
            ),
            Some((1, 1, 5))
        );
        assert_eq!(
            parse_version(
                "crun version 1.28
commit: abc"
            ),
            Some((1, 28, 0))
        );
        assert_eq!(
            parse_version(
                "crun version 1.8.1
"
            ),
            Some((1, 8, 1))
        );
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn skips_name_a_runtime_or_a_runtime_below_a_version() {
        assert!(skips(&["crun"], "crun"));
        assert!(!skips(&["crun"], "runc"));
        assert!(!skips(&["crunx"], "crun"));
        // Not installed (or no version): a bounded skip skips.
        assert!(skips(&["nosuch<1.3"], "nosuch"));
        assert!(skips(&["runc<bad"], "runc"));
    }
}
