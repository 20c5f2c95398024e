//! Running criu as a service worker (`criu swrk <fd>`, as runc does): one request over a
//! SOCK_SEQPACKET socketpair (rpc.rs), the notifications criu sends on the way answered,
//! and criu's verdict read from its response and its log.
//!
//! The RPC rather than the command line because only the RPC can call back into berth
//! during a restore: with `orphan_pts_master`, criu restores a container's terminal by
//! making a new pty master and sending it to us (notification `orphan-pts-master`, the fd
//! over SCM_RIGHTS), which berth passes on to `--console-socket`.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use thiserror::Error;

use super::rpc::{Notify, Req, ReqType, Resp};

#[derive(Debug, Error)]
pub enum CriuError {
    #[error("criu not found (looked for {0}): install Debian's criu or pass --criu")]
    NotFound(String),
    #[error("running {criu}: {source}")]
    Spawn { criu: PathBuf, source: std::io::Error },
    #[error("{what} {path}: {source}")]
    Dir { what: &'static str, path: PathBuf, source: std::io::Error },
    /// `problem` is criu's own error lines, joined; the log has the rest.
    #[error("container \"{id}\": criu {action} failed ({status}): {problem} (log: {log})")]
    Failed { id: String, action: &'static str, status: String, problem: String, log: PathBuf },
    /// The conversation with criu broke down (criu's own lines, if any, are in `problem`).
    #[error("container \"{id}\": criu {action}: {source}{problem} (log: {log})")]
    Rpc { id: String, action: &'static str, source: RpcError, problem: String, log: PathBuf },
}

/// What can go wrong in the conversation itself.
#[derive(Debug, Error)]
pub enum RpcError {
    #[error("socketpair for criu swrk: {0}")]
    Socketpair(#[source] nix::Error),
    #[error("the criu socket: {0}")]
    Socket(#[source] nix::Error),
    #[error("encoding the request: {0}")]
    Encode(#[source] protobuf::Error),
    #[error("criu's answer does not decode: {0}")]
    Decode(#[source] protobuf::Error),
    #[error("criu closed its socket without answering")]
    Closed,
    #[error("criu answered a {got:?} request to a {want:?} one")]
    Unexpected { want: ReqType, got: ReqType },
    #[error("notification {script:?}: {source}")]
    Notify { script: String, source: io::Error },
}

/// `--criu` or, by default, `criu` on PATH, then Debian's /usr/sbin/criu.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf, CriuError> {
    if let Some(p) = flag {
        if p.components().count() > 1 {
            return if p.is_file() { Ok(p.to_path_buf()) } else { Err(CriuError::NotFound(p.display().to_string())) };
        }
    }
    let name = flag.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("criu"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).map(|d| d.join(&name)).collect();
    if flag.is_none() {
        candidates.push(PathBuf::from("/usr/sbin/criu"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| CriuError::NotFound(format!("{} on PATH and /usr/sbin/criu", name.display())))
}

/// What criu must do in its child before exec, for a restore: a private mount namespace in
/// which the rootfs is a mount point of its own (pivot_root wants one), so nothing of the
/// preparation shows on the host and nothing needs undoing.
pub struct RestoreMounts {
    pub rootfs: PathBuf,
}

/// How criu's stdio is set up: a dump's output is captured for the error message; a
/// restore hands criu our own stdin, stdout and stderr, which the restored init's
/// inherited pipes are reconnected to (`inherit_fd` of fds 0 to 2), as runc does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio3 {
    Capture,
    Inherit,
}

/// The images and work directories (absolute paths). criu takes them as fds of ours and
/// opens /proc/<our pid>/fd/<n>, which leads to the mount the fd was opened on: for a
/// restore, whose criu runs in a mount namespace of its own, they are opened through
/// criu's root (/proc/<criu>/root), so that criu's cwd, the work directory, is on a mount
/// of its namespace (mounting its cgroup yard there fails with EINVAL otherwise).
pub struct Dirs<'a> {
    pub images: &'a Path,
    pub work: &'a Path,
}

/// The answer to a notification; `Err` fails the dump or restore.
pub type OnNotify<'a> = dyn FnMut(&Notify, Option<OwnedFd>) -> io::Result<()> + 'a;

/// Starts `criu swrk`, sends `req`, answers its notifications through `on_notify` and
/// returns its successful response. On failure the error carries criu's error lines
/// from `log`, else its `cr_errmsg` or what it printed.
#[allow(clippy::too_many_arguments)]
pub fn run(
    criu: &Path,
    id: &str,
    action: &'static str,
    mut req: Req,
    dirs: &Dirs<'_>,
    log: &Path,
    mounts: Option<&RestoreMounts>,
    stdio: Stdio3,
    on_notify: &mut OnNotify<'_>,
) -> Result<Resp, CriuError> {
    let rpc_err =
        |source: RpcError, problem: String| CriuError::Rpc { id: id.into(), action, source, problem, log: log.into() };
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| rpc_err(RpcError::Socketpair(e), String::new()))?;
    // criu's end is inherited by criu alone: we are single-threaded and it is closed
    // below, right after the spawn.
    berth_sys::fd::clear_cloexec(theirs.as_raw_fd()).map_err(|e| CriuError::Spawn { criu: criu.into(), source: e })?;
    let mut cmd = Command::new(criu);
    cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
    match stdio {
        Stdio3::Capture => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        }
        Stdio3::Inherit => {
            cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
        }
    }
    if let Some(m) = mounts {
        let root = CString::new(m.rootfs.as_os_str().as_bytes())
            .map_err(|_| CriuError::Spawn { criu: criu.into(), source: std::io::ErrorKind::InvalidInput.into() })?;
        berth_sys::command::private_mount_ns_with_bind(&mut cmd, root);
    }
    let spawned = cmd.spawn();
    drop(theirs);
    let mut child = spawned.map_err(|e| CriuError::Spawn { criu: criu.into(), source: e })?;
    let root = mounts.map(|_| PathBuf::from(format!("/proc/{}/root", child.id())));
    let talk = open_dirs(dirs, root.as_deref()).and_then(|(images, work)| {
        if let Some(o) = req.opts.as_mut() {
            o.images_dir_fd = images.as_raw_fd();
            o.work_dir_fd = Some(work.as_raw_fd());
        }
        let encoded = req.encode().map_err(|e| rpc_err(RpcError::Encode(e), String::new()))?;
        // The directories stay open until criu has answered.
        Ok(converse(ours.as_fd(), req.typ, &encoded, on_notify))
    });
    // Closing our end ends criu's service loop (a pre-dump's waits for a dump otherwise).
    drop(ours);
    let mut stderr = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| CriuError::Spawn { criu: criu.into(), source: e })?;
    let talk = talk?;
    let problem = || {
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        let mut p = error_lines(&log_text);
        if p.is_empty() {
            p = error_lines(&stderr);
        }
        p
    };
    // criu's own Error lines when it left any, else what `fallback` says.
    let failed = |status: String, fallback: &dyn Fn() -> String| {
        let mut p = problem();
        if p.is_empty() {
            p = fallback();
        }
        CriuError::Failed { id: id.into(), action, status, problem: p, log: log.into() }
    };
    let resp = match talk {
        Ok(r) => r,
        Err(e @ RpcError::Closed) => return Err(failed(format!("{e}, {status}"), &|| last_line(&stderr))),
        Err(e) => {
            let p = problem();
            return Err(rpc_err(e, if p.is_empty() { p } else { format!(": {p}") }));
        }
    };
    if !resp.success {
        let status = match resp.cr_errno.filter(|e| *e != 0) {
            Some(e) => format!("{}", io::Error::from_raw_os_error(e)),
            None => "unsuccessful".into(),
        };
        let errmsg = || resp.cr_errmsg.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| last_line(&stderr));
        return Err(failed(status, &errmsg));
    }
    // A pre-dump leaves criu waiting for the final dump, which never comes: its exit
    // status after our socket closes says nothing (runc ignores it too).
    if !status.success() && req.typ != ReqType::PreDump {
        return Err(failed(status.to_string(), &|| last_line(&stderr)));
    }
    Ok(resp)
}

fn open_dirs(dirs: &Dirs<'_>, root: Option<&Path>) -> Result<(File, File), CriuError> {
    let open = |p: &Path, what: &'static str| {
        let full = match root {
            // Every symlink resolved here first: under /proc/<criu>/root an absolute link is
            // followed from our root, not criu's, and lands on a mount of our namespace
            // (containerd's `<bundle>/work` is a link to /var/lib/containerd/…: criu's cgroup
            // yard then failed with EINVAL for docker start --checkpoint through runc's shim).
            Some(r) => {
                let real =
                    std::fs::canonicalize(p).map_err(|source| CriuError::Dir { what, path: p.into(), source })?;
                r.join(real.strip_prefix("/").unwrap_or(&real))
            }
            None => p.to_path_buf(),
        };
        File::open(&full).map_err(|source| CriuError::Dir { what, path: p.into(), source })
    };
    Ok((open(dirs.images, "--image-path")?, open(dirs.work, "--work-path")?))
}

fn last_line(text: &str) -> String {
    text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no error message").trim().to_string()
}

/// criu's messages fit well within this; a longer one would be cut (SOCK_SEQPACKET).
const MAX_MSG: usize = 64 * 1024;

fn send_msg(sock: BorrowedFd<'_>, bytes: &[u8]) -> Result<(), RpcError> {
    loop {
        // MSG_NOSIGNAL: a criu that died gives EPIPE, not a SIGPIPE that would kill us.
        match send(sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EPIPE | nix::Error::ECONNRESET) => return Err(RpcError::Closed),
            Err(e) => return Err(RpcError::Socket(e)),
            Ok(_) => return Ok(()),
        }
    }
}

/// Sends the request, then reads responses: each notification is handed to `on_notify`
/// (with the fd that came with it) and answered with `notify_success`; the first other
/// response is the answer, which must be to the request's type (or EMPTY, criu's answer to
/// a request it could not take, whose `success` is false).
pub fn converse(
    sock: BorrowedFd<'_>,
    typ: ReqType,
    request: &[u8],
    on_notify: &mut OnNotify<'_>,
) -> Result<Resp, RpcError> {
    send_msg(sock, request)?;
    let mut buf = vec![0u8; MAX_MSG];
    let answer = Req::notify_ok().encode().map_err(RpcError::Encode)?;
    loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let (n, fd) = match berth_sys::fd::recv_with_fd(sock, &mut iov) {
            Err(nix::Error::EINTR) => continue,
            // criu exited before reading all we sent.
            Err(nix::Error::ECONNRESET) => return Err(RpcError::Closed),
            Err(e) => return Err(RpcError::Socket(e)),
            Ok(r) => r,
        };
        if n == 0 {
            return Err(RpcError::Closed);
        }
        let resp = Resp::decode(&buf[..n]).map_err(RpcError::Decode)?;
        if resp.typ == ReqType::Notify {
            let notify = resp.notify.unwrap_or_default();
            on_notify(&notify, fd).map_err(|source| RpcError::Notify { script: notify.script.clone(), source })?;
            send_msg(sock, &answer)?;
            continue;
        }
        let refused = resp.typ == ReqType::Other(0) && !resp.success;
        if resp.typ != typ && !refused {
            return Err(RpcError::Unexpected { want: typ, got: resp.typ });
        }
        return Ok(resp);
    }
}

/// criu's `Error (file:line): message` lines, as `message`s joined with "; " (at most
/// four: the first is the cause, the rest its consequences).
pub fn error_lines(log: &str) -> String {
    log.lines()
        .filter_map(|l| {
            let i = l.find("Error (")?;
            let rest = &l[i..];
            let msg = rest.find("): ").map(|j| &rest[j + 3..]).unwrap_or(rest);
            Some(msg.trim().to_string())
        })
        .filter(|m| !m.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_keep_criu_messages_without_locations() {
        let log = "(00.000) Version: 3.17.1\n\
                   (00.003) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n\
                   (00.003) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n\
                   (00.004) Warn  something else\n";
        assert_eq!(
            error_lines(log),
            "vdso: Failed to fill self vdso symtable; kerndat_vdso_fill_symtable failed when initializing kerndat."
        );
        assert_eq!(error_lines("all fine\n"), "");
    }

    use crate::checkpoint::rpc::tests::encode_resp;
    use crate::checkpoint::rpc::Opts;
    use nix::sys::socket::{recv, sendmsg, ControlMessage};
    use std::io::Write;
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap()
    }

    fn resp(typ: ReqType, success: bool) -> Resp {
        Resp { typ, success, restored_pid: None, notify: None, cr_errno: None, cr_errmsg: None }
    }

    fn notify(script: &str) -> Resp {
        Resp { notify: Some(Notify { script: script.into(), pid: Some(7) }), ..resp(ReqType::Notify, true) }
    }

    /// criu's side: reads one message (None at EOF).
    fn recv_msg(sock: &OwnedFd) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        (n > 0).then(|| buf[..n].to_vec())
    }

    fn send_resp(sock: &OwnedFd, r: &Resp, fd: Option<BorrowedFd<'_>>) {
        let bytes = encode_resp(r);
        let iov = [io::IoSlice::new(&bytes)];
        let fds: Vec<i32> = fd.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg: Vec<ControlMessage<'_>> = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&fds)] };
        sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
    }

    fn restore_req() -> Vec<u8> {
        Req::new(ReqType::Restore, Opts { images_dir_fd: 3, log_file: "restore.log".into(), ..Opts::default() })
            .encode()
            .unwrap()
    }

    #[test]
    fn notifications_are_answered_and_the_pty_master_reaches_the_handler() {
        let (ours, theirs) = pair();
        let request = restore_req();
        let sent = request.clone();
        let fake = std::thread::spawn(move || {
            assert_eq!(recv_msg(&theirs).unwrap(), sent, "the request first");
            send_resp(&theirs, &notify("setup-namespaces"), None);
            assert_eq!(recv_msg(&theirs).unwrap(), Req::notify_ok().encode().unwrap());
            // A pipe stands in for the pty master.
            let (r, mut w) = std::io::pipe().unwrap();
            send_resp(&theirs, &notify("orphan-pts-master"), Some(r.as_fd()));
            assert_eq!(recv_msg(&theirs).unwrap(), Req::notify_ok().encode().unwrap());
            w.write_all(b"through the master").unwrap();
            send_resp(&theirs, &notify("post-restore"), None);
            assert_eq!(recv_msg(&theirs).unwrap(), Req::notify_ok().encode().unwrap());
            send_resp(&theirs, &Resp { restored_pid: Some(4242), ..resp(ReqType::Restore, true) }, None);
            assert_eq!(recv_msg(&theirs), None, "EOF once the answer is read");
        });
        let mut seen = Vec::new();
        let mut master = None;
        let mut on_notify = |n: &Notify, fd: Option<OwnedFd>| -> io::Result<()> {
            seen.push((n.script.clone(), n.pid, fd.is_some()));
            if n.script == "orphan-pts-master" {
                master = fd;
            }
            Ok(())
        };
        let r = converse(ours.as_fd(), ReqType::Restore, &request, &mut on_notify).unwrap();
        drop(ours);
        fake.join().unwrap();
        assert_eq!(r.restored_pid, Some(4242));
        assert!(r.success);
        assert_eq!(
            seen,
            vec![
                ("setup-namespaces".to_string(), Some(7), false),
                ("orphan-pts-master".to_string(), Some(7), true),
                ("post-restore".to_string(), Some(7), false)
            ]
        );
        let mut text = String::new();
        std::fs::File::from(master.unwrap()).read_to_string(&mut text).unwrap();
        assert_eq!(text, "through the master");
    }

    #[test]
    fn a_failing_handler_ends_the_conversation_unanswered() {
        let (ours, theirs) = pair();
        let fake = std::thread::spawn(move || {
            recv_msg(&theirs).unwrap();
            send_resp(&theirs, &notify("orphan-pts-master"), None);
            recv_msg(&theirs)
        });
        let mut on_notify =
            |_: &Notify, _: Option<OwnedFd>| -> io::Result<()> { Err(io::ErrorKind::InvalidData.into()) };
        let e = converse(ours.as_fd(), ReqType::Restore, &restore_req(), &mut on_notify).unwrap_err();
        drop(ours);
        assert!(matches!(&e, RpcError::Notify { script, .. } if script == "orphan-pts-master"), "{e}");
        assert_eq!(fake.join().unwrap(), None, "criu gets no answer, only EOF");
    }

    #[test]
    fn eof_unexpected_types_and_refusals() {
        let mut ok = |_: &Notify, _: Option<OwnedFd>| -> io::Result<()> { Ok(()) };
        let (ours, theirs) = pair();
        drop(theirs);
        assert!(matches!(converse(ours.as_fd(), ReqType::Dump, b"x", &mut ok), Err(RpcError::Closed)));

        let (ours, theirs) = pair();
        let fake = std::thread::spawn(move || {
            recv_msg(&theirs).unwrap();
        });
        assert!(matches!(converse(ours.as_fd(), ReqType::Dump, b"x", &mut ok), Err(RpcError::Closed)));
        fake.join().unwrap();

        let (ours, theirs) = pair();
        let fake = std::thread::spawn(move || {
            recv_msg(&theirs).unwrap();
            send_resp(&theirs, &resp(ReqType::Restore, true), None);
        });
        let e = converse(ours.as_fd(), ReqType::Dump, b"x", &mut ok).unwrap_err();
        assert!(matches!(e, RpcError::Unexpected { want: ReqType::Dump, got: ReqType::Restore }), "{e}");
        fake.join().unwrap();

        // criu answers a request it cannot parse with EMPTY and success false.
        let (ours, theirs) = pair();
        let fake = std::thread::spawn(move || {
            recv_msg(&theirs).unwrap();
            send_resp(&theirs, &Resp { cr_errmsg: Some("bad".into()), ..resp(ReqType::Other(0), false) }, None);
        });
        let r = converse(ours.as_fd(), ReqType::Dump, b"x", &mut ok).unwrap();
        assert!(!r.success && r.cr_errmsg.as_deref() == Some("bad"));
        fake.join().unwrap();
    }

    #[test]
    fn a_criu_that_exits_without_answering_fails_with_its_log_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dump.log");
        std::fs::write(&log, "(00.001) Error (criu/kerndat.c:1): kerndat failed\n").unwrap();
        let req = Req::new(ReqType::Dump, Opts::default());
        let mut ok = |_: &Notify, _: Option<OwnedFd>| -> io::Result<()> { Ok(()) };
        let dirs = Dirs { images: dir.path(), work: dir.path() };
        let e =
            run(Path::new("/bin/false"), "c1", "dump", req, &dirs, &log, None, Stdio3::Capture, &mut ok).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CriuError::Failed { .. }), "{text}");
        assert!(text.starts_with("container \"c1\": criu dump failed (criu closed its socket"), "{text}");
        assert!(text.contains("kerndat failed") && text.contains("dump.log"), "{text}");
    }

    #[test]
    fn locate_refuses_a_missing_explicit_path() {
        assert!(matches!(locate(Some(Path::new("/nonexistent/criu"))), Err(CriuError::NotFound(_))));
    }
}
