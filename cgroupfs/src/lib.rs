//! Reading the cgroup filesystem, for a container runtime or a shim: where the hierarchies
//! are mounted and which cgroup a process is in ([`hierarchy`]: cgroup v1, v2 and the hybrid
//! layout, from mountinfo), what each controller of a cgroup reports ([`v1`], [`v2`],
//! [`pids`]: plain structs), the text formats of cgroup files ([`parse`]), facts of the host
//! they depend on ([`host`]: clock ticks, huge page sizes) and OOM notification ([`oom`]).
//!
//! It makes, writes and removes no cgroup (the one write is the registration of a v1 OOM
//! eventfd, which the kernel takes through `cgroup.event_control`) and knows nothing of the
//! runtime that made the cgroup, so a shim can use it for containers of any runtime.
//!
//! Stats readers never fail: a controller that is not there, or a file it does not have,
//! reads as zero (or empty), as runc's and containerd's readers do.

#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]

mod file;
pub mod hierarchy;
pub mod host;
pub mod oom;
pub mod parse;
pub mod pids;
pub mod v1;
pub mod v2;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {op}: {source}", path.display())]
    Io { path: PathBuf, op: &'static str, source: std::io::Error },
    /// The hierarchies are not what a cgroup v1, v2 or hybrid host shows.
    #[error("{0}")]
    Discovery(String),
}
