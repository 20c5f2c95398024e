//! Docker used as a person would, with the runtime under test registered as
//! `--add-runtime berth=$BERTH` on a private dockerd (see conformance::docker).

use conformance::docker::{dockerd, IMAGE};
use conformance::leak::cgroup_dirs_containing;
use conformance::{poll_until, Out};
use std::fs;
use std::time::Duration;

fn ok(out: &Out) -> String {
    out.expect_ok("docker");
    out.stdout.clone()
}

#[test]
fn docker_run_output_and_exit_code() {
    let d = dockerd();
    let out = d.run(&[], &["sh", "-c", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(out.stdout, "hello\n");
    assert!(out.stderr.contains("oops"), "{out}");
    assert_eq!(ok(&d.run(&[], &["true"])), "");
}

#[test]
fn docker_run_env() {
    let d = dockerd();
    assert_eq!(ok(&d.run(&["-e", "FOO=bar baz"], &["sh", "-c", "echo $FOO"])), "bar baz\n");
}

#[test]
fn docker_run_workdir() {
    let d = dockerd();
    assert_eq!(ok(&d.run(&["-w", "/tmp/work"], &["pwd"])), "/tmp/work\n");
}

#[test]
fn docker_run_user() {
    let d = dockerd();
    assert_eq!(ok(&d.run(&["-u", "1000:1000"], &["sh", "-c", "id -u; id -g"])), "1000\n1000\n");
    assert_eq!(ok(&d.run(&["-u", "user"], &["id", "-u"])), "1000\n");
}

#[test]
fn docker_run_hostname() {
    let d = dockerd();
    assert_eq!(ok(&d.run(&["--hostname", "boxy"], &["hostname"])), "boxy\n");
}

#[test]
fn docker_run_read_only() {
    let d = dockerd();
    let out = ok(&d.run(&["--read-only"], &["sh", "-c", "touch /x 2>&1 || echo RO"]));
    assert!(out.contains("Read-only") && out.contains("RO"), "{out}");
}

#[test]
fn docker_run_cap_drop() {
    let d = dockerd();
    let out = ok(&d.run(&["--cap-drop", "ALL"], &["grep", "CapEff", "/proc/self/status"]));
    assert_eq!(out.trim(), "CapEff:\t0000000000000000");
    let out = ok(&d.run(&["--cap-drop", "NET_RAW"], &["grep", "CapEff", "/proc/self/status"]));
    let eff = u64::from_str_radix(out.trim().rsplit('\t').next().unwrap(), 16).unwrap();
    assert_eq!(eff & (1 << 13), 0, "CAP_NET_RAW still effective: {out}");
    assert_ne!(eff & 1, 0, "CAP_CHOWN (Docker default) missing: {out}");
}

#[test]
fn docker_run_tmpfs() {
    let d = dockerd();
    let out = ok(&d.run(&["--tmpfs", "/scratch:size=1m"], &["sh", "-c", "grep ' /scratch ' /proc/mounts; echo x > /scratch/f && cat /scratch/f"]));
    assert!(out.starts_with("tmpfs /scratch tmpfs"), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
    assert!(out.ends_with("x\n"));
}

#[test]
fn docker_run_bind_volume() {
    let d = dockerd();
    let vol = d.dir.join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("in"), "from-host\n").unwrap();
    let spec = format!("{}:/data", vol.display());
    let out = ok(&d.run(&["-v", &spec], &["sh", "-c", "cat /data/in; echo from-ctr > /data/out"]));
    assert_eq!(out, "from-host\n");
    assert_eq!(fs::read_to_string(vol.join("out")).unwrap(), "from-ctr\n");
    let ro = format!("{}:/data:ro", vol.display());
    let out = ok(&d.run(&["-v", &ro], &["sh", "-c", "touch /data/x 2>&1 || echo RO"]));
    assert!(out.contains("RO"), "{out}");
}

fn inspect(id: &str, fmt: &str) -> String {
    dockerd().docker(&["inspect", "--format", fmt, id]).stdout.trim().to_string()
}

#[test]
fn docker_stop_delivers_sigterm_then_container_is_removed() {
    let d = dockerd();
    let out = d.docker(&["run", "-d", "--runtime", "berth", "--security-opt", "seccomp=unconfined", "--network", "none", IMAGE,
        "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"]);
    let id = ok(&out).trim().to_string();
    poll_until("container ready", Duration::from_secs(30), || d.docker(&["logs", &id]).stdout.contains("ready").then_some(()));
    d.docker(&["stop", "-t", "30", &id]).expect_ok("docker stop");
    assert_eq!(inspect(&id, "{{.State.ExitCode}}"), "42", "SIGTERM trap did not run");
    d.docker(&["rm", &id]).expect_ok("docker rm");
    assert!(cgroup_dirs_containing(&id).is_empty(), "cgroup of {id} left behind");
}

#[test]
fn docker_kill_sends_sigkill_and_custom_signals() {
    let d = dockerd();
    let out = d.docker(&["run", "-d", "--runtime", "berth", "--security-opt", "seccomp=unconfined", "--network", "none", IMAGE,
        "sh", "-c", "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done"]);
    let id = ok(&out).trim().to_string();
    poll_until("container ready", Duration::from_secs(30), || d.docker(&["logs", &id]).stdout.contains("ready").then_some(()));
    d.docker(&["kill", "-s", "USR1", &id]).expect_ok("docker kill -s USR1");
    poll_until("USR1 handled", Duration::from_secs(30), || d.docker(&["logs", &id]).stdout.contains("got-usr1").then_some(()));
    d.docker(&["kill", &id]).expect_ok("docker kill");
    poll_until("container exited", Duration::from_secs(30), || (inspect(&id, "{{.State.Running}}") == "false").then_some(()));
    assert_eq!(inspect(&id, "{{.State.ExitCode}}"), "137");
    d.docker(&["rm", &id]).expect_ok("docker rm");
    assert!(cgroup_dirs_containing(&id).is_empty(), "cgroup of {id} left behind");
}

#[test]
fn docker_passes_runc_flags_the_runtime_must_accept() {
    let d = dockerd();
    ok(&d.run(&[], &["true"]));
    let argv = d.runtime_argv();
    eprintln!("runtime command lines recorded from containerd-shim-runc-v2:\n{argv}");
    for needle in ["--root", "--log", "--log-format json", "create", "--bundle", "--pid-file", "start", "delete"] {
        assert!(argv.contains(needle), "shim never passed {needle:?}:\n{argv}");
    }
}

#[test]
fn docker_run_tty_uses_console_socket() {
    let d = dockerd();
    let out = ok(&d.run(&["-t"], &["sh", "-c", "tty; stty size >/dev/null && echo sized"]));
    let out = out.replace('\r', "");
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert!(out.contains("sized"), "{out:?}");
    assert!(d.runtime_argv().contains("--console-socket"), "shim did not pass --console-socket for -t");
}

/// A detached `sleep` container for exec tests; removed by the caller.
fn sleeper(d: &conformance::docker::Dockerd) -> String {
    let out = d.docker(&["run", "-d", "--runtime", "berth", "--security-opt", "seccomp=unconfined", "--network", "none", IMAGE, "sleep", "1000"]);
    ok(&out).trim().to_string()
}

#[test]
fn docker_exec_output_exit_code_user_workdir_env() {
    let d = dockerd();
    let id = sleeper(d);
    let out = d.docker(&["exec", &id, "sh", "-c", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!((out.code, out.stdout.as_str()), (3, "hello\n"), "{out}");
    assert!(out.stderr.contains("oops"), "{out}");
    assert_eq!(ok(&d.docker(&["exec", "-u", "1000:1000", &id, "sh", "-c", "id -u; id -g"])), "1000\n1000\n");
    assert_eq!(ok(&d.docker(&["exec", "-u", "user", &id, "id", "-u"])), "1000\n");
    assert_eq!(ok(&d.docker(&["exec", "-w", "/tmp", &id, "pwd"])), "/tmp\n");
    assert_eq!(ok(&d.docker(&["exec", "-e", "FOO=bar baz", &id, "sh", "-c", "echo $FOO"])), "bar baz\n");
    // The init is pid 1 of the same pid namespace.
    assert_eq!(ok(&d.docker(&["exec", &id, "cat", "/proc/1/comm"])), "sleep\n");
    let missing = d.docker(&["exec", &id, "/no/such/binary"]);
    // The CLI turns any exec start failure into 126 and prints the runtime's error.
    assert_eq!(missing.code, 126, "{missing}");
    assert!(missing.stdout.contains("no such file or directory") || missing.stderr.contains("no such file or directory"), "{missing}");
    let argv = d.runtime_argv();
    assert!(argv.contains("exec --process"), "the shim drove `exec --process`:\n{argv}");
    d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
    assert!(cgroup_dirs_containing(&id).is_empty(), "cgroup of {id} left behind");
}

#[test]
fn docker_exec_it_through_a_pty() {
    let d = dockerd();
    let id = sleeper(d);
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let cmd = d
        .docker_argv(&["exec", "-it", &id, "sh", "-c", "tty; echo done"])
        .iter()
        .map(|a| quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    // script(1) gives docker a pty of its own, as a person's terminal would.
    let out = conformance::runtime::Invocation::new(std::path::Path::new("script"))
        .args(["-qec", &cmd, "/dev/null"])
        .timeout(Duration::from_secs(120))
        .run();
    let text = out.stdout.replace(['\r', '\0'], "").replace("^@", "");
    assert!(out.ok(), "{out}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("/dev/pts/")), "{text:?}");
    assert!(lines.iter().any(|l| *l == "done"), "{text:?}");
    assert!(d.runtime_argv().lines().any(|l| l.contains("exec") && l.contains("--console-socket")), "exec -t used a console socket");
    d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
}
