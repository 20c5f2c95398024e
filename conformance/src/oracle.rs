//! Running one test body against berth and the reference runtimes (runc, crun), so a
//! test states behaviour the others share, or names the runtime that differs and why.

use crate::case::Case;
use crate::runtime::Runtime;
use std::path::Path;

/// The reference runtimes installed on this host.
pub const REFERENCES: [(&str, &str); 2] = [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")];

/// Runs `f` with a fresh case for berth (or `$BERTH`), then for each installed reference
/// runtime not named in `skip`. `f` gets the runtime's label for its messages.
pub fn each_runtime_but(skip: &[&str], name: &str, mut f: impl FnMut(&mut Case, &str)) {
    let mut c = Case::new(&format!("{name}_berth"));
    f(&mut c, "berth");
    drop(c);
    for (label, bin) in REFERENCES {
        if skip.contains(&label) {
            continue;
        }
        if !Path::new(bin).exists() {
            eprintln!("{name}: not compared with {label}: {bin} is not installed");
            continue;
        }
        if let Some(why) = cannot_run_here(label) {
            eprintln!("{name}: not compared with {label}: {why}");
            continue;
        }
        let mut c = Case::new(&format!("{name}_{label}"));
        c.rt = Runtime::with_binary(Path::new(bin), &c.dir.join("root"));
        f(&mut c, label);
    }
}

/// [`each_runtime_but`] with every reference runtime.
pub fn each_runtime(name: &str, f: impl FnMut(&mut Case, &str)) {
    each_runtime_but(&[], name, f)
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
