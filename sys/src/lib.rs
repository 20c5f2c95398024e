//! berth-sys: the syscall wrappers that the runtime, the shim and the snapshotter share
//! (the new mount API, pidfds, fd flags, terminal ioctls, pre-exec steps). Each `unsafe`
//! block here has a `// SAFETY:` comment; the crates that use this one deny unsafe code
//! outside their own syscall layer. Calls that nix provides are not wrapped here: use nix.

#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::unwrap_used)]

pub mod alloc;
pub mod bpf;
pub mod caps;
pub mod command;
pub mod early_exec;
pub mod failpoint;
pub mod fd;
pub mod mem;
pub mod mount;
pub mod ns;
pub mod pidfd;
pub mod proc;
pub mod sched;
pub mod seccomp;
pub mod small_file;
pub mod term;
