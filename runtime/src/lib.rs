//! berth: an OCI runtime whose command line is runc's.
//!
//! The CLI (src/cli) parses and prints; everything else lives here, one concern a module.
//! No `unsafe` here: the syscall layer is the berth-sys crate (sys/), which `sys` names.

#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::unwrap_used)]

pub mod bundle;
pub mod capabilities;
pub mod cgroups;
pub mod checkpoint;
pub mod console;
pub mod container;
pub mod error;
pub mod events;
pub mod exec;
pub mod failpoint;
pub mod features;
pub mod foreground;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod id;
pub mod id_mappings;
pub mod init;
pub mod kernel_attrs;
pub mod log;
pub mod lsm;
pub mod namespaces;
pub mod netdev;
pub mod pid_file;
pub mod process;
pub mod ps;
pub mod recorded_cgroup;
pub mod rollback;
pub mod rootfs;
pub mod rootless;
pub mod sealed;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod spec_template;
pub mod state;
pub mod sys;
pub mod update;
