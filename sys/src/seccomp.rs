//! seccomp(2): installing a classic BPF filter, optionally with a notify listener.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub const SECCOMP_FILTER_FLAG_LOG: u32 = 1 << 1;
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// seccomp(SECCOMP_SET_MODE_FILTER): installs a classic BPF program as this thread's
/// filter. With SECCOMP_FILTER_FLAG_NEW_LISTENER returns the notify listener.
pub fn seccomp_set_filter(flags: u32, program: &[libc::sock_filter]) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    let len = u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
    // SAFETY: prog points at `program`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returned a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
}
