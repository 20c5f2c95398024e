//! The fixtures themselves: a leak check that never fires proves nothing.

use conformance::{Case, LeakSnapshot};
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[test]
fn leak_check_sees_cgroups_processes_state_and_mounts() {
    let c = Case::new("harness_leaks");
    let snap = LeakSnapshot::take();
    assert!(snap.check(&c.id, &c.rt.root, &c.dir).is_empty(), "clean host reported as leaking");

    let cg = format!("/sys/fs/cgroup/pids/{}", c.id);
    fs::create_dir(&cg).expect("create a fake container cgroup");
    fs::create_dir_all(c.rt.root.join(&c.id)).unwrap();
    let mnt = c.dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let (rc, out) = conformance::sh(&format!("mount -t tmpfs tmpfs {}", mnt.display()));
    assert_eq!(rc, 0, "{out}");
    // coreutils sleep ignores argv[0], which carries the id into the cmdline.
    let mut child = Command::new("/bin/sleep")
        .arg0(&c.id)
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn a fake container process");
    let pid = child.id();
    conformance::poll_until("child exec'd", std::time::Duration::from_secs(10), || {
        fs::read(format!("/proc/{pid}/cmdline")).ok()?.windows(c.id.len()).any(|w| w == c.id.as_bytes()).then_some(())
    });

    let problems = snap.check(&c.id, &c.rt.root, &c.dir).join("\n");
    let _ = child.kill();
    let _ = child.wait();
    conformance::sh(&format!("umount {}", mnt.display()));
    fs::remove_dir(&cg).unwrap();
    fs::remove_dir_all(c.rt.root.join(&c.id)).unwrap();

    for what in ["cgroup left behind", "process left behind", "state left behind", "new mount on the host"] {
        assert!(problems.contains(what), "leak check missed: {what}\n{problems}");
    }
}

#[test]
fn busybox_rootfs_has_users_and_applets() {
    let c = Case::new("harness_rootfs");
    let r = &c.bundle.rootfs;
    let passwd = fs::read_to_string(r.host_path("/etc/passwd")).unwrap();
    for u in ["root:x:0:0:", "user:x:1000:1000:", "nobody:x:65534:65534:"] {
        assert!(passwd.contains(u), "{u} missing from /etc/passwd");
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        assert!(r.host_path(d).is_dir(), "{d} missing");
    }
    assert_eq!(fs::read_link(r.host_path("/bin/sh")).unwrap().to_str(), Some("busybox"));
}
