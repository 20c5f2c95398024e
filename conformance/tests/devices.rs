//! /dev inside the container: default devices, symlinks, ptmx, linux.devices.

use conformance::Case;
use serde_json::json;

#[test]
fn default_devices_exist_with_right_numbers() {
    let mut c = Case::new("dev_default");
    let out = c.sh_ok("for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done");
    let want = [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn default_devices_work() {
    let mut c = Case::new("dev_work");
    let out = c.sh_ok("echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 8 /dev/urandom | wc -c && (echo y > /dev/full) 2>&1 | grep -c 'No space'");
    assert_eq!(out.lines().map(str::trim).collect::<Vec<_>>(), vec!["4", "8", "1"]);
}

#[test]
fn dev_symlinks_exist() {
    let mut c = Case::new("dev_symlinks");
    let out = c.sh_ok("for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "fd /proc/self/fd",
            "stdin /proc/self/fd/0",
            "stdout /proc/self/fd/1",
            "stderr /proc/self/fd/2",
            "ptmx pts/ptmx"
        ]
    );
}

#[test]
fn dev_pts_ptmx_is_usable() {
    let mut c = Case::new("dev_ptmx");
    let out = c.sh_ok("stat -c '%F %t:%T' /dev/pts/ptmx; grep ' /dev/pts ' /proc/mounts | cut -d' ' -f3");
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["character special file 5:2", "devpts"]);
}

#[test]
fn linux_devices_entry_is_created() {
    let mut c = Case::new("dev_linux_devices");
    c.config()["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 5},
        {"path": "/dev/sub/loopx", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0}
    ]);
    let out = c.sh_ok("stat -c '%n %F %t:%T %a %u %g' /dev/fuse /dev/sub/loopx");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["/dev/fuse character special file a:e5 640 1000 5", "/dev/sub/loopx block special file 7:c8 600 0 0"]
    );
}

#[test]
fn dev_shm_and_mqueue_are_mounted() {
    let mut c = Case::new("dev_shm_mqueue");
    let out = c.sh_ok("grep -E ' /dev/(shm|mqueue) ' /proc/mounts | cut -d' ' -f2,3");
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["/dev/shm tmpfs", "/dev/mqueue mqueue"]);
}

#[test]
fn host_devices_are_not_visible() {
    let mut c = Case::new("dev_no_host");
    let out = c.sh_ok("ls /dev");
    for host_only in ["sda", "vda", "kmsg", "mem", "kvm"] {
        assert!(!out.split_whitespace().any(|d| d == host_only), "/dev/{host_only} leaked into the container: {out}");
    }
}
