//! The runtime's names for the syscall layer, which lives in the berth-sys crate (sys/).

pub use berth_sys::{bpf, caps, fd, mem, mount, ns, proc, sched, seccomp, term};

pub use berth_sys::fd::*;
pub use berth_sys::proc::*;
pub use berth_sys::seccomp::*;
