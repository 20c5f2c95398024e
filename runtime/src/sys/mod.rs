//! The syscall layer: every `unsafe` block of the runtime lives in this module, one file a
//! topic, each block with a `// SAFETY:` comment. Calls nix provides go through nix; what it
//! lacks (clone3, pidfd, the new mount API, seccomp, capset, keyctl, ...) is wrapped here
//! in safe functions. The rest of the crate is `#![deny(unsafe_code)]`.

pub mod bpf;
pub mod caps;
pub mod fd;
pub mod mount;
pub mod ns;
pub mod proc;
pub mod sched;
pub mod seccomp;
pub use berth_sys::term;

pub use fd::*;
pub use proc::*;
pub use seccomp::*;
