//! Behaviour that runc's own integration tests (tests/integration/*.bats, v1.1.15 and
//! v1.3) check and that scripts written for runc rely on: the phrases runc's errors carry
//! (berth's one-line errors name the field or id and also contain runc's words), profiles
//! and device rules runc accepts or refuses, and what `delete` removes. Each test runs
//! against berth, then runc and crun where they behave the same.

use conformance::leak::cgroup_dirs_containing;
use conformance::{each_runtime_but, Case};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// crun is left out of most tests here: they check runc's words and runc's choices, which
/// crun's messages do not carry (its seccomp agent error reads "open seccomp receiver"),
/// and they were never run against a crun that can start containers: crun 1.8 refuses
/// every container on hosts of this VM kind (see `oracle::cannot_run_here`).
const CRUN_NO_CGROUPS: &[&str] = &["crun"];

fn start_sleeper(c: &mut Case) {
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
}

fn host_is_unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

// env.bats (runc 1.3): a variable given twice appears once, with its last value, and an
// empty HOME is replaced by the user's home.
#[test]
fn env_variables_given_twice_appear_once_and_an_empty_home_is_the_users() {
    each_runtime_but(&["runc<1.3", "crun"], "rc_env_once", |c, rt| {
        c.config()["process"]["env"] = json!(["ONE=two", "ONE=", "PATH=/usr/bin:/bin", "HOME=/override", "HOME="]);
        c.bundle.set_args(&["env"]);
        let out = c.run();
        out.expect_ok("run env");
        let mut vars: Vec<&str> = out.stdout.lines().collect();
        vars.sort();
        assert_eq!(vars, ["HOME=/root", "ONE=", "PATH=/usr/bin:/bin"], "{rt}: {out}");
    });
}

// kill.bats "kill KILL [host pidns]" and "[host pidns + init gone]" (runc 1.2 on): SIGKILL
// to a container without a pid namespace of its own reaches every process of its cgroup,
// and still does once the init is gone.
#[test]
fn sigkill_without_a_pid_namespace_reaches_every_process_even_after_the_init() {
    use conformance::util::{pid_alive, poll_until};
    use std::time::Duration;
    for init_gone in [false, true] {
        each_runtime_but(&["runc<1.3", "crun"], "rc_kill_hostpid", |c, rt| {
            c.bundle.remove_namespace("pid");
            // The host's pid namespace: $! is the host's pid of each sleep.
            c.bundle.set_sh("for i in 1 2 3; do sleep 1000 & echo $!; done; exec sleep 1000");
            c.create().expect_ok("create");
            c.start().expect_ok("start");
            let pids: Vec<i32> = poll_until("the three sleeps", Duration::from_secs(10), || {
                let pids: Vec<i32> = c.output().lines().filter_map(|l| l.trim().parse().ok()).collect();
                (pids.len() == 3).then_some(pids)
            });
            if init_gone {
                let init = c.state()["pid"].as_i64().unwrap() as i32;
                conformance::util::kill_pid(init, libc::SIGKILL);
                c.wait_status(&c.id, "stopped");
            }
            c.rt.kill(&c.id, "KILL").expect_ok(&format!("{rt}: kill KILL, init gone: {init_gone}"));
            poll_until("every process of the container gone", Duration::from_secs(10), || {
                pids.iter().all(|p| !pid_alive(*p)).then_some(())
            });
            c.rt.delete(&c.id).expect_ok("delete");
        });
    }
}

// seccomp-notify.bats "(SCMP_ACT_NOTIFY no seccompagent)"
#[test]
fn unreachable_seccomp_agent_error_says_failed_to_connect_with_seccomp_agent() {
    // crun 1.8 words it differently ("open seccomp receiver: connect socket to ...").
    each_runtime_but(&["crun"], "rc_agent", |c, rt| {
        let sock = c.dir.join("no-agent.sock");
        c.config()["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        });
        let out = c.run_sh("true");
        out.expect_fail("run without a seccomp agent");
        assert!(out.stderr.contains("failed to connect with seccomp agent"), "{rt}: {out}");
        if rt == "berth" {
            assert!(out.stderr.contains("linux.seccomp.listenerPath"), "{out}");
        }
    });
}

// seccomp-notify.bats "(SCMP_ACT_NOTIFY write)"
#[test]
fn notify_on_the_write_syscall_is_refused_at_create() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_notify_write", |c, rt| {
        let sock = c.dir.join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind agent socket");
        c.config()["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}],
        });
        c.bundle.set_args(&["true"]);
        if rt == "berth" {
            let out = c.expect_create_fails(&["linux.seccomp.syscalls[0].names"]);
            assert!(out.stderr.contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"), "{out}");
        } else {
            let out = c.create();
            out.expect_fail("create with SCMP_ACT_NOTIFY on write");
            assert!(out.stderr.contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"), "{rt}: {out}");
        }
    });
}

// seccomp.bats "(startContainer hook)": runc reports a hook's death by a signal as Go does.
#[test]
fn hook_killed_by_a_signal_is_reported_with_runcs_words() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_hook_sig", |c, rt| {
        c.config()["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "kill -SYS $$"]}]});
        c.bundle.set_args(&["true"]);
        let out = c.create();
        out.expect_fail("create with a hook killed by SIGSYS");
        assert!(out.stderr.contains("bad system call"), "{rt}: {out}");
        // runc 1.1: "error running hook #0: error running hook: signal: bad system call";
        // 1.3: "error running createRuntime hook #0: signal: bad system call" (its
        // hooks.bats greps "error running createRuntime hook #1:"). berth's carries 1.3's
        // phrase, then the hook's path and 1.1's "error running hook".
        if rt == "berth" || conformance::oracle::is_runc_1_3(rt) {
            assert!(out.stderr.contains("error running createRuntime hook #0:"), "{rt}: {out}");
        }
        if rt == "berth" || (rt == "runc" && !conformance::oracle::is_runc_1_3(rt)) {
            assert!(out.stderr.contains("error running hook"), "{rt}: {out}");
        }
    });
}

// hooks.bats "startContainer hook should inherit process environment": a startContainer
// hook without `env` of its own runs with the container process's environment.
#[test]
fn start_container_hook_without_env_gets_the_process_environment() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_hook_env", |c, rt| {
        let script = c.bundle.rootfs.path.join("check-env.sh");
        fs::write(&script, "#!/bin/sh\n[ \"$ONE\" = two ] && [ \"$FOO\" = bar ] && [ -n \"$HOME\" ] || exit 3\n")
            .unwrap();
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        c.config()["process"]["env"] = json!(["ONE=two", "FOO=bar", "PATH=/usr/bin:/bin"]);
        c.config()["hooks"] = json!({"startContainer": [{"path": "/check-env.sh"}]});
        c.bundle.set_args(&["true"]);
        c.run().expect_ok(&format!("{rt}: run with a startContainer hook that checks its env"));
    });
}

/// `/run.sh` of runc's tests: executable, so the PATH lookup finds it, but its `#!` names an
/// interpreter that is not there, so the execve fails (ENOENT).
const SCRIPT_WITH_A_MISSING_INTERPRETER: &str = "#!/mmnnttbb foo bar\nsh\n";

// run.bats and exec.bats "[execve error]": the failed execve in Go's words, once.
#[test]
fn failed_execve_is_reported_in_runcs_words() {
    each_runtime_but(&["runc<1.3", "crun"], "rc_execve", |c, rt| {
        c.bundle.rootfs.write_script("/run.sh", SCRIPT_WITH_A_MISSING_INTERPRETER);
        c.bundle.set_args(&["/run.sh"]);
        let out = c.run();
        assert_eq!(out.code, 255, "{rt}: the process's exit code, as runc's init gives it: {out}");
        assert_eq!(out.stderr.matches("exec /run.sh: no such file or directory").count(), 1, "{rt}: {out}");
    });
}

// exec.bats "runc exec [execve error]": as for the init, a failed execve is the exec'd
// process's own under runc (1.1 and 1.3): it says why on its stderr and exits (1.3: 255),
// and `exec --detach` succeeds, as containerd's shim runs it.
#[test]
fn failed_execve_of_an_exec_is_the_processs_own() {
    each_runtime_but(&["runc<1.3", "crun"], "rc_exec_execve", |c, rt| {
        c.bundle.rootfs.write_script("/run.sh", SCRIPT_WITH_A_MISSING_INTERPRETER);
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok("create");
        c.start().expect_ok("start");
        let out = c.rt.exec(&["exec", &c.id, "/run.sh"]);
        assert_eq!(out.code, 255, "{rt}: the process's exit code: {out}");
        assert_eq!(out.stderr, "exec /run.sh: no such file or directory\n", "{rt}: {out}");
        let pid_file = c.dir.join("exec.pid");
        let pid_arg = pid_file.to_str().unwrap();
        let out = c.rt.exec(&["exec", "--detach", "--pid-file", pid_arg, &c.id, "/run.sh"]);
        out.expect_ok(&format!("{rt}: exec --detach"));
        assert!(fs::read_to_string(&pid_file).is_ok_and(|p| p.trim().parse::<u32>().is_ok()), "{rt}: the pid file");
        c.rt.delete_force(&c.id);
    });
}

// runc (1.1 and 1.3) reports a failed execve from the init, after the start: `start`
// succeeds, the reason goes to the container's stderr and the process exits (runc 1.3:
// 255, 1.1: 1), so a client sees a container that ran and exited, as with a
// wrong-architecture image under Docker.
#[test]
fn start_succeeds_and_the_container_reports_a_failed_execve_on_its_stderr() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_execve_start", |c, rt| {
        c.bundle.rootfs.write_script("/run.sh", SCRIPT_WITH_A_MISSING_INTERPRETER);
        c.bundle.set_args(&["/run.sh"]);
        c.write();
        let stderr = c.dir.join("ctr.err");
        let bundle = c.bundle.dir.to_str().unwrap();
        let create = c.rt.cmd().args(["create", "--bundle", bundle, &c.id]).stdio_to(&c.stdio).stderr_to(&stderr).run();
        create.expect_ok(&format!("{rt}: create (the script exists and is executable)"));
        let start = c.start();
        start.expect_ok(&format!("{rt}: start"));
        assert_eq!(start.stderr, "", "{rt}: start reports nothing of the container's failure: {start}");
        c.wait_status(&c.id, "stopped");
        let said = fs::read_to_string(&stderr).unwrap();
        assert_eq!(said, "exec /run.sh: no such file or directory\n", "{rt}: the container's stderr");
        c.rt.delete(&c.id).expect_ok("delete");
    });
}

// capabilities.bats "ambient caps not set in inheritable result in a warning".
#[test]
fn ambient_capability_not_inheritable_is_warned_about_in_runcs_words() {
    each_runtime_but(&["runc<1.3", "crun"], "rc_ambient", |c, rt| {
        c.config()["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
        c.config()["process"]["capabilities"]["ambient"] = json!(["CAP_KILL", "CAP_CHOWN"]);
        let out = c.run_sh("grep CapAmb /proc/self/status");
        out.expect_ok("run with CAP_CHOWN ambient but not inheritable");
        assert!(out.stderr.contains("can't raise ambient capability CAP_CHOWN: "), "{rt}: {out}");
        assert!(out.stdout.contains("CapAmb:\t0000000000000020"), "{rt}: only CAP_KILL is ambient: {out}");
    });
}

/// Accepts the runtime's connection on `listener` and receives the fd it sent, with the
/// message that came with it.
fn recv_fd(listener: &std::os::unix::net::UnixListener) -> (String, std::os::fd::OwnedFd) {
    use std::os::fd::AsFd;
    let (conn, _) = listener.accept().expect("accept the runtime's connection");
    let mut buf = [0u8; 64];
    let (len, fd) =
        berth_sys::fd::recv_with_fd(conn.as_fd(), &mut [std::io::IoSliceMut::new(&mut buf)]).expect("recvmsg");
    (String::from_utf8_lossy(&buf[..len]).into_owned(), fd.expect("an fd sent along"))
}

/// The pid a pidfd refers to, from its fdinfo.
fn pid_of_pidfd(fd: &std::os::fd::OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("fdinfo");
    info.lines().find_map(|l| l.strip_prefix("Pid:")).expect("a pidfd's fdinfo has Pid:").trim().to_string()
}

// pidfd-socket.bats: `--pidfd-socket` receives a pidfd of the init (create) and of an
// exec'd process, with runc's messages "standard" and "setns".
#[test]
fn pidfd_socket_receives_a_pidfd_of_the_init_and_of_an_exec_process() {
    each_runtime_but(&["runc<1.3", "crun"], "rc_pidfd", |c, rt| {
        let sock = c.dir.join("pidfd.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind the pidfd socket");
        let sock = sock.to_str().unwrap().to_string();
        c.bundle.set_args(&["sleep", "1000"]);
        c.create_with(&["--pidfd-socket", &sock]).expect_ok(&format!("{rt}: create --pidfd-socket"));
        let (name, pidfd) = recv_fd(&listener);
        assert_eq!(name, "standard", "{rt}");
        assert_eq!(pid_of_pidfd(&pidfd), c.state()["pid"].to_string(), "{rt}: the init's pidfd");
        c.start().expect_ok("start");
        let pid_file = c.dir.join("exec.pid");
        let out = c.rt.exec(&[
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--pidfd-socket",
            &sock,
            &c.id,
            "sleep",
            "1000",
        ]);
        out.expect_ok(&format!("{rt}: exec --pidfd-socket"));
        let (name, pidfd) = recv_fd(&listener);
        assert_eq!(name, "setns", "{rt}");
        assert_eq!(
            pid_of_pidfd(&pidfd),
            fs::read_to_string(&pid_file).unwrap().trim(),
            "{rt}: the exec'd process's pidfd"
        );
    });
}

// pidfd-socket.bats "runc create [ --pidfd-socket ]" kills a created container with
// SIGTERM: runc's created init handles it and exits, though it is its pid namespace's init.
#[test]
fn sigterm_stops_a_created_container() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_term_created", |c, rt| {
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(rt);
        for sig in ["TERM", "HUP"] {
            if sig == "HUP" {
                c.rt.delete(&c.id).expect_ok(&format!("{rt}: delete"));
                c.create().expect_ok(rt);
            }
            c.rt.kill(&c.id, sig).expect_ok(&format!("{rt}: kill {sig}"));
            c.wait_status(&c.id, "stopped");
        }
    });
}

// exec.bats "runc exec --cgroup sub-cgroups [v1]": the error phrases (glob patterns there).
#[test]
fn exec_cgroup_errors_carry_runcs_phrases() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_exec_cg", |c, rt| {
        start_sleeper(c);
        let exec = |sub: &str| c.rt.exec(&["exec", "--cgroup", sub, &c.id, "true"]);
        let out = exec("..");
        out.expect_fail("exec --cgroup ..");
        assert!(out.stderr.contains(" .. is not a sub cgroup path"), "{rt}: {out}");
        let out = exec("nonexistent");
        out.expect_fail("exec --cgroup nonexistent");
        let line = out.stderr.lines().find(|l| l.contains(" adding pid ")).unwrap_or_else(|| panic!("{rt}: {out}"));
        let rest = &line[line.find(" adding pid ").unwrap_or(0)..];
        assert!(rest.contains("/nonexistent/cgroup.procs: no such file "), "{rt}: {out}");
        if !host_is_unified() {
            let out = exec("whaaat:/");
            out.expect_fail("exec --cgroup whaaat:/");
            assert!(out.stderr.contains("unknown controller "), "{rt}: {out}");
        }
        if rt == "berth" {
            assert!(out.stderr.contains("--cgroup"), "the error names the option: {out}");
        }
    });
}

// cgroups.bats "runc run/create should refuse pre-existing frozen cgroup"
#[test]
fn pre_existing_frozen_cgroup_is_refused_with_runcs_phrase() {
    if host_is_unified() || !Path::new("/sys/fs/cgroup/freezer").is_dir() {
        panic!("needs a cgroup v1 freezer hierarchy (this project's CI host has one)");
    }
    each_runtime_but(CRUN_NO_CGROUPS, "rc_frozen", |c, rt| {
        let name = format!("{}-frz", c.id);
        let dir = PathBuf::from(format!("/sys/fs/cgroup/freezer/{name}"));
        fs::create_dir(&dir).expect("mkdir freezer cgroup");
        fs::write(dir.join("freezer.state"), "FROZEN").expect("freeze");
        let n = name.clone();
        c.on_cleanup(move || {
            let _ = fs::write(format!("/sys/fs/cgroup/freezer/{n}/freezer.state"), "THAWED");
            for d in cgroup_dirs_containing(&n) {
                let _ = fs::remove_dir(d);
            }
        });
        c.config()["linux"]["cgroupsPath"] = json!(format!("/{name}"));
        c.bundle.set_args(&["true"]);
        let out = c.create();
        out.expect_fail("create in a frozen cgroup");
        assert!(out.stderr.contains("container's cgroup unexpectedly frozen"), "{rt}: {out}");
        assert!(dir.is_dir(), "{rt}: the pre-existing frozen cgroup was removed");
    });
}

// update.bats "update devices [minimal transition rules]": "rwa" is accepted, the "a" ignored.
#[test]
fn device_rule_letters_other_than_rwm_are_ignored() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_dev_access", |c, rt| {
        // /dev/kmsg is not among the devices runtimes allow by default; opening it
        // write-only writes nothing and needs no CAP_SYSLOG.
        c.config()["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
        c.config()["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
        ]);
        let out = c.run_sh(": > /dev/kmsg && echo kmsg-w");
        out.expect_ok(&format!("{rt}: run with access \"rwa\""));
        assert!(out.stdout.contains("kmsg-w"), "{rt}: w of \"rwa\" granted: {out}");
    });
}

// checkpoint.bats "checkpoint --pre-dump (bad --parent-path)": --parent-path is checked
// first, and named.
#[test]
fn checkpoint_bad_parent_path_is_refused_naming_it() {
    each_runtime_but(CRUN_NO_CGROUPS, "rc_ckpt_parent", |c, rt| {
        start_sleeper(c);
        let image = c.dir.join("image");
        for parent in [c.dir.join("parent").display().to_string(), "./parent".to_string()] {
            // In the case's directory: runc leaves criu's log (runc-criu-log-*.log) in
            // its working directory.
            let out =
                c.rt.cmd()
                    .cwd(&c.dir)
                    .args([
                        "checkpoint",
                        "--pre-dump",
                        "--parent-path",
                        &parent,
                        "--image-path",
                        &image.display().to_string(),
                        &c.id,
                    ])
                    .run();
            out.expect_fail(&format!("checkpoint --parent-path {parent}"));
            assert!(out.stderr.contains("--parent-path"), "{rt} {parent}: {out}");
            assert_eq!(c.rt.status(&c.id).as_deref(), Some("running"), "{rt}: the container kept running");
        }
    });
}

// runc's delete removes the container's cgroup even when the directory existed before
// create (fs manager Destroy removes every path); berth does the same.
#[test]
fn delete_removes_a_pre_existing_empty_cgroup_directory() {
    if host_is_unified() {
        panic!("written for the v1 hierarchies of this project's CI host");
    }
    each_runtime_but(CRUN_NO_CGROUPS, "rc_del_pre", |c, rt| {
        let name = format!("{}-pre", c.id);
        let dirs: Vec<PathBuf> =
            ["memory", "pids"].iter().map(|h| PathBuf::from(format!("/sys/fs/cgroup/{h}/{name}"))).collect();
        for d in &dirs {
            fs::create_dir(d).expect("mkdir pre-existing cgroup");
        }
        let n = name.clone();
        c.on_cleanup(move || {
            for d in cgroup_dirs_containing(&n) {
                let _ = fs::remove_dir(d);
            }
        });
        c.config()["linux"]["cgroupsPath"] = json!(format!("/{name}"));
        start_sleeper(c);
        c.rt.delete_force(&c.id).expect_ok("delete --force");
        for d in &dirs {
            assert!(!d.exists(), "{rt}: {} left behind", d.display());
        }
    });
}
