//! CVE-2019-5736: a container must never be able to reach the host's berth binary through
//! /proc/<pid>/exe of a berth process that entered it. Before a command that enters a
//! container, berth re-executes itself from a sealed memfd copy; the container can then at
//! most reach that copy, which no one can write (T1). Commands that do not enter a
//! container skip this and cost nothing extra.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const F_SEAL_SEAL: i32 = 0x0001;
const F_SEAL_SHRINK: i32 = 0x0002;
const F_SEAL_GROW: i32 = 0x0004;
const F_SEAL_WRITE: i32 = 0x0008;
const F_SEAL_EXEC: i32 = 0x0020;
const SEALS: i32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
const MFD_EXEC: u32 = 0x0010;

fn seals_of(fd: &OwnedFd) -> i32 {
    // SAFETY: fcntl on a valid fd.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) }
}

/// Whether this process already runs from a sealed copy.
pub fn is_sealed() -> bool {
    std::fs::File::open("/proc/self/exe").is_ok_and(|f| {
        let fd = OwnedFd::from(f);
        let s = seals_of(&fd);
        s >= 0 && s & SEALS == SEALS
    })
}

fn memfd(name: &std::ffi::CStr, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create with a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Re-executes the current command from a sealed copy of the binary, unless it already
/// runs from one. Returns only on failure.
pub fn reexec_sealed() -> io::Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let exe = std::fs::File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    let name = c"berth-sealed";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (6.3+) keeps the copy executable even where memfds default to noexec.
    let copy = memfd(name, base | MFD_EXEC).or_else(|_| memfd(name, base))?;
    // sendfile stays in the kernel; copy_file_range would refuse ext4 → tmpfs (EXDEV).
    let mut off: libc::off_t = 0;
    while (off as u64) < len {
        // SAFETY: both fds are valid; off is a valid offset the kernel advances.
        let n = unsafe { libc::sendfile(copy.as_raw_fd(), exe.as_raw_fd(), &mut off, (len - off as u64) as usize) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
    }
    drop(exe);
    // SAFETY: fcntl on a valid fd; the seal set is a plain integer.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS | F_SEAL_EXEC) } < 0 {
        // Kernels before 6.3 know no F_SEAL_EXEC.
        // SAFETY: as above.
        if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let argv: Vec<CString> = std::env::args_os().map(|a| to_c(&a)).collect::<io::Result<_>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        })
        .collect::<io::Result<_>>()?;
    let err = nix::unistd::fexecve(&copy, &argv, &envp);
    match err {
        Err(e) => Err(e.into()),
        Ok(never) => match never {},
    }
}
