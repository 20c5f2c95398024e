//! `terminal: true` with `--console-socket`: the pty master comes back over
//! SCM_RIGHTS and the container's stdio is the pty slave.

use conformance::console::{runtime_cmdline, under_script};
use conformance::Case;
use serde_json::json;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

fn recv_fd(listener: &UnixListener) -> OwnedFd {
    conformance::console::recv_fd(listener)
}

fn listen(c: &Case) -> (UnixListener, String) {
    conformance::console::listen(&c.dir)
}

#[test]
fn terminal_master_arrives_over_console_socket() {
    let mut c = Case::new("console_tty");
    c.config()["process"]["terminal"] = true.into();
    c.bundle.set_sh("tty; stat -L -c '%F %t' /proc/self/fd/0; echo done");
    let (l, sock) = listen(&c);
    let t = std::thread::spawn(move || recv_fd(&l));
    c.create_with(&["--console-socket", &sock]).expect_ok("create with a console socket");
    let master = t.join().expect("console receiver");
    c.start().expect_ok("start");
    let mut f = File::from(master);
    let mut all = Vec::new();
    // Read until the slave side closes (EIO) rather than sleeping.
    let mut buf = [0u8; 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&all).contains("done") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&all).replace('\r', "");
    let l: Vec<&str> = text.lines().collect();
    assert!(l[0].starts_with("/dev/pts/"), "tty: {text:?}");
    assert_eq!(l[1], "character special file 88", "stdin is a pts (major 136): {text:?}");
    c.wait_status(&c.id, "stopped");
}

#[test]
fn dev_console_is_the_pty() {
    let mut c = Case::new("console_dev");
    c.config()["process"]["terminal"] = true.into();
    c.bundle
        .set_sh("stat -c '%F %t' /dev/console; grep ' /dev/console ' /proc/self/mountinfo | grep -c devpts; echo done");
    let (l, sock) = listen(&c);
    let t = std::thread::spawn(move || recv_fd(&l));
    c.create_with(&["--console-socket", &sock]).expect_ok("create");
    let mut f = File::from(t.join().unwrap());
    c.start().expect_ok("start");
    let mut s = String::new();
    let mut buf = [0u8; 1024];
    while !s.contains("done") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => s.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let s = s.replace('\r', "");
    assert_eq!(s.lines().take(2).collect::<Vec<_>>(), vec!["character special file 88", "1"], "{s:?}");
    c.wait_status(&c.id, "stopped");
}

#[test]
fn terminal_without_console_socket_is_an_error() {
    let mut c = Case::new("console_missing");
    c.config()["process"]["terminal"] = true.into();
    c.expect_create_fails(&["console", "terminal", "tty"]);
}

#[test]
fn console_socket_without_terminal_is_an_error() {
    let mut c = Case::new("console_unneeded");
    let (_l, sock) = listen(&c);
    let out = c.create_with(&["--console-socket", &sock]);
    c.expect_clean_failure(&out, &["console", "terminal", "tty"]);
}

#[test]
fn console_socket_that_does_not_exist_is_an_error() {
    let mut c = Case::new("console_nosock");
    c.config()["process"]["terminal"] = true.into();
    let sock = c.dir.join("nobody-listens.sock");
    let out = c.create_with(&["--console-socket", sock.to_str().unwrap()]);
    c.expect_clean_failure(&out, &["console", "nobody-listens.sock", "socket"]);
}

#[test]
fn console_socket_path_over_108_bytes_is_an_error() {
    let mut c = Case::new("console_longpath");
    c.config()["process"]["terminal"] = true.into();
    let long = c.dir.join("d".repeat(120)).join("console.sock");
    let out = c.create_with(&["--console-socket", long.to_str().unwrap()]);
    c.expect_clean_failure(&out, &["console", "socket", "too long"]);
}

/// runc's fixStdioPermissions: the pty is handed to the process's user, who can then
/// reopen and use it.
#[test]
fn terminal_belongs_to_the_process_user() {
    conformance::each_runtime("console_owner", |c, rt| {
        c.config()["process"]["terminal"] = true.into();
        c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c.bundle.set_sh("stat -L -c 'owner %u' /proc/self/fd/0; echo reopened >/proc/self/fd/0; echo done");
        let (l, sock) = listen(c);
        let t = std::thread::spawn(move || recv_fd(&l));
        c.create_with(&["--console-socket", &sock]).expect_ok(rt);
        let master = t.join().expect("console receiver");
        c.start().expect_ok(rt);
        let text = conformance::console::read_until(master, "done");
        assert!(text.contains("owner 1000\nreopened\ndone"), "{rt}: {text:?}");
    });
}

/// In the foreground with a terminal the runtime copies the pty to its own stdout, and
/// runc clears ONLCR first: "\n" stays "\n", no "\r\n" in a captured output.
#[test]
fn foreground_run_with_terminal_keeps_newlines() {
    // runc clears ONLCR from a goroutine while the process already runs, so a quick
    // process's lines still come out as "\r\n" (a race in runc, not a choice); crun 1.8
    // leaves ONLCR set.
    conformance::each_runtime_but(&["runc", "crun"], "console_onlcr", |c, rt| {
        c.config()["process"]["terminal"] = true.into();
        c.bundle.set_args(&["printf", "a\\nb\\n"]);
        c.write();
        let cmd = runtime_cmdline(c, &["run", "--bundle", c.bundle.dir.to_str().unwrap(), &c.id]);
        let out = under_script(&cmd);
        out.expect_ok(rt);
        // script(1) echoes a NUL of its own as "^@" while the terminal is not yet raw.
        let text = out.stdout.replace("^@", "").replace('\0', "");
        assert!(text.contains("a\nb\n"), "{rt}: {:?}", out.stdout);
        assert!(!text.contains('\r'), "{rt}: {:?}", out.stdout);
    });
}
