//! Fault injection for the crash-consistency tests: when the environment
//! variable `BERTH_SNAPSHOTTER_CRASHPOINT` names a point, the process kills
//! itself with SIGKILL there, exactly as an external `kill -9` would,
//! leaving no chance to clean up. Unset, a check is one load of a OnceLock.

use std::sync::OnceLock;

pub const ENV: &str = "BERTH_SNAPSHOTTER_CRASHPOINT";

/// After a new layer directory is in place, before its record commits.
pub const PREPARE_INSTALLED: &str = "prepare-installed";
/// Inside a commit's transaction, before it commits.
pub const COMMIT_BEFORE_TXN_COMMIT: &str = "commit-before-txn-commit";
/// After a removal's transaction commits, before the directory goes.
pub const REMOVE_AFTER_TXN_COMMIT: &str = "remove-after-txn-commit";
/// Halfway through deleting a removed snapshot's directory.
pub const REMOVE_MID_DELETE: &str = "remove-mid-delete";
/// After a prepare's record commits (its directory in place), before the reply.
pub const PREPARE_BEFORE_REPLY: &str = "prepare-before-reply";
/// After a commit's transaction commits, before the reply.
pub const COMMIT_BEFORE_REPLY: &str = "commit-before-reply";
/// After a removal committed and its directory went, before the reply.
pub const REMOVE_BEFORE_REPLY: &str = "remove-before-reply";

static POINT: OnceLock<Option<String>> = OnceLock::new();

pub fn hit(name: &str) {
    let armed = POINT.get_or_init(|| std::env::var(ENV).ok());
    if armed.as_deref() == Some(name) {
        tracing::warn!(point = name, "crash point reached, killing self");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}
