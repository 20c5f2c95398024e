//! The caller's side of --console-socket: a listening socket and the pty master the
//! runtime sends over it (SCM_RIGHTS).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// Receives one fd sent with SCM_RIGHTS on an accepted connection (received CLOEXEC).
pub fn recv_fd(listener: &UnixListener) -> OwnedFd {
    let (conn, _) = listener.accept().expect("runtime never connected to the console socket");
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let (_, fd) = berth_sys::fd::recv_with_fd(conn.as_fd(), &mut iov).expect("recvmsg on console socket failed");
    fd.expect("no control message: the pty master was not sent")
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

/// The runtime's command line for `args` (with its `--root`), each word single-quoted for a
/// shell: what [`under_script`] runs.
pub fn runtime_cmdline(c: &crate::Case, args: &[&str]) -> String {
    let q = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    [c.rt.bin.to_str().unwrap_or_default(), "--root", c.rt.root.to_str().unwrap_or_default()]
        .iter()
        .chain(args)
        .map(|a| q(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the shell command line `cmd` under script(1), which gives it a terminal of its own
/// as stdin, stdout and stderr, as a person's would be.
pub fn under_script(cmd: &str) -> crate::Out {
    crate::runtime::Invocation::new(Path::new("script")).args(["-qec", cmd, "/dev/null"]).run()
}
