//! Processes: clone3 with namespaces and a cgroup, pidfds, prctl flags, the session keyring,
//! and reading a process's identity from /proc.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub use crate::pidfd::{pidfd_open, pidfd_send_signal, pidfd_wait_exit};

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
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
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
    Ok(nix::sys::prctl::set_dumpable(false)?)
}

/// Makes the process dumpable again, rootless only: while an unprivileged parent writes its
/// id maps, and while a created init waits for `start` (`exec` reads its namespaces), which
/// /proc hands to root alone for a non-dumpable process (runc does the same).
pub fn set_dumpable() -> io::Result<()> {
    Ok(nix::sys::prctl::set_dumpable(true)?)
}

pub fn set_child_subreaper() -> io::Result<()> {
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}

pub fn set_no_new_privs() -> io::Result<()> {
    Ok(nix::sys::prctl::set_no_new_privs()?)
}

pub fn set_keepcaps(on: bool) -> io::Result<()> {
    Ok(nix::sys::prctl::set_keepcaps(on)?)
}

/// What berth reads of /proc/<pid>/stat.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    flags: u64,
    start_time: u64,
}

/// The kernel sets PF_EXITING when a task starts to exit (include/linux/sched.h); from then
/// on cgroup v1 shows it in every v1 hierarchy's root, while its state is still R, S or D.
const PF_EXITING: u64 = 0x4;

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let mut fields = text[text.rfind(')')? + 1..].split_ascii_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags (9), …,
    // starttime (22). Walked, not collected: `list` reads one per container.
    let state = fields.next()?.chars().next()?;
    let flags = fields.nth(5)?.parse().ok()?;
    let start_time = fields.nth(12)?.parse().ok()?;
    Some(Stat { state, flags, start_time })
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&crate::small_file::read_record(std::path::Path::new(&format!("/proc/{pid}/stat"))).ok()?)
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat):
/// with the pid it identifies a process across pid reuse.
pub fn process_start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// Whether the process `pid` is alive (not a zombie) and is the one that started at `start_time`.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X' && s.start_time == start_time)
}

/// Whether the process `pid` (the one that started at `start_time`) has begun to exit: still
/// alive by its state, but on its way out, and no longer shown in its v1 cgroups.
pub fn process_exiting(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && s.flags & PF_EXITING != 0)
}

/// Ends the process at once, like _exit(2): no atexit handlers, no destructors, no
/// flushing of buffers that belong to the parent's copy of this memory (after a fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Restores the default disposition of `sig` (used before exec, where handlers are reset
/// anyway but ignored signals and the mask would be inherited).
pub fn set_default_disposition(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no handler code, so it is always sound.
    unsafe { sigaction(sig, &dfl) }.map(drop)
}

/// Makes each of `sigs` end the process at once, with `_exit(128 + sig)`. For the init of
/// a pid namespace, which the kernel gives no signal from outside that it leaves at the
/// default action (SIGKILL and SIGSTOP aside): with a handler, `kill <id> TERM` of a
/// created container stops it, as runc's init (whose Go runtime handles them) does. The
/// execve of the container's process resets the handlers.
pub fn exit_on(sigs: &[nix::sys::signal::Signal]) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    extern "C" fn exit_with(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and touches no state of this process.
        unsafe { libc::_exit(128 + sig) }
    }
    let act = SigAction::new(SigHandler::Handler(exit_with), SaFlags::empty(), SigSet::empty());
    for sig in sigs {
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        unsafe { sigaction(*sig, &act) }?;
    }
    Ok(())
}

/// setdomainname(2), which nix does not wrap (it has sethostname only).
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe a valid byte buffer that outlives the call.
    if unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to SIGKILL this process when its parent dies.
pub fn kill_with_parent() -> io::Result<()> {
    Ok(nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?)
}

/// kill(2) with a raw signal number: nix's `Signal` has no real-time signals, which
/// `berth kill` accepts.
pub fn kill_pid(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes integers only.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// poll(2) for readability on the fds given (None: a slot that is skipped), through nix.
/// Returns, per slot, whether the kernel reported any event (readable, hang-up, error).
/// EINTR comes back as `ErrorKind::Interrupted`. A negative timeout waits forever.
pub fn poll_readable(fds: &[Option<BorrowedFd<'_>>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd<'_>> = fds.iter().flatten().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    poll(&mut pfds, timeout)?;
    let mut ready = pfds.iter().map(|p| p.revents().is_none_or(|r| !r.is_empty()));
    Ok(fds.iter().map(|fd| fd.is_some() && ready.next().unwrap_or(false)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_after_the_last_parenthesis_of_the_name() {
        let line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194564 93 0 0 0 0 0 0 0 20 0 1 0 987654 2457600 200 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).expect("parsed");
        assert_eq!(s, Stat { state: 'S', flags: 4194564, start_time: 987654 });
        assert_ne!(s.flags & PF_EXITING, 0, "0x400104 has PF_EXITING (0x4)");
        assert!(parse_stat("12 (truncated) S 1").is_none());
    }

    #[test]
    fn a_running_process_is_alive_and_not_exiting() {
        let me = std::process::id() as i32;
        let start = process_start_time(me).expect("own start time");
        assert!(process_alive(me, start));
        assert!(!process_exiting(me, start));
        assert!(!process_alive(me, start + 1), "another start time is another process");
    }
}
