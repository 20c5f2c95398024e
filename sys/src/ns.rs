//! Namespace files: the nsfs ioctls nix does not wrap.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

// From <linux/nsfs.h>.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The CLONE_NEW* type of the namespace behind an nsfs fd (NS_GET_NSTYPE).
pub fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the CLONE_NEW* type.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(kind)
}
