//! Rootless podman (issue 12, item 2): podman as an unprivileged user with subordinate ids
//! (newuidmap), slirp4netns networking and vfs storage, driving berth with `--runtime`, side
//! by side with runc and crun (where crun can run on this host). conmon and the runtime run
//! as root of podman's user namespace, which is the user on the host: berth detects that it
//! is rootless there. This host is cgroup v1: rootless podman runs its containers without
//! cgroups, as it does on every v1 host. See conformance::podman for the store.

use conformance::oracle::cannot_run_here;
use conformance::podman::{rootless_podman, Podman};
use conformance::{poll_until, Out};
use std::time::Duration;

/// The runtimes compared: berth, runc, and crun where it can run here.
fn runtimes() -> Vec<&'static str> {
    ["berth", "runc", "crun"].into_iter().filter(|rt| cannot_run_here(rt).is_none()).collect()
}

fn ok(rt: &str, out: &Out) -> String {
    assert!(out.ok(), "[{rt}] {out}");
    out.stdout.clone()
}

fn state(p: &Podman, rt: &str, id: &str, fmt: &str) -> String {
    ok(rt, &p.podman(&["inspect", "--format", fmt, id])).trim().to_string()
}

/// conmon runs podman's `container cleanup` after the container is gone: give it a moment.
fn assert_clean(p: &Podman, rt: &str, id: &str) {
    let left = poll_until_clean(p, id);
    assert!(left.is_empty(), "[{rt}] container {id} left behind:\n{}", left.join("\n"));
}

fn poll_until_clean(p: &Podman, id: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = p.leftovers(id);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rootless_podman_run_exec_logs_stop_rm_with_slirp4netns() {
    let p = rootless_podman();
    let (uid, _) = conformance::test_user::ids();
    for rt in runtimes() {
        // The default rootless network: slirp4netns's tap device with its fixed address.
        let out = ok(
            rt,
            &p.podman_on(
                rt,
                &[
                    "run",
                    "--rm",
                    conformance::podman::IMAGE,
                    "sh",
                    "-c",
                    "id -u; cat /proc/self/uid_map; ip -4 -o addr show tap0",
                ],
            ),
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("0"), "[{rt}] {out}");
        let map: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(map, ["0", &uid.to_string(), "1"], "[{rt}] root is the user: {out}");
        assert!(out.contains("inet 10.0.2.100/24"), "[{rt}] slirp4netns address: {out}");

        let id = p.run_detached_on(
            rt,
            &[],
            &["sh", "-c", "echo started; trap 'echo term; exit 0' TERM; while :; do sleep 0.1; done"],
        );
        assert_eq!(state(p, rt, &id, "{{.OCIRuntime}}"), p.runtime_path(rt).to_string_lossy(), "[{rt}]");
        poll_until("the container to print", Duration::from_secs(30), || {
            p.podman(&["logs", &id]).stdout.contains("started").then_some(())
        });
        let out = ok(rt, &p.podman(&["exec", &id, "sh", "-c", "id -u; echo exec-ok"]));
        assert_eq!(out, "0\nexec-ok\n", "[{rt}]");
        let exec = p.podman(&["exec", &id, "sh", "-c", "exit 7"]);
        assert_eq!(exec.code, 7, "[{rt}] exec's exit code: {exec}");
        assert!(exec.stderr.is_empty(), "[{rt}] exec printed: {exec}");
        ok(rt, &p.podman(&["stop", "-t", "10", &id]));
        assert_eq!(state(p, rt, &id, "{{.State.Status}} {{.State.ExitCode}}"), "exited 0", "[{rt}]");
        assert_eq!(ok(rt, &p.podman(&["logs", &id])), "started\nterm\n", "[{rt}]");
        ok(rt, &p.podman(&["rm", &id]));
        assert_clean(p, rt, &id);
    }
    assert!(p.runtime_argv().contains("exec "), "podman never ran berth exec:\n{}", p.runtime_argv());
}

#[test]
fn rootless_podman_tty_and_keep_id() {
    let p = rootless_podman();
    let (uid, gid) = conformance::test_user::ids();
    for rt in runtimes() {
        // -t: conmon hands the runtime a console socket and reads the pty.
        let out =
            ok(rt, &p.run_on(rt, &["-t"], &["sh", "-c", "tty; stty size >/dev/null && echo sized"])).replace('\r', "");
        assert!(out.starts_with("/dev/pts/") && out.contains("sized"), "[{rt}] {out:?}");

        // keep-id: the user is itself inside, in a user namespace of three ranges.
        let out = ok(rt, &p.run_on(rt, &["--userns=keep-id"], &["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"]));
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(&words[..2], [uid.to_string(), gid.to_string()], "[{rt}] {out}");
        // containerID hostID size, hostID being an id of podman's namespace: the user is 0 there.
        assert!(out.contains(&format!("\n{:>10} {:>10} {:>10}\n", uid, 0, 1)), "[{rt}] {out}");
    }
}

#[test]
fn rootless_podman_pod_shares_a_pid_namespace() {
    let p = rootless_podman();
    for rt in runtimes() {
        let pod = format!("bpr-pod-{rt}-{}", std::process::id());
        ok(rt, &p.podman_on(rt, &["pod", "create", "--name", &pod, "--share", "pid,ipc,uts"]));
        let first = p.run_detached_on(rt, &["--pod", &pod], &["sleep", "1000"]);
        let out = ok(rt, &p.run_on(rt, &["--pod", &pod], &["ps", "-o", "args"]));
        assert!(out.contains("sleep 1000"), "[{rt}] the pod's pid namespace: {out}");
        assert!(out.contains("catatonit"), "[{rt}] the pod's infra process: {out}");
        ok(rt, &p.podman(&["pod", "rm", "-f", "-t", "0", &pod]));
        assert_clean(p, rt, &first);
    }
}

#[test]
fn rootless_podman_cannot_write_a_root_owned_host_file() {
    let p = rootless_podman();
    let file = p.dir.join("root-owned");
    std::fs::write(&file, "host\n").expect("write root-owned file");
    let vol = format!("{}:/mnt/f", file.display());
    for rt in runtimes() {
        let out = p.run_on(rt, &["-v", &vol], &["sh", "-c", "cat /mnt/f; stat -c %u /mnt/f; echo x > /mnt/f"]);
        assert_ne!(out.code, 0, "[{rt}] wrote a root-owned host file: {out}");
        assert!(out.stdout.starts_with("host\n65534\n"), "[{rt}] the file is nobody's inside: {out}");
        assert!(out.stderr.contains("Permission denied"), "[{rt}] {out}");
        assert_eq!(std::fs::read_to_string(&file).expect("read back"), "host\n", "[{rt}]");
    }
}
