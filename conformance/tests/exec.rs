//! `exec`: a process joining a running (or created) container, with runc's command line.
//! Everything here also runs against runc (BERTH=/usr/sbin/runc).

use conformance::console::{runtime_cmdline, under_script};
use conformance::util::status_field;
use conformance::{sha256_file, Case, Out};
use serde_json::json;
use std::fs;
use std::os::unix::fs::MetadataExt;

const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// A started container whose init sleeps.
fn running(name: &str) -> Case {
    let mut c = Case::new(name);
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c
}

fn init_pid(c: &Case) -> i64 {
    c.state()["pid"].as_i64().expect("state has a pid")
}

fn exec(c: &Case, args: &[&str]) -> Out {
    c.rt.cmd().arg("exec").args(args.iter().copied()).run()
}

fn exec_ok(c: &Case, args: &[&str]) -> String {
    let out = exec(c, args);
    out.expect_ok("exec");
    out.stdout
}

fn ns_links(pid: &str) -> Vec<String> {
    NAMESPACES
        .iter()
        .filter_map(|n| fs::read_link(format!("/proc/{pid}/ns/{n}")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn exec_joins_every_namespace_of_the_init() {
    let c = running("exec_ns");
    let pid = init_pid(&c);
    let script = NAMESPACES.iter().map(|n| format!("readlink /proc/self/ns/{n};")).collect::<String>();
    let inside: Vec<String> = exec_ok(&c, &[&c.id, "sh", "-c", &script]).lines().map(str::to_string).collect();
    assert_eq!(inside, ns_links(&pid.to_string()), "namespaces of the exec'd process vs the init's");
}

#[test]
fn detached_exec_writes_the_pid_file_and_shares_cgroup_and_namespaces() {
    let c = running("exec_detach");
    let pidfile = c.dir.join("exec.pid");
    exec(&c, &["--detach", "--pid-file", pidfile.to_str().unwrap(), &c.id, "sleep", "1000"]).expect_ok("exec --detach");
    let pid = fs::read_to_string(&pidfile).expect("pid file written").trim().to_string();
    let init = init_pid(&c).to_string();
    assert_eq!(ns_links(&pid), ns_links(&init), "namespaces");
    let cg = |p: &str| fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(&pid), cg(&init), "cgroups of the exec'd process vs the init's");
    let st = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid_line = status_field(&st, "NSpid");
    let nspid: Vec<&str> = nspid_line.split_whitespace().collect();
    assert_eq!(nspid.len(), 2, "the process has a pid in the container's pid namespace: {nspid:?}");
    assert_ne!(nspid[1], "1");
    // The init sees it in its own pid namespace under that pid.
    let seen = exec_ok(&c, &[&c.id, "cat", &format!("/proc/{}/cmdline", nspid[1])]);
    assert_eq!(seen, "sleep\u{0}1000\u{0}");
}

#[test]
fn exec_runs_in_the_container_pid_namespace_and_cgroup_namespace() {
    let c = running("exec_pidns");
    let out = exec_ok(&c, &[&c.id, "sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/self/cgroup"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("sleep\u{0}1000\u{0}"), "pid 1 is the init:\n{out}");
    for l in lines {
        assert!(l.ends_with(":/"), "inside its cgroup namespace the process sits at the root: {l}");
    }
}

#[test]
fn exec_env_cwd_user_and_groups() {
    let c = running("exec_user");
    let out = exec_ok(
        &c,
        &[
            "-e",
            "FOO=bar baz",
            "-e",
            "TERM=dumb",
            "--cwd",
            "/tmp",
            "-u",
            "1000:1001",
            "-g",
            "5",
            "-g",
            "7",
            &c.id,
            "sh",
            "-c",
            "echo \"$FOO|$TERM|$HOME\"; pwd; id -u; id -g; id -G",
        ],
    );
    assert_eq!(out, "bar baz|dumb|/home/user\n/tmp\n1000\n1001\n1001 5 7\n");
}

#[test]
fn exec_user_with_a_uid_only_keeps_the_container_gid() {
    let mut c = Case::new("exec_uid_only");
    c.config()["process"]["user"] = json!({"uid": 0, "gid": 42});
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    assert_eq!(exec_ok(&c, &["-u", "1", &c.id, "sh", "-c", "id -u; id -g; echo $HOME"]), "1\n42\n/\n");
    assert_eq!(exec_ok(&c, &["-u", "0", &c.id, "sh", "-c", "id -u; echo $HOME"]), "0\n/root\n");
    assert_eq!(exec_ok(&c, &["-u", "65534:65534", &c.id, "sh", "-c", "id -u; id -g"]), "65534\n65534\n");
}

#[test]
fn bad_user_values_are_refused_and_never_become_root() {
    let c = running("exec_bad_user");
    for bad in ["a", "1:", ":1", "-1", "1:a", "root"] {
        let out = exec(&c, &["-u", bad, &c.id, "id", "-u"]);
        out.expect_fail(&format!("--user {bad}"));
        assert!(!out.stdout.contains('0'), "--user {bad:?} ran a process:\n{out}");
        assert!(out.stderr.to_lowercase().contains("user") || out.stderr.contains("parsing"), "{out}");
    }
}

#[test]
fn exec_exit_codes_are_the_process_ones() {
    let c = running("exec_codes");
    assert_eq!(exec(&c, &[&c.id, "true"]).code, 0);
    assert_eq!(exec(&c, &[&c.id, "sh", "-c", "exit 3"]).code, 3);
    assert_eq!(exec(&c, &[&c.id, "sh", "-c", "kill -9 $$"]).code, 137);
}

#[test]
fn exec_stdin_is_passed_through() {
    let c = running("exec_stdin");
    let out = c.rt.cmd().args(["exec", &c.id, "sh", "-c", "tr a-z A-Z"]).stdin(b"hello exec\n").run();
    out.expect_ok("exec with stdin");
    assert_eq!(out.stdout, "HELLO EXEC\n");
}

#[test]
fn exec_cap_adds_no_inheritable_capability() {
    let c = running("exec_caps");
    let st = exec_ok(&c, &["--cap", "CAP_SYS_ADMIN", &c.id, "cat", "/proc/self/status"]);
    let bit = 1u64 << 21;
    let field = |k: &str| u64::from_str_radix(&status_field(&st, k), 16).unwrap();
    assert_eq!(field("CapInh"), 0, "CVE-2022-29162: --cap must not add inheritable caps");
    assert_ne!(field("CapEff") & bit, 0, "CAP_SYS_ADMIN effective");
    assert_ne!(field("CapPrm") & bit, 0, "CAP_SYS_ADMIN permitted");
    assert_ne!(field("CapBnd") & bit, 0, "CAP_SYS_ADMIN in the bounding set");
    // Without --cap, the container's own sets (no CAP_SYS_ADMIN).
    let st = exec_ok(&c, &[&c.id, "cat", "/proc/self/status"]);
    assert_eq!(u64::from_str_radix(&status_field(&st, "CapBnd"), 16).unwrap() & bit, 0);
}

#[test]
fn exec_no_new_privs_and_rlimits_follow_the_container() {
    let mut c = Case::new("exec_nnp");
    c.config()["process"]["noNewPrivileges"] = false.into();
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let st = exec_ok(&c, &[&c.id, "sh", "-c", "cat /proc/self/status; ulimit -n"]);
    assert_eq!(status_field(&st, "NoNewPrivs"), "0");
    assert_eq!(st.lines().last(), Some("1024"), "the container's RLIMIT_NOFILE");
    let st = exec_ok(&c, &["--no-new-privs", &c.id, "cat", "/proc/self/status"]);
    assert_eq!(status_field(&st, "NoNewPrivs"), "1");
}

#[test]
fn exec_process_json() {
    let c = running("exec_process_json");
    let p = c.dir.join("process.json");
    fs::write(
        &p,
        json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [3]},
            "args": ["sh", "-c", "echo $A; pwd; id -G; ulimit -n; exit 4"],
            "env": ["PATH=/bin:/usr/bin", "A=from-json"],
            "cwd": "/etc",
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 77, "soft": 77}]
        })
        .to_string(),
    )
    .unwrap();
    let out = exec(&c, &["--process", p.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(out.stdout, "from-json\n/etc\n1000 3\n77\n");
}

#[test]
fn exec_tty_sends_the_master_to_the_console_socket() {
    let c = running("exec_tty");
    let (l, sock) = conformance::console::listen(&c.dir);
    let t = std::thread::spawn(move || conformance::console::recv_fd(&l));
    exec(
        &c,
        &["-t", "-d", "--console-socket", &sock, &c.id, "sh", "-c", "tty; stat -L -c '%t' /proc/self/fd/0; echo done"],
    )
    .expect_ok("exec --tty --console-socket");
    let text = conformance::console::read_until(t.join().expect("console receiver"), "done");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{text:?}");
    assert_eq!(lines[1], "88", "stdin is a pts: {text:?}");
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let mut c = Case::new("exec_stopped");
    c.bundle.set_args(&["true"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c.wait_status(&c.id, "stopped");
    let out = exec(&c, &[&c.id, "true"]);
    out.expect_fail("exec into a stopped container");
    assert!(out.stderr.contains("stopped"), "{out}");
}

#[test]
fn exec_unknown_container_names_it() {
    let c = Case::new("exec_unknown");
    let out = exec(&c, &["no-such-ctr", "true"]);
    out.expect_fail("exec into an unknown container");
    // runc's wording does not name the id ("container does not exist"); berth's does.
    let runc = c.rt.bin.ends_with("runc");
    assert!(out.stderr.contains("no-such-ctr") || (runc && out.stderr.contains("does not exist")), "{out}");
}

#[test]
fn exec_into_a_created_container_works() {
    let c = Case::new("exec_created");
    c.create().expect_ok("create");
    assert_eq!(exec_ok(&c, &[&c.id, "echo", "hi"]), "hi\n");
    assert_eq!(c.rt.status(&c.id).as_deref(), Some("created"));
}

#[test]
fn exec_missing_binary_fails_even_detached() {
    let c = running("exec_missing");
    for extra in [&[][..], &["--detach"][..]] {
        let mut args = extra.to_vec();
        args.extend([c.id.as_str(), "/no/such/binary"]);
        let out = exec(&c, &args);
        out.expect_fail("exec of a missing binary");
        assert!(out.stderr.contains("no such file or directory") || out.stderr.contains("No such file"), "{out}");
    }
}

/// The fds of a detached `exec ... sleep`, read on the host.
fn fds_of_detached(c: &Case, extra: &[&str], leak: &[std::path::PathBuf]) -> Vec<String> {
    let pidfile = c.dir.join("fds.pid");
    let _ = fs::remove_file(&pidfile);
    let mut args = vec!["exec", "--detach", "--pid-file", pidfile.to_str().unwrap()];
    args.extend(extra);
    args.extend([c.id.as_str(), "sleep", "1000"]);
    c.rt.cmd().args(args).leak_fds(leak).run().expect_ok("exec --detach with leaked fds");
    let pid = fs::read_to_string(&pidfile).expect("pid file").trim().to_string();
    let mut fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    fds
}

#[test]
fn exec_closes_fds_the_caller_leaked() {
    let c = running("exec_fds");
    let leak = vec![c.dir.clone(), "/".into(), "/etc/hostname".into()];
    assert_eq!(fds_of_detached(&c, &[], &leak), ["0", "1", "2"]);
    assert_eq!(fds_of_detached(&c, &["--preserve-fds", "1"], &leak), ["0", "1", "2", "3"]);
}

#[test]
fn exec_cwd_through_a_leaked_fd_cannot_reach_the_host() {
    let c = running("exec_cwd_fd");
    let canary = c.canary("hostdir");
    fs::write(canary.join("secret"), "HOST-SECRET\n").unwrap();
    for n in 3..8 {
        let cwd = format!("/proc/self/fd/{n}");
        let out =
            c.rt.cmd()
                .args(["exec", "--cwd", &cwd, &c.id, "sh", "-c", "cat secret ../secret 2>/dev/null; pwd"])
                .leak_fds(&[canary.clone(), canary.clone(), "/".into()])
                .run();
        assert!(!out.stdout.contains("HOST-SECRET"), "--cwd {cwd} reached the host:\n{out}");
        if out.ok() {
            let pwd = out.stdout.lines().last().unwrap_or("");
            assert!(!pwd.contains(canary.to_str().unwrap()) && !pwd.contains("unreachable"), "--cwd {cwd}: {pwd}");
        }
    }
}

#[test]
fn cve_2019_5736_exec_of_proc_self_exe_leaves_runtime_binary_unchanged() {
    let mut c = Case::new("exec_self_exe");
    let before = sha256_file(&c.rt.bin);
    c.bundle.rootfs.write_script("/entry", "#!/proc/self/exe\n");
    c.bundle.rootfs.write_script(
        "/attack",
        "#!/bin/sh\nfor p in /proc/self/exe /proc/1/exe; do echo pwned >> $p 2>/dev/null && echo WROTE $p; done\nexec /entry\n",
    );
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let out = exec(&c, &[&c.id, "/attack"]);
    assert!(!out.stdout.contains("WROTE"), "{out}");
    let _ = exec(&c, &[&c.id, "/entry"]);
    assert_eq!(sha256_file(&c.rt.bin), before, "the runtime binary was modified");
}

/// The init's freezer control file and its frozen/thawed values (v1 freezer or v2).
fn freezer_of(pid: i64) -> (String, &'static str, &'static str) {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in cg.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctl.split(',').any(|c| c == "freezer") {
            return (format!("/sys/fs/cgroup/freezer{path}/freezer.state"), "FROZEN", "THAWED");
        }
        if ctl.is_empty() && fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
            return (format!("/sys/fs/cgroup{path}/cgroup.freeze"), "1", "0");
        }
    }
    panic!("no freezer for pid {pid}:\n{cg}");
}

#[test]
fn exec_into_a_paused_container_is_refused() {
    let c = running("exec_paused");
    let (file, frozen, thawed) = freezer_of(init_pid(&c));
    fs::write(&file, frozen).expect("freeze");
    conformance::poll_until("frozen", std::time::Duration::from_secs(10), || {
        fs::read_to_string(&file).ok().filter(|s| s.trim() == frozen).map(|_| ())
    });
    let out = exec(&c, &[&c.id, "true"]);
    fs::write(&file, thawed).expect("thaw");
    out.expect_fail("exec into a paused container");
    assert!(out.stderr.contains("paused"), "{out}");
    assert_eq!(exec_ok(&c, &[&c.id, "echo", "thawed"]), "thawed\n");
}

#[test]
fn foreground_exec_tty_proxies_the_terminal() {
    let c = running("exec_fg_tty");
    let out = under_script(&runtime_cmdline(&c, &["exec", "-t", &c.id, "sh", "-c", "tty; echo in-tty; exit 5"]));
    let text = out.stdout.replace(['\r', '\0'], "").replace("^@", "");
    assert_eq!(out.code, 5, "the process's exit code comes back through script: {out}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("/dev/pts/")), "{text:?}");
    assert!(lines.contains(&"in-tty"), "{text:?}");
}

/// Starts `sleep 1000` detached in the case's container (for `each_runtime`).
fn start_sleeper(c: &mut Case, rt: &str) {
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok(rt);
    c.start().expect_ok(rt);
}

/// A process JSON without `user` runs as 0:0 (runc decodes it into a zero-valued
/// struct), not as the container's user, and is not refused.
#[test]
fn exec_process_json_without_user_runs_as_root() {
    // Not crun: crun 1.28 (the forky guest's) runs it as the container's user (1000:1000).
    conformance::each_runtime_but(&["crun"], "exec_pjson_nouser", |c, rt| {
        c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        start_sleeper(c, rt);
        let p = c.dir.join("process.json");
        fs::write(&p, json!({"args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]}).to_string())
            .unwrap();
        let out = c.rt.exec(&["exec", "--process", p.to_str().unwrap(), &c.id]);
        out.expect_ok(rt);
        assert_eq!(out.stdout, "0\n0\n", "{rt}: {out}");
    });
}

/// As for the init: the exec'd process's stdio becomes its user's, /dev/null excepted.
#[test]
fn exec_stdio_is_handed_to_the_process_user() {
    // Not crun: crun 1.8 chowns the host's /dev/null too when it is the process's stdin.
    conformance::each_runtime_but(&["crun"], "exec_stdio_owner", |c, rt| {
        start_sleeper(c, rt);
        let script = "stat -L -c %u /proc/self/fd/1 /proc/self/fd/2; echo reopened >>/proc/self/fd/1";
        let out = c.rt.exec(&["exec", "--user", "1000:1000", &c.id, "sh", "-c", script]);
        out.expect_ok(rt);
        assert_eq!(out.stdout, "1000\n1000\nreopened\n", "{rt}: {out}");
        let null = fs::metadata("/dev/null").unwrap();
        assert_eq!((null.uid(), null.gid()), (0, 0), "{rt}: the host's /dev/null changed owner");
    });
}

/// runc's exec exits 255 when it cannot run the process, whatever the reason, so that a
/// caller can tell that from the process's own exit status (runc's exec.bats "exit codes").
#[test]
fn exec_setup_failures_exit_255() {
    // crun 1.8 exits 1 for all of these.
    conformance::each_runtime_but(&["crun"], "exec_255", |c, rt| {
        start_sleeper(c, rt);
        let pid_file = c.dir.join("no/such/dir/pid");
        let id = c.id.clone();
        for (what, args) in [
            ("a binary that is not there", vec!["exec", &id, "no-such-binary"]),
            ("a cwd that is not there", vec!["exec", "--cwd", "/no/such/dir", &id, "true"]),
            ("an unknown container", vec!["exec", "no-such-container", "true"]),
            ("a pid file in a missing directory", vec!["exec", "--pid-file", pid_file.to_str().unwrap(), &id, "true"]),
        ] {
            let out = c.rt.exec(&args);
            assert_eq!(out.code, 255, "{rt}: exec with {what}: {out}");
        }
        // The process's own status is still its own.
        assert_eq!(c.rt.exec(&["exec", &id, "sh", "-c", "exit 254"]).code, 254, "{rt}");
    });
}

/// In the foreground with a terminal the runtime itself copies the pty to its stdout:
/// runc clears ONLCR so "\n" stays "\n" (no "\r\n" in a captured output).
#[test]
fn foreground_exec_tty_keeps_newlines() {
    // runc clears ONLCR from a goroutine while the process already runs, so a quick
    // process's lines still come out as "\r\n" (a race in runc, not a choice); crun 1.8
    // leaves ONLCR set.
    conformance::each_runtime_but(&["runc", "crun"], "exec_fg_onlcr", |c, rt| {
        start_sleeper(c, rt);
        let out = under_script(&runtime_cmdline(c, &["exec", "-t", &c.id, "printf", "a\\nb\\n"]));
        out.expect_ok(rt);
        // script(1) echoes a NUL of its own as "^@" while the terminal is not yet raw.
        let text = out.stdout.replace("^@", "").replace('\0', "");
        assert!(text.contains("a\nb\n"), "{rt}: {:?}", out.stdout);
        assert!(!text.contains('\r'), "{rt}: {:?}", out.stdout);
    });
}

#[test]
fn exec_passes_arguments_and_env_that_are_not_utf8_through_as_bytes() {
    // Issue 16 item 5: arguments are bytes on Linux; berth once panicked on them (exit
    // 134). runc runs the process but turns each byte that is not UTF-8 into U+FFFD (its
    // init config travels as JSON): berth passes the bytes through, so the exact-bytes
    // check is berth's only.
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let c = running("exec_bytes");
    let out =
        c.rt.cmd()
            .arg("exec")
            .arg("--env")
            .arg(OsStr::from_bytes(b"X=\xfe"))
            .arg(&c.id)
            .args(["sh", "-c", r#"printf %s "$1" | od -An -tx1; printf %s "$X" | od -An -tx1"#, "sh"])
            .arg(OsStr::from_bytes(b"a\xffb"))
            .run();
    out.expect_ok("exec with arguments that are not UTF-8");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    if c.rt.bin.ends_with("runc") {
        assert_eq!(words.first(), Some(&"61"), "{out}");
        assert_eq!(words.get(4), Some(&"62"), "{out}");
    } else {
        assert_eq!(words, ["61", "ff", "62", "fe"], "{out}");
    }
}
