//! One write(2) made by a bare thread of this process, for a write whose only point is the
//! time the kernel blocks in it: the caller goes on meanwhile (the cgroup v1 attach warm-up
//! of the runtime's cgroups/warmup.rs).
//!
//! Not a std thread: berth forks its container processes with clone3 from its main thread
//! and the child runs on a copy of the caller's memory, which is sound only while no other
//! thread can hold a lock in it (malloc's, std's). This thread is made with glibc's clone()
//! on a stack of its own, all signals blocked, and runs one function that only makes the
//! system call (inline, so it does not even set errno, which would be the main thread's)
//! and stores the result: it takes no lock, allocates nothing and touches no thread-local
//! state, whatever the main thread does meanwhile. It belongs to the thread group, so a
//! berth that is killed is not reaped before the write returns: nothing outlives berth.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

/// The bytes a background write can carry (it needs only a few).
const MAX_DATA: usize = 32;
const STACK_LEN: usize = 64 * 1024;
/// `result` until the write returns.
const PENDING: i64 = i64::MIN;

/// What the thread reads and writes; boxed so its address stays put while the thread runs.
#[repr(C)]
struct Shared {
    /// The thread's tid, set by the kernel at the clone and cleared (with a futex wake)
    /// when the thread has exited: CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID.
    tid: AtomicI32,
    fd: i32,
    len: usize,
    data: [u8; MAX_DATA],
    /// write(2)'s return: bytes written, or -errno.
    result: AtomicI64,
}

/// A write under way in its own thread. [`BackgroundWrite::finish`] (or dropping it) waits
/// for the thread to have exited.
pub struct BackgroundWrite {
    shared: Box<Shared>,
    stack: *mut c_void,
    /// The process that made the thread: a child forked meanwhile has a copy of this value
    /// but not the thread, and must not wait for it.
    owner: u32,
    /// Kept open until the thread is gone.
    _fd: OwnedFd,
}

impl BackgroundWrite {
    /// Starts writing `data` (at most 32 bytes) to `fd` in a new thread.
    pub fn start(fd: OwnedFd, data: &[u8]) -> io::Result<BackgroundWrite> {
        let mut buf = [0u8; MAX_DATA];
        buf.get_mut(..data.len()).ok_or_else(|| io::Error::from_raw_os_error(libc::E2BIG))?.copy_from_slice(data);
        let shared = Box::new(Shared {
            tid: AtomicI32::new(0),
            fd: fd.as_raw_fd(),
            len: data.len(),
            data: buf,
            result: AtomicI64::new(PENDING),
        });
        // SAFETY: a fresh anonymous private mapping; the result is checked below.
        let stack = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if stack == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let started = start_thread(&shared, stack);
        if let Err(e) = started {
            // SAFETY: no thread was made, so nothing uses the mapping we just made.
            unsafe { libc::munmap(stack, STACK_LEN) };
            return Err(e);
        }
        Ok(BackgroundWrite { shared, stack, owner: std::process::id(), _fd: fd })
    }

    /// Waits for the thread to have exited; write(2)'s result.
    pub fn finish(mut self) -> io::Result<usize> {
        self.join()
    }

    fn join(&mut self) -> io::Result<usize> {
        if !self.stack.is_null() && std::process::id() != self.owner {
            return Err(io::Error::other("the background write belongs to the parent process"));
        }
        if !self.stack.is_null() {
            loop {
                let tid = self.shared.tid.load(Ordering::Acquire);
                if tid == 0 {
                    break;
                }
                // The kernel's wake at thread exit is a shared (not private) futex wake.
                // SAFETY: waits on an aligned i32 we own for as long as it holds `tid`.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        self.shared.tid.as_ptr(),
                        libc::FUTEX_WAIT,
                        tid,
                        std::ptr::null::<libc::timespec>(),
                    )
                };
            }
            // SAFETY: the thread has exited (the kernel cleared its tid after it last used
            // its stack), so the mapping is ours alone.
            unsafe { libc::munmap(self.stack, STACK_LEN) };
            self.stack = std::ptr::null_mut();
        }
        let r = self.shared.result.load(Ordering::Acquire);
        match usize::try_from(r) {
            Ok(n) => Ok(n),
            Err(_) if r == PENDING => Err(io::Error::other("the background write never ran")),
            Err(_) => Err(io::Error::from_raw_os_error(i32::try_from(-r).unwrap_or(libc::EIO))),
        }
    }
}

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

fn start_thread(shared: &Shared, stack: *mut c_void) -> io::Result<()> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    // The thread inherits the mask: with every signal blocked none is delivered to it (a
    // handler would run on its stack with the main thread's thread-local state).
    let mut previous = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut previous))?;
    // Not CLONE_FS: a process whose fs_struct is shared may not setns() into a mount
    // namespace, and the main thread must stay free to.
    let flags = libc::CLONE_VM
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID;
    let tid = shared.tid.as_ptr();
    // SAFETY: the stack is a fresh mapping of STACK_LEN bytes whose top we pass; `shared`
    // outlives the thread (joined before it is dropped, see BackgroundWrite); `run` only
    // reads `shared` and stores its result; tid is the same aligned i32 for the kernel to
    // set and clear.
    let r = unsafe {
        libc::clone(
            run,
            stack.cast::<u8>().add(STACK_LEN).cast::<c_void>(),
            flags,
            std::ptr::from_ref(shared).cast_mut().cast::<c_void>(),
            tid,
            std::ptr::null_mut::<c_void>(),
            tid,
        )
    };
    let made = if r == -1 { Err(io::Error::last_os_error()) } else { Ok(()) };
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)?;
    made
}

/// The thread: one write, its result stored; returning makes glibc's clone() end the
/// thread with exit(2).
extern "C" fn run(arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Shared` start_thread passed, alive until the thread has exited.
    let shared = unsafe { &*arg.cast::<Shared>() };
    let ret: i64;
    // SAFETY: write(2) of `len` bytes from our own buffer; the syscall instruction
    // clobbers rcx and r11, nothing else, and touches no memory of ours but the buffer.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_write => ret,
            in("rdi") shared.fd,
            in("rsi") shared.data.as_ptr(),
            in("rdx") shared.len,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    shared.result.store(ret, Ordering::Release);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_write_reaches_the_fd_and_reports_its_length() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let bg = BackgroundWrite::start(w, b"warm").unwrap();
        assert_eq!(bg.finish().unwrap(), 4);
        let mut buf = [0u8; 8];
        let n = nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"warm");
    }

    #[test]
    fn a_failed_background_write_reports_the_errno() {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(w);
        // Writing to the read end of a pipe fails with EBADF.
        let bg = BackgroundWrite::start(r, b"x").unwrap();
        assert_eq!(bg.finish().unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn more_than_32_bytes_is_refused() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(BackgroundWrite::start(w, &[0u8; 33]).err().and_then(|e| e.raw_os_error()), Some(libc::E2BIG));
    }
}
