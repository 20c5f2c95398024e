//! linux.namespaces: new namespaces, joined ones (`path`), and absent ones.

use conformance::util::{kill_pid, ns_inode, pid_alive};
use conformance::{poll_until, Case};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn host_ns(kind: &str) -> String {
    ns_inode(Path::new(&format!("/proc/self/ns/{kind}"))).expect("host ns link")
}

#[test]
fn pid_namespace_makes_process_pid_1() {
    let mut c = Case::new("ns_pid");
    let out = c.sh_ok("echo $$; ls /proc | grep -c '^[0-9]'");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    // sh plus the ls/grep pipeline; never the host's processes.
    assert!(lines[1].parse::<u32>().unwrap() <= 4, "container sees host pids: {out}");
}

#[test]
fn mount_namespace_is_new() {
    let mut c = Case::new("ns_mount");
    let out = c.sh_ok("readlink /proc/self/ns/mnt");
    assert_ne!(out.trim(), host_ns("mnt"));
}

#[test]
fn uts_namespace_sets_hostname_and_domainname() {
    let mut c = Case::new("ns_uts");
    c.config()["hostname"] = "box-one".into();
    c.config()["domainname"] = "example.test".into();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = c.sh_ok("hostname; cat /proc/sys/kernel/domainname; readlink /proc/self/ns/uts");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "box-one");
    assert_eq!(l[1], "example.test");
    assert_ne!(l[2], host_ns("uts"));
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host, "host hostname changed");
}

#[test]
fn ipc_namespace_is_new() {
    let mut c = Case::new("ns_ipc");
    let out = c.sh_ok("readlink /proc/self/ns/ipc");
    assert_ne!(out.trim(), host_ns("ipc"));
}

#[test]
fn network_namespace_has_only_loopback() {
    let mut c = Case::new("ns_net");
    let out = c.sh_ok("readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    let l: Vec<&str> = out.lines().collect();
    assert_ne!(l[0], host_ns("net"));
    assert_eq!(&l[1..], &["lo"], "{out}");
}

/// runc brings `lo` up in a container's new network namespace (its "loopback" network);
/// without it nothing in the container reaches 127.0.0.1.
#[test]
fn a_new_network_namespace_has_its_loopback_up() {
    let mut c = Case::new("ns_lo");
    let flags = c.sh_ok("cat /sys/class/net/lo/flags");
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).expect("lo's flags");
    assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32, "lo flags {flags:#x}");
}

#[test]
fn cgroup_namespace_hides_host_cgroup_path() {
    let mut c = Case::new("ns_cgroup");
    let out = c.sh_ok("readlink /proc/self/ns/cgroup; cat /proc/self/cgroup");
    let mut l = out.lines();
    assert_ne!(l.next().unwrap(), host_ns("cgroup"));
    for line in l {
        assert!(line.ends_with(":/"), "cgroup path visible inside a cgroup ns: {line}");
    }
}

#[test]
fn absent_namespace_is_shared_with_host() {
    let mut c = Case::new("ns_absent");
    c.bundle.remove_namespace("network");
    c.bundle.remove_namespace("ipc");
    let out = c.sh_ok("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], host_ns("net"));
    assert_eq!(l[1], host_ns("ipc"));
}

/// A host process sitting in fresh namespaces of `kinds`, killed at cleanup.
fn ns_holder(c: &mut Case, unshare_flags: &[&str]) -> i32 {
    let child = Command::new("unshare")
        .args(unshare_flags)
        .args(["/bin/busybox", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn unshare");
    let pid = child.id() as i32;
    c.on_cleanup(move || {
        kill_pid(pid, libc::SIGKILL);
        let mut child = child;
        let _ = child.wait();
    });
    // unshare execs sleep after unsharing; wait until the ns differs from ours.
    poll_until("holder in its namespaces", Duration::from_secs(10), || {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        exe.to_string_lossy().contains("busybox").then_some(())
    });
    pid
}

#[test]
fn namespace_path_is_joined() {
    let mut c = Case::new("ns_join");
    let holder = ns_holder(&mut c, &["--net", "--uts", "--ipc"]);
    for kind in ["network", "uts", "ipc"] {
        let link = match kind {
            "network" => "net",
            k => k,
        };
        c.bundle.join_namespace(kind, &format!("/proc/{holder}/ns/{link}"));
    }
    // Joining a uts ns means the runtime must not be asked to set a hostname.
    c.config().as_object_mut().unwrap().remove("hostname");
    let out = c.sh_ok("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc");
    let want: Vec<String> =
        ["net", "uts", "ipc"].iter().map(|k| ns_inode(Path::new(&format!("/proc/{holder}/ns/{k}"))).unwrap()).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(pid_alive(holder));
}

#[test]
fn pid_namespace_path_is_joined_without_warnings() {
    let mut c = Case::new("ns_join_pid");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create the first container");
    c.start().expect_ok("start");
    let init = c.state()["pid"].as_i64().unwrap();
    let second = c.other_id(1);
    c.bundle.join_namespace("pid", &format!("/proc/{init}/ns/pid"));
    c.bundle.set_sh("cat /proc/1/cmdline; echo");
    c.write();
    let out = c.rt.run(&second, &c.bundle.dir, &[]);
    out.expect_ok("run in the first container's pid namespace");
    assert_eq!(out.stdout, "sleep\u{0}1000\u{0}\n", "pid 1 is the first container's init");
    assert_eq!(out.stderr, "", "no warning from either side of the clone");
}

#[test]
fn empty_namespace_path_means_a_new_namespace() {
    // config-linux.md: without a path the namespace is new; runc reads `""` so (crun 1.8
    // tries to open "" and fails).
    conformance::each_runtime_but(&["crun"], "ns_empty_path", |c, rt| {
        for ty in ["network", "ipc", "uts"] {
            c.bundle.join_namespace(ty, "");
        }
        let out = c.run_sh("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts");
        out.expect_ok(rt);
        let l: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(l.len(), 3, "{rt}: {out}");
        for (got, kind) in l.iter().zip(["net", "ipc", "uts"]) {
            assert_ne!(*got, host_ns(kind), "{rt}: {kind} namespace is the host's");
        }
    });
}

/// linux.namespaces without `mount`, and the paths that need one.
fn without_mount_namespace(c: &mut Case) {
    c.bundle.remove_namespace("mount");
    let linux = c.config()["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
}

fn host_mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|mp| mp == p || mp.starts_with(&format!("{p}/"))))
        .map(String::from)
        .collect()
}

// runc and crun are not run here: without a mount namespace runc makes the host's `/`
// rslave and its rootfs parent private, and leaves every container mount on the host
// after delete (seen with runc 1.1.5 in a scratch mount namespace).
#[test]
fn absent_mount_namespace_is_the_runtimes_and_leaves_no_mounts() {
    let mut c = Case::new("ns_no_mnt");
    without_mount_namespace(&mut c);
    let root = std::fs::canonicalize(c.bundle.dir.join("rootfs")).unwrap();
    let out = c.sh_ok(
        "readlink /proc/self/ns/mnt; test -x /bin/busybox && echo in-rootfs; ls /proc/self/fd >/dev/null && echo proc",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l, vec![host_ns("mnt").as_str(), "in-rootfs", "proc"], "{out}");
    assert_eq!(host_mounts_under(&root), Vec::<String>::new(), "run left mounts on the host");
}

#[test]
fn absent_mount_namespace_exec_and_delete() {
    let mut c = Case::new("ns_no_mnt_exec");
    without_mount_namespace(&mut c);
    let root = std::fs::canonicalize(c.bundle.dir.join("rootfs")).unwrap();
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create without a mount namespace");
    c.start().expect_ok("start");
    // The container's mounts live in the host's namespace while it runs (as with runc).
    assert!(host_mounts_under(&root).iter().any(|l| l.contains(" - proc ")), "no /proc under the rootfs");
    // exec runs in the container's root, not the host's (runc's exec would not chroot).
    let out =
        c.rt.exec(&["exec", &c.id, "sh", "-c", "readlink /proc/self/ns/mnt; test -x /bin/busybox && echo in-rootfs"]);
    out.expect_ok("exec");
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), vec![host_ns("mnt").as_str(), "in-rootfs"], "{out}");
    c.rt.delete_force(&c.id).expect_ok("delete");
    assert_eq!(host_mounts_under(&root), Vec::<String>::new(), "delete left mounts on the host");
}

#[test]
fn failed_create_without_mount_namespace_leaves_no_mounts() {
    let mut c = Case::new("ns_no_mnt_fail");
    without_mount_namespace(&mut c);
    let root = std::fs::canonicalize(c.bundle.dir.join("rootfs")).unwrap();
    // Fails after the rootfs mounts, in the createContainer hook.
    c.config()["hooks"] = serde_json::json!({"createContainer": [{"path": "/bin/false"}]});
    let out = c.create();
    out.expect_fail("create with a failing createContainer hook");
    assert!(out.stderr.contains("createContainer"), "create did not get as far as the hook: {out}");
    assert_eq!(host_mounts_under(&root), Vec::<String>::new(), "failed create left mounts on the host");
}
