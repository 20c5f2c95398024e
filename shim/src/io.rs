//! The container's stdio: containerd's FIFOs handed straight to the process (no copy threads),
//! or a pseudo-terminal received over a console socket and copied to/from the FIFOs.

use std::{
    fs::{File, OpenOptions},
    io::{IoSliceMut, Read, Write},
    os::{
        fd::AsFd,
        unix::{
            fs::{DirBuilderExt, OpenOptionsExt},
            net::UnixListener,
        },
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
};

use crate::{
    error::{io, sys, Error, Result},
    runtime::ChildStdio,
};

#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What the shim holds for a process's stdio for as long as the process record exists.
#[derive(Default)]
pub struct ProcessIo {
    /// Read ends of the stdout/stderr FIFOs that the shim never reads: they keep the FIFO open
    /// so the container does not get EPIPE while containerd is restarting, and the pipe's
    /// buffered output survives until containerd reopens the FIFO. They are not writers, so
    /// containerd still sees EOF when the process exits.
    _keepers: Vec<File>,
    /// The pty master for a terminal process (resize).
    pub console: Option<Arc<File>>,
}

fn strip_scheme(path: &str) -> Result<Option<&str>> {
    if path.is_empty() {
        return Ok(None);
    }
    if let Some(p) = path.strip_prefix("fifo://") {
        return Ok(Some(p));
    }
    if let Some(p) = path.strip_prefix("file://") {
        return Ok(Some(p));
    }
    if path.contains("://") {
        return Err(Error::Unimplemented(format!("stdio uri {path:?} is not supported")));
    }
    Ok(Some(path))
}

fn is_fifo(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).map(|m| m.file_type().is_fifo()).unwrap_or(false)
}

/// Opens an output path for writing without blocking on a FIFO with no reader yet: a read
/// end is opened first (non-blocking), which makes the write-only open return at once.
fn open_output(path: &str, keepers: &mut Vec<File>) -> Result<File> {
    if is_fifo(path) {
        let keeper = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(io(format!("open {path}")))?;
        keepers.push(keeper);
        OpenOptions::new().write(true).custom_flags(libc::O_CLOEXEC).open(path).map_err(io(format!("open {path}")))
    } else {
        OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io(format!("open {path}")))
    }
}

/// Opens the stdin FIFO for reading without waiting for a writer, then makes reads blocking.
/// The shim keeps no writer, so the process sees EOF as soon as containerd closes its end.
fn open_input(path: &str) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io(format!("open {path}")))?;
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(&f, FcntlArg::F_GETFL) {
        let _ = fcntl(&f, FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK));
    }
    Ok(f)
}

/// For a non-terminal process: the files the runtime passes on to the process as fds 0-2.
pub fn open_direct(paths: &StdioPaths) -> Result<(ProcessIo, ChildStdio)> {
    let mut keepers = Vec::new();
    let stdin = match strip_scheme(&paths.stdin)? {
        Some(p) => Some(open_input(p)?),
        None => None,
    };
    let stdout = match strip_scheme(&paths.stdout)? {
        Some(p) => Some(open_output(p, &mut keepers)?),
        None => None,
    };
    let stderr = match strip_scheme(&paths.stderr)? {
        Some(p) => Some(open_output(p, &mut keepers)?),
        None => None,
    };
    Ok((ProcessIo { _keepers: keepers, console: None }, ChildStdio { stdin, stdout, stderr }))
}

static CONSOLE_SEQ: AtomicU64 = AtomicU64::new(0);

/// A listening unix socket the runtime connects to in order to hand over the pty master.
/// Lives in its own 0700 directory under /tmp (short path: bundle paths can exceed 108 bytes).
pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<Self> {
        let seq = CONSOLE_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("berth-pty-{}-{seq}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(io(format!("create {}", dir.display())))?;
        let path = dir.join("pty.sock");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(io("bind console socket")(e));
            }
        };
        Ok(ConsoleSocket { dir, path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Called after the runtime succeeded, so its connection is already queued; non-blocking
    /// so a runtime that never connected yields an error instead of a hung shim.
    pub fn receive_master(&self) -> Result<File> {
        self.listener.set_nonblocking(true).map_err(io("console socket nonblocking"))?;
        let (conn, _) = self.listener.accept().map_err(io("runtime did not connect to the console socket"))?;
        conn.set_nonblocking(false).map_err(io("console connection blocking"))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let (_, fd) = berth_sys::fd::recv_with_fd(conn.as_fd(), &mut iov).map_err(sys("receive pty master"))?;
        if let Some(fd) = fd {
            return Ok(File::from(fd));
        }
        Err(Error::FailedPrecondition("runtime sent no pty master on the console socket".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Wires a pty master to the FIFOs. The two copy threads live only while their streams do:
/// the output one ends when the last slave closes (EIO), the input one at stdin EOF.
pub fn start_console_copy(master: File, paths: &StdioPaths) -> Result<ProcessIo> {
    let master = Arc::new(master);
    let mut keepers = Vec::new();
    if let Some(p) = strip_scheme(&paths.stdout)? {
        let mut out = open_output(p, &mut keepers)?;
        let m = Arc::clone(&master);
        std::thread::Builder::new()
            .name("pty-out".into())
            .spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match (&*m).read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(io("spawn pty copy"))?;
    }
    if let Some(p) = strip_scheme(&paths.stdin)? {
        let mut input = open_input(p)?;
        let m = Arc::clone(&master);
        std::thread::Builder::new()
            .name("pty-in".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match input.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if (&*m).write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(io("spawn pty copy"))?;
    }
    Ok(ProcessIo { _keepers: keepers, console: Some(master) })
}

pub fn resize(console: &File, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(u16::MAX),
        ws_col: u16::try_from(width).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    berth_sys::term::set_window_size(console.as_fd(), &ws).map_err(io("resize pty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_stdio_schemes_are_rejected() {
        assert!(matches!(strip_scheme("binary:///x"), Err(Error::Unimplemented(_))));
        assert_eq!(strip_scheme("").unwrap(), None);
        assert_eq!(strip_scheme("/a/b").unwrap(), Some("/a/b"));
    }

    #[test]
    fn output_fifo_opens_without_reader_and_reader_sees_eof() {
        let dir = tempfile_dir();
        let p = dir.join("out");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let paths = StdioPaths { stdout: p.to_str().unwrap().into(), ..Default::default() };
        let (pio, mut child) = open_direct(&paths).unwrap();
        let mut w = child.stdout.take().unwrap();
        // containerd's reader; the shim's keeper is not a writer, so EOF follows the data.
        let mut r = open_input(p.to_str().unwrap()).unwrap();
        w.write_all(b"hi").unwrap();
        drop(w);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hi");
        drop(pio);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
