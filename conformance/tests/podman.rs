//! podman used as a person would, with the runtime under test given as `--runtime <berth>`
//! on a private store (see conformance::podman); every case runs on berth and on runc with
//! the same assertions, so a difference is berth's.

use conformance::podman::podman;
use conformance::{poll_until, Out};
use std::time::Duration;

const RUNTIMES: [&str; 2] = ["berth", "runc"];

fn ok(rt: &str, out: &Out) -> String {
    assert!(out.ok(), "[{rt}] {out}");
    out.stdout.clone()
}

fn state(rt: &str, id: &str, fmt: &str) -> String {
    ok(rt, &podman().podman(&["inspect", "--format", fmt, id])).trim().to_string()
}

/// conmon runs podman's `container cleanup` as its exit command after the container is gone,
/// so the leak check gives that a few seconds to finish.
fn assert_clean(rt: &str, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut left = podman().leftovers(id);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = podman().leftovers(id);
    }
    assert!(left.is_empty(), "[{rt}] container {id} left behind:\n{}", left.join("\n"));
}

#[test]
fn podman_run_output_exit_code_and_options() {
    let p = podman();
    for rt in RUNTIMES {
        let out = p.run_on(rt, &[], &["sh", "-c", "echo hello; echo oops >&2; exit 3"]);
        assert_eq!((out.code, out.stdout.as_str()), (3, "hello\n"), "[{rt}] {out}");
        assert!(out.stderr.contains("oops"), "[{rt}] {out}");
        let out = ok(
            rt,
            &p.run_on(
                rt,
                &["-e", "FOO=bar baz", "-w", "/tmp", "--hostname", "boxy", "-u", "1000:1000"],
                &["sh", "-c", "echo $FOO; pwd; hostname; id -u; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"],
            ),
        );
        assert_eq!(out, "bar baz\n/tmp\nboxy\n1000\nlo\n", "[{rt}]");
        let out = ok(rt, &p.run_on(rt, &["--cap-drop", "ALL"], &["grep", "CapEff", "/proc/self/status"]));
        assert_eq!(out, "CapEff:\t0000000000000000\n", "[{rt}]");
        let out = ok(rt, &p.run_on(rt, &["--read-only"], &["sh", "-c", "touch /x 2>/dev/null || echo RO"]));
        assert_eq!(out, "RO\n", "[{rt}]");
        let out = ok(rt, &p.run_on(rt, &[], &["grep", "^Seccomp:", "/proc/self/status"]));
        assert_eq!(out, "Seccomp:\t2\n", "[{rt}] podman's default seccomp profile is a filter");
        let missing = p.run_on(rt, &[], &["/no/such/binary"]);
        assert_eq!(missing.code, 127, "[{rt}] podman's code for a command that is not found: {missing}");
    }
}

// A command the kernel will not exec (a binary for another architecture) starts and exits
// with the reason on its stderr, for `podman run` and `podman exec` alike: conmon reports the
// process's exit code (runc 1.1: 1; runc 1.2 on and berth: 255), not a runtime error.
#[test]
fn podman_command_the_kernel_cannot_exec_runs_and_exits_with_the_reason() {
    let p = podman();
    let bad = p.dir.join("not-for-this-arch");
    conformance::util::write_binary_for_no_machine(&bad);
    let vol = format!("{}:/entry:ro", bad.display());
    for rt in RUNTIMES {
        let codes: &[i32] = if rt == "runc" { &[1, 255] } else { &[255] };
        let out = p.run_on(rt, &["-v", &vol], &["/entry"]);
        assert!(codes.contains(&out.code), "[{rt}] podman run: {out}");
        assert_eq!(out.stderr.matches("exec /entry: exec format error").count(), 1, "[{rt}] {out}");
        assert!(!out.stderr.contains("OCI runtime"), "[{rt}] the container did not start: {out}");

        let id = p.run_detached_on(rt, &["-v", &vol], &["sleep", "1000"]);
        let exec = p.podman(&["exec", &id, "/entry"]);
        assert!(codes.contains(&exec.code), "[{rt}] podman exec: {exec}");
        assert_eq!(exec.stderr.matches("exec /entry: exec format error").count(), 1, "[{rt}] podman exec: {exec}");
        ok(rt, &p.podman(&["rm", "-f", "-t", "0", &id]));
        assert_clean(rt, &id);
    }
}

#[test]
fn podman_exec_into_a_running_container() {
    let p = podman();
    for rt in RUNTIMES {
        let id = p.run_detached_on(rt, &[], &["sleep", "1000"]);
        let out = p.podman(&["exec", &id, "sh", "-c", "echo in-exec; cat /proc/1/comm; exit 4"]);
        assert_eq!((out.code, out.stdout.as_str()), (4, "in-exec\nsleep\n"), "[{rt}] {out}");
        assert_eq!(
            ok(rt, &p.podman(&["exec", "-u", "1000", "-w", "/tmp", &id, "sh", "-c", "id -u; pwd"])),
            "1000\n/tmp\n"
        );
        ok(rt, &p.podman(&["rm", "-f", "-t", "0", &id]));
        assert_clean(rt, &id);
    }
    let argv = p.runtime_argv();
    assert!(
        argv.lines().any(|l| l.starts_with("exec ") && l.contains("--process")),
        "conmon drove `exec --process`:\n{argv}"
    );
}

#[test]
fn podman_stop_sends_sigterm_then_sigkill_and_rm_cleans_up() {
    let p = podman();
    for rt in RUNTIMES {
        // A trap: SIGTERM ends it with the trap's code.
        let id =
            p.run_detached_on(rt, &[], &["sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"]);
        poll_until("ready", Duration::from_secs(30), || {
            p.podman(&["logs", &id]).stdout.contains("ready").then_some(())
        });
        ok(rt, &p.podman(&["stop", "-t", "30", &id]));
        assert_eq!(state(rt, &id, "{{.State.ExitCode}}"), "42", "[{rt}] the TERM trap did not run");
        ok(rt, &p.podman(&["rm", &id]));
        assert_clean(rt, &id);

        // No handler in pid 1: SIGTERM is ignored, and after the timeout podman kills.
        let id = p.run_detached_on(rt, &[], &["sleep", "1000"]);
        ok(rt, &p.podman(&["stop", "-t", "1", &id]));
        assert_eq!(state(rt, &id, "{{.State.ExitCode}}"), "137", "[{rt}]");
        ok(rt, &p.podman(&["rm", &id]));
        assert_clean(rt, &id);

        // rm -f of a running container.
        let id = p.run_detached_on(rt, &[], &["sleep", "1000"]);
        ok(rt, &p.podman(&["rm", "-f", "-t", "0", &id]));
        assert_ne!(p.podman(&["container", "exists", &id]).code, 0, "[{rt}] {id} still known");
        assert_clean(rt, &id);
    }
    let argv = p.runtime_argv();
    for needle in ["create --bundle", "--pid-file", "start ", "kill ", "delete --force"] {
        assert!(argv.contains(needle), "podman never passed {needle:?} to berth:\n{argv}");
    }
}

#[test]
fn podman_pause_kill_signal_logs_and_tty() {
    let p = podman();
    for rt in RUNTIMES {
        let id = p.run_detached_on(
            rt,
            &[],
            &["sh", "-c", "trap 'echo got-usr1' USR1; i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done"],
        );
        let lines = || p.podman(&["logs", &id]).stdout.lines().filter(|l| !l.starts_with("got")).count();
        poll_until("the loop to print", Duration::from_secs(30), || (lines() > 2).then_some(()));
        ok(rt, &p.podman(&["pause", &id]));
        assert_eq!(state(rt, &id, "{{.State.Status}}"), "paused", "[{rt}]");
        let at_pause = lines();
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(lines(), at_pause, "[{rt}] printed while paused");
        ok(rt, &p.podman(&["unpause", &id]));
        assert_eq!(state(rt, &id, "{{.State.Status}}"), "running", "[{rt}]");
        poll_until("the loop to print again", Duration::from_secs(30), || (lines() > at_pause).then_some(()));

        ok(rt, &p.podman(&["kill", "-s", "USR1", &id]));
        poll_until("USR1 handled", Duration::from_secs(30), || {
            p.podman(&["logs", &id]).stdout.contains("got-usr1").then_some(())
        });
        ok(rt, &p.podman(&["kill", &id]));
        poll_until("exited", Duration::from_secs(30), || {
            (state(rt, &id, "{{.State.Status}}") == "exited").then_some(())
        });
        assert_eq!(state(rt, &id, "{{.State.ExitCode}}"), "137", "[{rt}]");
        ok(rt, &p.podman(&["rm", &id]));
        assert_clean(rt, &id);

        // -t: conmon hands the runtime a console socket and reads the pty.
        let out =
            ok(rt, &p.run_on(rt, &["-t"], &["sh", "-c", "tty; stty size >/dev/null && echo sized"])).replace('\r', "");
        assert!(out.starts_with("/dev/pts/") && out.contains("sized"), "[{rt}] {out:?}");
    }
    let argv = p.runtime_argv();
    for needle in ["pause ", "resume ", "kill ", "--console-socket"] {
        assert!(argv.contains(needle), "podman never passed {needle:?} to berth:\n{argv}");
    }
}

#[test]
fn podman_uidmap_runs_in_a_user_namespace() {
    let p = conformance::podman::Podman::start_with("u");
    struct Stop<'a>(&'a conformance::podman::Podman);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _stop = Stop(&p);
    for rt in RUNTIMES {
        let out = ok(
            rt,
            &p.run_on(
                rt,
                &["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"],
                &["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && stat -c %u:%g /tmp/f"],
            ),
        );
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words, ["0", "0", "200000", "65536", "0", "200000", "65536", "0:0"], "[{rt}] {out}");
    }
}
