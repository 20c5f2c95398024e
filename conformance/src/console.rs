//! The caller's side of --console-socket: a listening socket and the pty master the
//! runtime sends over it (SCM_RIGHTS).

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// Receives one fd sent with SCM_RIGHTS on an accepted connection.
pub fn recv_fd(listener: &UnixListener) -> OwnedFd {
    let (conn, _) = listener
        .accept()
        .expect("runtime never connected to the console socket");
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = [0u8; 64];
    // SAFETY: msghdr points at buffers that outlive the call.
    let fd = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = cmsg.len();
        let n = libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        assert!(n >= 0, "recvmsg on console socket failed");
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !c.is_null(),
            "no control message: the pty master was not sent"
        );
        assert_eq!((*c).cmsg_type, libc::SCM_RIGHTS);
        *(libc::CMSG_DATA(c) as *const i32)
    };
    // SAFETY: the kernel just installed this fd for us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A console socket `console.sock` in `dir`, and its path.
pub fn listen(dir: &Path) -> (UnixListener, String) {
    let path = dir.join("console.sock");
    let l = UnixListener::bind(&path).expect("bind console socket");
    (l, path.to_str().unwrap().to_string())
}

/// Reads a terminal master until `marker` shows up or the slave side closes; returns
/// the text without carriage returns.
pub fn read_until(master: OwnedFd, marker: &str) -> String {
    use std::io::Read;
    let mut f = std::fs::File::from(master);
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&all).contains(marker) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&all).replace('\r', "")
}
