//! Scheduling attributes nix does not wrap: sched_setattr(2), ioprio_set(2) and
//! set_mempolicy(2). (CPU affinity goes through nix's `CpuSet`.)

use std::io;

/// `struct sched_attr`, SCHED_ATTR_SIZE_VER0.
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// sched_setattr(2) on the calling thread; fills in `size`.
pub fn sched_setattr(attr: &mut SchedAttr) -> io::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: attr is a valid sched_attr whose size field matches its layout; pid 0 is us.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *mut SchedAttr, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const IOPRIO_WHO_PROCESS: i32 = 1;

/// ioprio_set(2) for this process with an encoded class and level.
pub fn ioprio_set_self(value: i32) -> io::Result<()> {
    // SAFETY: ioprio_set(2) with integer arguments; who 0 is this process.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// set_mempolicy(2) with a node mask (None: no nodes).
pub fn set_mempolicy(mode: i32, nodes: Option<&[u64]>) -> io::Result<()> {
    let (ptr, maxnode) = match nodes {
        Some(mask) => (mask.as_ptr(), (mask.len() * 64) as u64 + 1),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: ptr is null or points at mask, whose bits maxnode does not exceed.
    if unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
