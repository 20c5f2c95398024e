//! Thin wrappers over the syscalls that nix does not cover (clone3, pidfd, close_range, seccomp,
//! keyctl). Every `unsafe` in the crate that is not about a single ioctl lives here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The outcome of a fork-like clone3: in the parent the child's pid and a pidfd for it.
pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// Forks like fork(2) but with namespace flags, a pidfd for the child and optionally
/// placing the child straight into a cgroup v2 directory (no attach afterwards).
///
/// Only call this from a single-threaded process: the child runs on a copy of the
/// caller's stack and memory, as after fork(2), without glibc's atfork handlers.
pub fn clone3_fork(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: ns_flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // With CLONE_PARENT clone3 wants 0 here: the child inherits our own exit signal.
        exit_signal: if ns_flags & CLONE_PARENT != 0 { 0 } else { libc::SIGCHLD as u64 },
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: args is a valid clone_args of the size passed; a zero stack makes the child
    // continue on a copy of this stack like fork(2); the process is single-threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: with CLONE_PIDFD the kernel stored a new, owned fd in pidfd.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Opens a pidfd for a process that is not necessarily our child.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends a signal through a pidfd, which cannot hit a recycled pid.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2)".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until the process behind a pidfd has exited, or the timeout (ms, -1 = forever) passes.
/// Returns true if it exited.
pub fn pidfd_wait_exit(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n > 0);
    }
}

const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

fn close_range(first: u32, last: u32, flags: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments; it only acts on this process's fd table.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The fds open in this process, from /proc/self/fd (without the one used to read it).
fn open_fds() -> io::Result<Vec<RawFd>> {
    let dir = std::fs::read_dir("/proc/self/fd")?;
    let mut fds: Vec<RawFd> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    // The directory's own fd was listed too and is closed now.
    fds.retain(|fd| fd_is_open(*fd));
    Ok(fds)
}

/// Marks every fd from `first` up CLOEXEC, so nothing the caller leaked reaches the
/// container (CVE-2024-21626). close_range(CLOSE_RANGE_CLOEXEC) where the kernel (5.11)
/// and the host's own seccomp profile allow it, /proc/self/fd and fcntl otherwise.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    if close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC).is_ok() {
        return Ok(());
    }
    for fd in open_fds()? {
        if fd as u32 >= first {
            set_cloexec(fd)?;
        }
    }
    Ok(())
}

/// Closes every fd from `first` up except those in `keep` (close_range over the gaps,
/// /proc/self/fd and close where close_range is missing or denied). Only for a process
/// that owns all of them: the forked init, whose other `OwnedFd`s are never dropped.
pub fn close_from_except(first: u32, keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter(|fd| **fd >= 0).map(|fd| *fd as u32).filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut gaps = Vec::new();
    let mut lo = first;
    for k in &keep {
        if *k > lo {
            gaps.push((lo, k - 1));
        }
        lo = k.saturating_add(1);
    }
    gaps.push((lo, u32::MAX));
    if gaps.iter().all(|(a, b)| close_range(*a, *b, 0).is_ok()) {
        return Ok(());
    }
    for fd in open_fds()? {
        if fd as u32 >= first && keep.binary_search(&(fd as u32)).is_err() {
            // SAFETY: this process owns the fd, and nothing uses it after this (see above).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd; an invalid fd just fails with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

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
    let ret = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags as libc::c_ulong, &prog as *const libc::sock_fprog) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returned a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
}

/// Clears FD_CLOEXEC so the fd survives execve (for --preserve-fds).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd; an invalid fd just fails with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD has no side effect.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Joins a new anonymous session keyring named after the container, as runc does unless
/// --no-new-keyring, so containers do not share the host's keys.
pub fn join_session_keyring(name: &str) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: keyctl with a valid NUL-terminated string.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, cname.as_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the process non-dumpable, so a container process cannot ptrace it or open its
/// /proc/<pid>/fd while it still holds host resources (T7). execve resets it.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat):
/// with the pid it identifies a process across pid reuse.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` is alive (not a zombie) and is the one that started at `start_time`.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else { return false };
    let mut fields = stat[close + 1..].split_whitespace();
    let state = fields.next().unwrap_or("X");
    if state == "Z" || state == "X" {
        return false;
    }
    fields.nth(18).and_then(|s| s.parse::<u64>().ok()) == Some(start_time)
}

/// The id of the mount `path` is on (statx STATX_MNT_ID), without following a final
/// symlink: tells whether the top mount at a path is still the one recorded earlier.
pub fn mount_id(path: &std::path::Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statx is plain data, zeroed is a valid value for it.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: c is a NUL-terminated path and st a valid, writable statx buffer.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(st.stx_mnt_id)
}
