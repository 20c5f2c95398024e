//! containerd-shim-berth-v2: the containerd runtime v2 shim (task API v2 and v3) for berth or any
//! runc-compatible runtime binary. Syscalls go through nix or berth-sys: no unsafe here.

#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::unwrap_used)]

pub mod bootstrap;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod io;
pub mod leftovers;
pub mod oom;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shim;
pub mod stats;
pub mod tracked_process;
