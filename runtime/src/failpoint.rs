//! Named steps of create, start, exec and delete where a build with the `failpoints`
//! feature dies abruptly (SIGKILL of itself: no destructor, no guard, no cleanup), as a
//! `kill -9` from outside would. `BERTH_FAILPOINT=<step>` selects the step at run time;
//! `<step> stop` stops berth there first (it dies once resumed) and `<step> pause` stops
//! it and lets it carry on when resumed, so that a test can put the other side of a race
//! exactly at that step;
//! `BERTH_FAILPOINT=list` makes such a build print every step and exit, so a test walks
//! them all without a copy of this list. A build without the feature carries none of it:
//! `hit` is empty and `listing` is `None`.

/// Every step, in the order an operation passes them: `<operation>:<step>`.
pub const STEPS: &[&str] = &[
    "create:state-dir-made",
    "create:state-planned",
    "create:cgroup-dirs-made",
    "create:cgroup-applied",
    "create:cloned",
    "create:init-in-cgroup",
    "create:go-sent",
    "create:maps-written",
    "create:hooks-run",
    "create:ready-received",
    "create:state-saved",
    "create:pid-file-written",
    "start:locked",
    "start:started",
    "start:poststart-run",
    "exec:prepared",
    "exec:cloned",
    "exec:in-cgroup",
    "exec:go-sent",
    "exec:ready-received",
    "exec:execed",
    "delete:locked",
    "delete:init-pinned",
    "delete:init-killed",
    "delete:before-cgroup-destroy",
    "delete:after-cgroup-destroy",
    "delete:state-removed",
];

/// The variable that selects the step.
pub const ENV: &str = "BERTH_FAILPOINT";

/// Dies here if `step` is the selected one.
#[inline]
pub fn hit(step: &'static str) {
    debug_assert!(STEPS.contains(&step), "failpoint {step} is not in STEPS");
    #[cfg(feature = "failpoints")]
    if let Some(selected) = std::env::var_os(ENV) {
        let selected = selected.to_string_lossy();
        let (name, mode) = berth_sys::failpoint::parse(&selected);
        if name == step {
            berth_sys::failpoint::act(mode);
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = step;
}

/// With the feature and `BERTH_FAILPOINT=list`: the steps to print instead of running.
pub fn listing() -> Option<&'static [&'static str]> {
    if cfg!(feature = "failpoints") && std::env::var_os(ENV).is_some_and(|v| v == "list") {
        Some(STEPS)
    } else {
        None
    }
}
