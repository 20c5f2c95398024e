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
    let out = ok(&d.run(
        &["--tmpfs", "/scratch:size=1m"],
        &["sh", "-c", "grep ' /scratch ' /proc/mounts; echo x > /scratch/f && cat /scratch/f"],
    ));
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

#[test]
fn docker_default_seccomp_profile_is_applied() {
    let d = dockerd();
    let out = ok(&d.run(&[], &["grep", "^Seccomp:", "/proc/self/status"]));
    assert_eq!(out, "Seccomp:\t2\n", "Docker's default profile is not in force");
    // Everyday commands still work under it.
    let out =
        ok(&d.run(&[], &["sh", "-c", "mkdir /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f && ls /tmp/d && id -u"]));
    assert_eq!(out, "hi\nf\n0\n");
}

#[test]
fn docker_default_seccomp_profile_blocks_unshare_and_mount() {
    let d = dockerd();
    let out = d.run(&[], &["unshare", "-U", "true"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
    // busybox mount reports EPERM as "permission denied (are you root?)".
    let out = d.run(&[], &["sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.to_lowercase().contains("permission denied"), "{out}");
}

#[test]
fn docker_exec_gets_the_default_seccomp_profile() {
    let d = dockerd();
    let id = sleeper(d);
    let out = ok(&d.docker(&["exec", &id, "grep", "^Seccomp:", "/proc/self/status"]));
    assert_eq!(out, "Seccomp:\t2\n");
    let out = d.docker(&["exec", &id, "unshare", "-U", "true"]);
    assert!(out.code != 0 && out.stderr.contains("Operation not permitted"), "{out}");
    d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
    assert!(cgroup_dirs_containing(&id).is_empty(), "cgroup of {id} left behind");
}

#[test]
fn docker_seccomp_unconfined_runs_without_a_filter() {
    let d = dockerd();
    let out = ok(&d.run(&["--security-opt", "seccomp=unconfined"], &["grep", "^Seccomp:", "/proc/self/status"]));
    assert_eq!(out, "Seccomp:\t0\n");
}

fn inspect(id: &str, fmt: &str) -> String {
    dockerd().docker(&["inspect", "--format", fmt, id]).stdout.trim().to_string()
}

#[test]
fn docker_stop_delivers_sigterm_then_container_is_removed() {
    let d = dockerd();
    let out = d.docker(&[
        "run",
        "-d",
        "--runtime",
        "berth",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let id = ok(&out).trim().to_string();
    poll_until("container ready", Duration::from_secs(30), || {
        d.docker(&["logs", &id]).stdout.contains("ready").then_some(())
    });
    d.docker(&["stop", "-t", "30", &id]).expect_ok("docker stop");
    assert_eq!(inspect(&id, "{{.State.ExitCode}}"), "42", "SIGTERM trap did not run");
    d.docker(&["rm", &id]).expect_ok("docker rm");
    assert!(cgroup_dirs_containing(&id).is_empty(), "cgroup of {id} left behind");
}

#[test]
fn docker_kill_sends_sigkill_and_custom_signals() {
    let d = dockerd();
    let out = d.docker(&[
        "run",
        "-d",
        "--runtime",
        "berth",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done",
    ]);
    let id = ok(&out).trim().to_string();
    poll_until("container ready", Duration::from_secs(30), || {
        d.docker(&["logs", &id]).stdout.contains("ready").then_some(())
    });
    d.docker(&["kill", "-s", "USR1", &id]).expect_ok("docker kill -s USR1");
    poll_until("USR1 handled", Duration::from_secs(30), || {
        d.docker(&["logs", &id]).stdout.contains("got-usr1").then_some(())
    });
    d.docker(&["kill", &id]).expect_ok("docker kill");
    poll_until("container exited", Duration::from_secs(30), || {
        (inspect(&id, "{{.State.Running}}") == "false").then_some(())
    });
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
    let out = d.docker(&["run", "-d", "--runtime", "berth", "--network", "none", IMAGE, "sleep", "1000"]);
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
    assert!(
        missing.stdout.contains("no such file or directory") || missing.stderr.contains("no such file or directory"),
        "{missing}"
    );
    let argv = d.runtime_argv();
    assert!(argv.contains("exec --process"), "the shim drove `exec --process`:\n{argv}");
    d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
    assert!(cgroup_dirs_containing(&id).is_empty(), "cgroup of {id} left behind");
}

fn run_detached(d: &conformance::docker::Dockerd, opts: &[&str], cmd: &[&str]) -> String {
    let mut a = vec!["run", "-d", "--runtime", "berth", "--network", "none"];
    a.extend_from_slice(opts);
    a.push(IMAGE);
    a.extend_from_slice(cmd);
    ok(&d.docker(&a)).trim().to_string()
}

/// The v1 cgroup directory of a Docker container for `controller`.
fn docker_cgroup_file(id: &str, controller: &str, file: &str) -> String {
    let dir = cgroup_dirs_containing(id)
        .into_iter()
        .find(|d| d.starts_with(format!("/sys/fs/cgroup/{controller}/")))
        .unwrap_or_else(|| panic!("no {controller} cgroup for {id}"));
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display())).trim().to_string()
}

/// docker top / pause / unpause / update / stats go through `berth ps`, `pause`, `resume`
/// and `update --resources -`, or read the cgroup berth made.
#[test]
fn docker_top_pause_update_and_stats() {
    let d = dockerd();
    let id =
        run_detached(d, &["--memory", "64m"], &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done"]);
    let lines = || d.docker(&["logs", &id]).stdout.lines().count();
    poll_until("the loop to print", Duration::from_secs(30), || (lines() > 2).then_some(()));

    let top = ok(&d.docker(&["top", &id]));
    assert!(top.lines().next().is_some_and(|h| h.contains("PID")), "{top}");
    assert!(top.contains("sleep") || top.contains("while"), "{top}");

    d.docker(&["pause", &id]).expect_ok("docker pause");
    assert_eq!(inspect(&id, "{{.State.Status}}"), "paused");
    let at_pause = lines();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(lines(), at_pause, "the container printed while paused");
    d.docker(&["unpause", &id]).expect_ok("docker unpause");
    assert_eq!(inspect(&id, "{{.State.Status}}"), "running");
    poll_until("the loop to print again", Duration::from_secs(30), || (lines() > at_pause).then_some(()));

    d.docker(&[
        "update",
        "--memory",
        "100m",
        "--memory-swap",
        "200m",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        &id,
    ])
    .expect_ok("docker update");
    assert_eq!(docker_cgroup_file(&id, "memory", "memory.limit_in_bytes"), (100u64 << 20).to_string());
    assert_eq!(docker_cgroup_file(&id, "pids", "pids.max"), "50");
    assert_eq!(docker_cgroup_file(&id, "cpu", "cpu.shares"), "512");
    let argv = d.runtime_argv();
    assert!(argv.lines().any(|l| l.contains("update") && l.contains("--resources")), "{argv}");

    let stats = ok(&d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]));
    assert!(stats.contains("/ 100MiB"), "docker stats: {stats}");

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
    assert!(lines.contains(&"done"), "{text:?}");
    assert!(
        d.runtime_argv().lines().any(|l| l.contains("exec") && l.contains("--console-socket")),
        "exec -t used a console socket"
    );
    d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
}

#[test]
fn docker_memory_limit_oom_kills_with_137() {
    let d = dockerd();
    let out = d.run(&["--memory", "16m", "--memory-swap", "16m"], &["tail", "/dev/zero"]);
    assert_eq!(out.code, 137, "{out}");
}

#[test]
fn docker_cpus_and_pids_limit_reach_the_cgroup() {
    let d = dockerd();
    // busybox sh gives up (exit 2, "can't fork") once the pids limit stops a fork.
    let out = d.run(
        &["--cpus", "0.5", "--pids-limit", "6"],
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max
            n=0; while [ $n -lt 10 ]; do sleep 5 & n=$((n+1)); done; echo all-forked",
        ],
    );
    let l: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(l, ["50000", "100000", "6"], "{out}");
    assert!(out.stderr.contains("can't fork"), "forks beyond the limit succeeded: {out}");
    assert_eq!(out.code, 2, "{out}");
}

// ---- Every `docker run` option a user reaches for, each checked on berth and on runc
// (dockerd's default runtime) with the same assertions, so a difference is berth's.

const RUNTIMES: [&str; 2] = ["berth", "runc"];

/// `docker run --rm` on `rt`, asserting success; returns stdout.
fn run_ok(rt: &str, opts: &[&str], cmd: &[&str]) -> String {
    let out = dockerd().run_on(rt, opts, cmd);
    assert!(out.ok(), "[{rt}] docker run {opts:?} {cmd:?}: {out}");
    out.stdout
}

fn effective_caps(status_line: &str) -> u64 {
    u64::from_str_radix(status_line.trim().rsplit('\t').next().unwrap_or(""), 16)
        .unwrap_or_else(|_| panic!("bad CapEff line {status_line:?}"))
}

fn host_status_line(key: &str) -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap_or_default().to_string()
}

fn host_cap_last() -> u64 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap()
}

#[test]
fn docker_logs_json_file_keeps_stdout_and_stderr() {
    let d = dockerd();
    for rt in RUNTIMES {
        let id = d.run_detached_on(rt, &["--log-driver", "json-file"], &["sh", "-c", "echo to-out; echo to-err >&2"]);
        assert_eq!(ok(&d.docker(&["wait", &id])).trim(), "0", "[{rt}]");
        let logs = d.docker(&["logs", &id]);
        assert_eq!((logs.stdout.as_str(), logs.stderr.as_str()), ("to-out\n", "to-err\n"), "[{rt}] {logs}");
        let file = inspect(&id, "{{.LogPath}}");
        let json = fs::read_to_string(&file).unwrap_or_else(|e| panic!("[{rt}] {file}: {e}"));
        assert!(json.contains(r#""log":"to-out\n","stream":"stdout""#), "[{rt}] {json}");
        assert!(json.contains(r#""log":"to-err\n","stream":"stderr""#), "[{rt}] {json}");
        d.docker(&["rm", &id]).expect_ok("docker rm");
    }
}

// An entrypoint the kernel will not exec (a binary for another architecture, a script with
// a CRLF after its interpreter) is the container's own failure under runc: the container
// starts, its process says why on stderr and exits (255 from runc 1.2 on, 1 before), so
// `docker run` prints the reason and exits with that code, `docker logs` keeps the line
// and restart policies apply. A failed start would instead be Docker's error 125 (127 when
// the error says "no such file or directory", as for a missing interpreter). The
// same for `docker exec` of such a file: the exec'd process says why and exits.
#[test]
fn docker_entrypoint_the_kernel_cannot_exec_runs_and_exits_with_the_reason() {
    let d = dockerd();
    let bad = d.dir.join("not-for-this-arch");
    conformance::util::write_binary_for_no_machine(&bad);
    let vol = format!("{}:/entry:ro", bad.display());
    let mut codes = Vec::new();
    for rt in RUNTIMES {
        let out = d.run_on(rt, &["-v", &vol], &["/entry"]);
        assert_eq!(out.stderr.matches("exec /entry: exec format error").count(), 1, "[{rt}] {out}");
        assert!(!out.stderr.contains("Error response from daemon"), "[{rt}] the container did not start: {out}");
        codes.push(out.code);

        let id = d.run_detached_on(rt, &["-v", &vol], &["/entry"]);
        assert_eq!(ok(&d.docker(&["wait", &id])).trim(), out.code.to_string(), "[{rt}]");
        let logs = d.docker(&["logs", &id]);
        assert_eq!(logs.stderr, "exec /entry: exec format error\n", "[{rt}] {logs}");
        d.docker(&["rm", &id]).expect_ok("docker rm");

        let id = d.run_detached_on(rt, &["-v", &vol], &["sleep", "1000"]);
        let exec = d.docker(&["exec", &id, "/entry"]);
        assert_eq!(exec.code, out.code, "[{rt}] docker exec: {exec}");
        assert_eq!(exec.stderr, "exec /entry: exec format error\n", "[{rt}] docker exec: {exec}");
        d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
    }
    // runc 1.1 (dockerd's here) exits 1, runc 1.2 and later 255, as berth.
    assert_eq!(codes[0], 255, "berth: {codes:?}");
    assert!(codes[1] == 1 || codes[1] == 255, "runc: {codes:?}");
}

/// Runs `docker <args>` under script(1), so the CLI has a terminal as a person's would;
/// `input` is typed into that terminal.
fn docker_in_pty(args: &[&str], input: &[u8]) -> Out {
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let cmd = dockerd().docker_argv(args).iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
    conformance::runtime::Invocation::new(std::path::Path::new("script"))
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(input)
        .timeout(Duration::from_secs(120))
        .run()
}

fn pty_text(out: &Out) -> String {
    out.stdout.replace(['\r', '\0'], "").replace("^@", "")
}

#[test]
fn docker_run_it_and_attach_through_a_pty() {
    let d = dockerd();
    for rt in RUNTIMES {
        let args = conformance::docker::Dockerd::run_args(
            &["run", "--rm", "-it"],
            rt,
            &[],
            &["sh", "-c", "tty; read line; echo got-$line; exit 4"],
        );
        let out = docker_in_pty(&args, b"typed\n");
        let text = pty_text(&out);
        assert_eq!(out.code, 4, "[{rt}] {out}");
        assert!(text.lines().any(|l| l.starts_with("/dev/pts/")), "[{rt}] {text:?}");
        assert!(text.contains("got-typed"), "[{rt}] {text:?}");

        // attach to a detached -it container: what is typed reaches it, its output comes back.
        let id = d.run_detached_on(rt, &["-it"], &["sh", "-c", "read line; echo attached-$line; exit 5"]);
        let out = docker_in_pty(&["attach", &id], b"hello\n");
        assert!(pty_text(&out).contains("attached-hello"), "[{rt}] {out}");
        assert_eq!(ok(&d.docker(&["wait", &id])).trim(), "5", "[{rt}]");
        d.docker(&["rm", &id]).expect_ok("docker rm");
    }
}

#[test]
fn docker_cap_add_privileged_and_no_new_privileges() {
    let all = (1u64 << (host_cap_last() + 1)) - 1;
    for rt in RUNTIMES {
        // Without NET_ADMIN, changing a link is refused; with it, it works.
        let denied = dockerd().run_on(rt, &[], &["ip", "link", "set", "lo", "mtu", "1400"]);
        assert_ne!(denied.code, 0, "[{rt}] changed a link without NET_ADMIN: {denied}");
        let out = run_ok(
            rt,
            &["--cap-add", "NET_ADMIN"],
            &["sh", "-c", "ip link set lo mtu 1400 && cat /sys/class/net/lo/mtu"],
        );
        assert_eq!(out, "1400\n", "[{rt}]");
        let out = run_ok(rt, &["--cap-drop", "ALL", "--cap-add", "CHOWN"], &["grep", "CapEff", "/proc/self/status"]);
        assert_eq!(effective_caps(&out), 1, "[{rt}] {out}");

        // --privileged: every capability, the host's devices, /sys writable. Docker asks for
        // every capability the kernel knows; where the runtime itself lacks one (this VM's
        // root has no CAP_SYS_RESOURCE), capset must fail for runc and berth alike.
        let priv_cmd = ["sh", "-c", "grep CapEff /proc/self/status; ls /dev/kmsg /dev/mem; grep ' /sys ' /proc/mounts"];
        if effective_caps(&host_status_line("CapBnd")) == all {
            let out = run_ok(rt, &["--privileged"], &priv_cmd);
            let mut l = out.lines();
            assert_eq!(effective_caps(l.next().unwrap()), all, "[{rt}] {out}");
            assert!(out.contains("/dev/kmsg") && out.contains("/dev/mem"), "[{rt}] {out}");
            assert!(out.lines().any(|l| l.starts_with("sysfs /sys sysfs rw")), "[{rt}] {out}");
        } else {
            let out = dockerd().run_on(rt, &["--privileged"], &priv_cmd);
            assert_eq!(out.code, 125, "[{rt}] {out}");
            assert!(out.stderr.contains("caps") || out.stderr.contains("capset"), "[{rt}] {out}");
        }
        let out = run_ok(rt, &[], &["sh", "-c", "ls /dev/mem 2>/dev/null; grep ' /sys ' /proc/mounts"]);
        assert!(out.starts_with("sysfs /sys sysfs ro"), "[{rt}] unprivileged: {out}");

        let out = run_ok(rt, &["--security-opt", "no-new-privileges"], &["grep", "NoNewPrivs", "/proc/self/status"]);
        assert_eq!(out, "NoNewPrivs:\t1\n", "[{rt}]");
        let out = run_ok(rt, &[], &["grep", "NoNewPrivs", "/proc/self/status"]);
        assert_eq!(out, "NoNewPrivs:\t0\n", "[{rt}]");
    }
}

#[test]
fn docker_init_runs_docker_init_as_pid_1() {
    for rt in RUNTIMES {
        let out = run_ok(rt, &["--init"], &["sh", "-c", "cat /proc/1/comm; cat /proc/$$/stat | cut -d' ' -f4"]);
        assert_eq!(out, "docker-init\n1\n", "[{rt}] the command is not the child of docker-init");
        // tini forwards the exit status.
        assert_eq!(dockerd().run_on(rt, &["--init"], &["sh", "-c", "exit 9"]).code, 9, "[{rt}]");
    }
}

#[test]
fn docker_restart_policies() {
    let d = dockerd();
    for rt in RUNTIMES {
        let id = d.run_detached_on(rt, &["--restart", "on-failure:2"], &["sh", "-c", "echo run; exit 3"]);
        poll_until("two restarts then stop", Duration::from_secs(60), || {
            (inspect(&id, "{{.RestartCount}} {{.State.Status}}") == "2 exited").then_some(())
        });
        assert_eq!(inspect(&id, "{{.State.ExitCode}}"), "3", "[{rt}]");
        assert_eq!(d.docker(&["logs", &id]).stdout, "run\nrun\nrun\n", "[{rt}]");
        d.docker(&["rm", &id]).expect_ok("docker rm");

        // always: an exiting command comes back; docker stop ends it for good.
        let id = d.run_detached_on(rt, &["--restart", "always"], &["sh", "-c", "sleep 0.3; exit 1"]);
        poll_until("a restart", Duration::from_secs(60), || (inspect(&id, "{{.RestartCount}}") != "0").then_some(()));
        d.docker(&["stop", "-t", "1", &id]).expect_ok("docker stop");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(inspect(&id, "{{.State.Running}}"), "false", "[{rt}] restarted after docker stop");
        d.docker(&["rm", &id]).expect_ok("docker rm");
        assert!(cgroup_dirs_containing(&id).is_empty(), "[{rt}] cgroup of {id} left behind");
    }
}

#[test]
fn docker_wait_rm_force_and_run_rm() {
    let d = dockerd();
    for rt in RUNTIMES {
        for code in ["0", "7", "255"] {
            let id = d.run_detached_on(rt, &[], &["sh", "-c", &format!("exit {code}")]);
            assert_eq!(ok(&d.docker(&["wait", &id])).trim(), code, "[{rt}]");
            d.docker(&["rm", &id]).expect_ok("docker rm");
        }
        let id = d.run_detached_on(rt, &[], &["sleep", "1000"]);
        d.docker(&["kill", &id]).expect_ok("docker kill");
        assert_eq!(ok(&d.docker(&["wait", &id])).trim(), "137", "[{rt}] killed by SIGKILL");
        d.docker(&["rm", &id]).expect_ok("docker rm");

        let running = d.run_detached_on(rt, &[], &["sleep", "1000"]);
        let paused = d.run_detached_on(rt, &[], &["sleep", "1000"]);
        d.docker(&["pause", &paused]).expect_ok("docker pause");
        for id in [&running, &paused] {
            d.docker(&["rm", "-f", id]).expect_ok("docker rm -f");
            assert_ne!(d.docker(&["inspect", id]).code, 0, "[{rt}] {id} still known");
            assert!(cgroup_dirs_containing(id).is_empty(), "[{rt}] cgroup of {id} left behind");
            assert!(
                conformance::leak::processes_mentioning(&[id.as_str()]).is_empty(),
                "[{rt}] processes of {id} left behind"
            );
        }

        let name = format!("rm-{rt}-{}", std::process::id());
        assert_eq!(run_ok(rt, &["--name", &name], &["echo", "x"]), "x\n");
        assert_ne!(d.docker(&["inspect", &name]).code, 0, "[{rt}] --rm left {name}");
    }
}

#[test]
fn docker_user_group_add_ulimit_shm_size() {
    for rt in RUNTIMES {
        assert_eq!(
            run_ok(rt, &["--user", "1000:1000", "--group-add", "5", "--group-add", "65534"], &["id", "-G"]),
            "1000 5 65534\n",
            "[{rt}]"
        );
        // Lowering is what root without CAP_SYS_RESOURCE on this host can do.
        let out = run_ok(rt, &["--ulimit", "nofile=100:200"], &["sh", "-c", "ulimit -n; ulimit -Hn"]);
        assert_eq!(out, "100\n200\n", "[{rt}]");
        let out = run_ok(rt, &["--shm-size", "32m"], &["grep", " /dev/shm ", "/proc/mounts"]);
        assert!(out.contains("size=32768k"), "[{rt}] {out}");
        let out = run_ok(rt, &["--tmpfs", "/run/t:rw,noexec,size=64k"], &["grep", " /run/t ", "/proc/mounts"]);
        assert!(out.contains("noexec") && out.contains("size=64k"), "[{rt}] {out}");
    }
}

#[test]
fn docker_named_volume_survives_containers() {
    let d = dockerd();
    for rt in RUNTIMES {
        let vol = format!("vol-{rt}-{}", std::process::id());
        let spec = format!("{vol}:/data");
        run_ok(rt, &["-v", &spec], &["sh", "-c", "echo kept > /data/f"]);
        assert_eq!(run_ok(rt, &["-v", &spec], &["cat", "/data/f"]), "kept\n", "[{rt}]");
        d.docker(&["volume", "rm", &vol]).expect_ok("docker volume rm");
    }
}

#[test]
fn docker_namespaces_network_none_and_host_sharing() {
    let host_ns = |ns: &str| fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().to_string_lossy().into_owned();
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for rt in RUNTIMES {
        let out = run_ok(rt, &[], &["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);
        assert_eq!(out, "lo\n", "[{rt}] --network none has only lo");
        let out = run_ok(rt, &["--pid", "host"], &["cat", "/proc/1/comm"]);
        assert_eq!(out, fs::read_to_string("/proc/1/comm").unwrap(), "[{rt}] --pid host");
        assert_eq!(run_ok(rt, &["--ipc", "host"], &["readlink", "/proc/self/ns/ipc"]).trim(), host_ns("ipc"), "[{rt}]");
        assert_ne!(run_ok(rt, &[], &["readlink", "/proc/self/ns/ipc"]).trim(), host_ns("ipc"), "[{rt}]");
        assert_eq!(run_ok(rt, &["--uts", "host"], &["hostname"]), host_name, "[{rt}] --uts host");
        let out = run_ok(rt, &["--sysctl", "net.ipv4.ip_forward=1"], &["cat", "/proc/sys/net/ipv4/ip_forward"]);
        assert_eq!(out, "1\n", "[{rt}]");
    }
}

#[test]
fn docker_device_and_cgroup_options() {
    let d = dockerd();
    for rt in RUNTIMES {
        let out = run_ok(
            rt,
            &["--device", "/dev/null:/dev/xnull"],
            &["sh", "-c", "stat -c '%t:%T' /dev/xnull; echo x > /dev/xnull && echo wrote"],
        );
        assert_eq!(out, "1:3\nwrote\n", "[{rt}]");

        let id = d.run_detached_on(
            rt,
            &[
                "--memory",
                "64m",
                "--memory-swap",
                "128m",
                "--oom-kill-disable",
                "--cpuset-cpus",
                "0",
                "--cpu-shares",
                "256",
            ],
            &["sleep", "1000"],
        );
        assert_eq!(docker_cgroup_file(&id, "memory", "memory.limit_in_bytes"), (64u64 << 20).to_string(), "[{rt}]");
        if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                docker_cgroup_file(&id, "memory", "memory.memsw.limit_in_bytes"),
                (128u64 << 20).to_string(),
                "[{rt}]"
            );
        }
        assert!(docker_cgroup_file(&id, "memory", "memory.oom_control").contains("oom_kill_disable 1"), "[{rt}]");
        assert_eq!(docker_cgroup_file(&id, "cpuset", "cpuset.cpus"), "0", "[{rt}]");
        assert_eq!(docker_cgroup_file(&id, "cpu", "cpu.shares"), "256", "[{rt}]");
        d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");

        // Without a blkio weight file (no CFQ/BFQ scheduler) dockerd drops the weight with a
        // warning before any runtime sees it.
        let out = d.run_on(rt, &["--blkio-weight", "300"], &["cat", "/sys/fs/cgroup/blkio/blkio.weight"]);
        if std::path::Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists() {
            assert_eq!((out.code, out.stdout.as_str()), (0, "300\n"), "[{rt}] {out}");
        } else {
            assert!(out.stderr.contains("Weight discarded"), "[{rt}] {out}");
        }
    }
}

#[test]
fn docker_health_check_runs_through_exec() {
    let d = dockerd();
    for rt in RUNTIMES {
        let id = d.run_detached_on(
            rt,
            &["--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", "--health-retries", "1"],
            &["sh", "-c", "sleep 2; touch /tmp/ok; sleep 1000"],
        );
        poll_until("healthy", Duration::from_secs(60), || {
            (inspect(&id, "{{.State.Health.Status}}") == "healthy").then_some(())
        });
        d.docker(&["exec", &id, "rm", "/tmp/ok"]).expect_ok("docker exec rm");
        poll_until("unhealthy", Duration::from_secs(60), || {
            (inspect(&id, "{{.State.Health.Status}}") == "unhealthy").then_some(())
        });
        d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
    }
}

/// Undoes what `dockerd --userns-remap=default` adds to the host: the `dockremap` user and
/// group and their /etc/subuid and /etc/subgid ranges, when they were not there before.
struct RemapUserCleanup {
    user_existed: bool,
    subuid: String,
    subgid: String,
}

impl RemapUserCleanup {
    fn take() -> RemapUserCleanup {
        RemapUserCleanup {
            user_existed: conformance::sh("getent passwd dockremap").0 == 0,
            subuid: fs::read_to_string("/etc/subuid").unwrap_or_default(),
            subgid: fs::read_to_string("/etc/subgid").unwrap_or_default(),
        }
    }
}

impl Drop for RemapUserCleanup {
    fn drop(&mut self) {
        if !self.user_existed {
            let _ = conformance::sh("userdel dockremap 2>/dev/null; groupdel dockremap 2>/dev/null; true");
        }
        for (path, before) in [("/etc/subuid", &self.subuid), ("/etc/subgid", &self.subgid)] {
            let now = fs::read_to_string(path).unwrap_or_default();
            let kept: String = now
                .lines()
                .filter(|l| !l.starts_with("dockremap:") || before.lines().any(|b| b == *l))
                .map(|l| format!("{l}\n"))
                .collect();
            if kept != now {
                let _ = fs::write(path, kept);
            }
        }
    }
}

/// `dockerd --userns-remap=default` on a second private daemon: containers run in a user
/// namespace whose root is the first subordinate uid of `dockremap`.
#[test]
fn docker_userns_remap_runs_containers_as_subordinate_ids() {
    let _users = RemapUserCleanup::take();
    let d = conformance::docker::Dockerd::start_with("u", &["--userns-remap=default"]);
    struct Stop<'a>(&'a conformance::docker::Dockerd);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _stop = Stop(&d);
    let subuid = fs::read_to_string("/etc/subuid").unwrap();
    let start: u64 = subuid
        .lines()
        .find_map(|l| l.strip_prefix("dockremap:"))
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("dockerd added no dockremap range: {subuid}"));
    for rt in RUNTIMES {
        let out = d.run_on(
            rt,
            &[],
            &["sh", "-c", "id -u; cat /proc/self/uid_map; touch /root-owned && stat -c %u /root-owned"],
        );
        assert!(out.ok(), "[{rt}] {out}");
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(words, ["0", "0", &start.to_string(), "65536", "0"], "[{rt}] {out}");

        let id = d.run_detached_on(rt, &[], &["sleep", "1000"]);
        let pid = ok(&d.docker(&["inspect", "--format", "{{.State.Pid}}", &id])).trim().to_string();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = conformance::util::status_field(&status, "Uid");
        assert_eq!(
            uid.split_whitespace().next(),
            Some(start.to_string().as_str()),
            "[{rt}] host uid of the container's root: {uid}"
        );
        d.docker(&["rm", "-f", &id]).expect_ok("docker rm -f");
        assert!(cgroup_dirs_containing(&id).is_empty(), "[{rt}] cgroup of {id} left behind");
    }
}
