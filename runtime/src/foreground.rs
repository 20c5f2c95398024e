//! `run` in the foreground: signals sent to berth go to the container's init (through a
//! signalfd, so none is lost between blocking and polling), a terminal is copied to and
//! from our stdio, and the init's exit status becomes ours.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

const FORWARDED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// Blocks the forwarded signals, before the container exists, so one sent during create
/// waits in the queue instead of killing berth. The init resets its mask before execve.
pub fn block_signals() -> io::Result<()> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().map_err(io::Error::from)
}

struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = crate::sys::term::window_size(from) {
        let _ = crate::sys::term::set_window_size(to, &ws);
    }
}

fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(fd, buf).map_err(io::Error::from)
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub fn wait(pidfd: &OwnedFd, master: Option<OwnedFd>) -> io::Result<i32> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let _raw = master.as_ref().and_then(|_| RawTerminal::enter());
    if let Some(m) = &master {
        copy_size(stdin.as_fd(), m.as_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let slots = [
            Some(pidfd.as_fd()),
            Some(sfd.as_fd()),
            master.as_ref().filter(|_| master_open).map(|m| m.as_fd()),
            stdin_open.then(|| stdin.as_fd()),
        ];
        let fds = match crate::sys::poll_readable(&slots, -1) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if fds[1] {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    if let Some(m) = &master {
                        copy_size(stdin.as_fd(), m.as_fd());
                    }
                } else {
                    let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
        if let (Some(m), true) = (&master, fds[2]) {
            match read_fd(m.as_fd(), &mut buf) {
                Ok(0) | Err(_) => master_open = false,
                Ok(n) => write_all(stdout.as_fd(), &buf[..n])?,
            }
        }
        if stdin_open && fds[3] {
            match read_fd(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Some(m) = &master {
                        let _ = write_all(m.as_fd(), &buf[..n]);
                    }
                }
            }
        }
        if fds[0] && !master_open {
            break;
        }
        if fds[0] {
            // Drain what the container wrote before it exited, then stop.
            if let Some(m) = &master {
                let _ = nix::fcntl::fcntl(m.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
                while let Ok(n) = read_fd(m.as_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                    write_all(stdout.as_fd(), &buf[..n])?;
                }
            }
            break;
        }
    }
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED)? {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
        _ => Ok(255),
    }
}
