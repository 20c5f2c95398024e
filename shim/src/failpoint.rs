//! Named steps of the shim's Create, Start, Exec and Delete handling (and of its bootstrap, an
//! exit's report and the `delete` subcommand containerd runs after a shim died) where a build with the `failpoints` feature dies abruptly (SIGKILL of itself: no
//! destructor, no cleanup), as a `kill -9` of the shim from outside would. This is the
//! shim's side of berth's own failpoint walk (berth's runtime/src/failpoint.rs), and is
//! walked by conformance/tests/shim_failpoints.rs through a real containerd.
//!
//! The step is chosen at run time by `BERTH_SHIM_FAILPOINT=<step>`, or read at each step
//! from the file `BERTH_SHIM_FAILPOINT_FILE` names (absent or empty: none): containerd
//! passes its environment to the shims it starts, so one containerd is armed and disarmed
//! by rewriting the file (and a shim that dies there first appends the step to
//! `<file>.hits`). A step followed by ` stop` (`create:registered stop`) stops the process
//! (SIGSTOP) there instead of killing it, so that a test can first kill containerd and then
//! the shim: a shim that dies while containerd is down is cleaned up by containerd's recovery
//! when it starts again, not by its reaction to the shim's connection closing.
//! `BERTH_SHIM_FAILPOINT=list` makes such a build print every step and exit. A build without the feature carries none of it: `hit` is empty and `listing`
//! is `None`.

/// Every step, in the order a container passes them: `<operation>:<step>`.
pub const STEPS: &[&str] = &[
    "bootstrap:daemon-spawned",
    "create:config-saved",
    "create:rootfs-mounted",
    "create:runtime-created",
    "create:registered",
    "create:event-published",
    "start:runtime-started",
    "start:event-published",
    // The Exec request, then the Start of that exec process.
    "exec:registered",
    "exec:added-event-published",
    "exec:spec-written",
    "exec:runtime-execed",
    "exec:started",
    "exec:event-published",
    "exit:event-published",
    "delete:runtime-deleted",
    "delete:forgotten",
    "delete:rootfs-unmounted",
    "delete:event-published",
    // The `delete` subcommand (shim.rs), run by containerd for a shim that is gone.
    "cleanup:runtime-deleted",
    "cleanup:rootfs-unmounted",
    "cleanup:socket-removed",
    "cleanup:response-written",
];

/// The variable that selects the step.
pub const ENV: &str = "BERTH_SHIM_FAILPOINT";
/// The variable naming a file that holds the step.
pub const FILE_ENV: &str = "BERTH_SHIM_FAILPOINT_FILE";

/// Dies here if `step` is the selected one.
#[inline]
pub fn hit(step: &'static str) {
    debug_assert!(STEPS.contains(&step), "failpoint {step} is not in STEPS");
    #[cfg(feature = "failpoints")]
    if let Some(selected) = selected() {
        let (name, mode) = berth_sys::failpoint::parse(&selected);
        if name == step {
            record_hit(step);
            berth_sys::failpoint::act(mode);
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = step;
}

/// The selected step, read afresh each time: the file may be rewritten between containers.
#[cfg(feature = "failpoints")]
fn selected() -> Option<String> {
    if let Some(v) = std::env::var_os(ENV) {
        return Some(v.to_string_lossy().into_owned());
    }
    let file = std::env::var_os(FILE_ENV)?;
    std::fs::read_to_string(file).ok().map(|s| s.trim().to_string())
}

/// Appends the step to `<file>.hits` when armed by file: the walk cannot wait for a shim
/// containerd started, so this is how it learns the shim reached the step and died there.
#[cfg(feature = "failpoints")]
fn record_hit(step: &str) {
    use std::io::Write;
    let Some(file) = std::env::var_os(FILE_ENV) else {
        return;
    };
    let mut hits = file;
    hits.push(".hits");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(hits) {
        let _ = writeln!(f, "{step}");
    }
}

/// With the feature and `BERTH_SHIM_FAILPOINT=list`: the steps to print instead of running.
pub fn listing() -> Option<&'static [&'static str]> {
    if cfg!(feature = "failpoints") && std::env::var_os(ENV).is_some_and(|v| v == "list") {
        Some(STEPS)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_unique_and_named_by_operation() {
        let mut seen = std::collections::BTreeSet::new();
        for s in STEPS {
            assert!(seen.insert(*s), "{s} twice");
            let op = s.split(':').next().unwrap_or_default();
            assert!(["bootstrap", "create", "start", "exec", "exit", "delete", "cleanup"].contains(&op), "{s}");
        }
    }

    #[test]
    fn a_build_without_the_feature_lists_nothing() {
        if !cfg!(feature = "failpoints") {
            assert!(listing().is_none());
        }
    }
}
