//! A minimal root filesystem made of Debian's static busybox.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// Applets the tests call; each becomes a symlink to /bin/busybox.
pub const APPLETS: &[&str] = &[
    "sh",
    "true",
    "false",
    "cat",
    "ls",
    "id",
    "hostname",
    "dnsdomainname",
    "echo",
    "sleep",
    "stat",
    "readlink",
    "touch",
    "mkdir",
    "grep",
    "ps",
    "tty",
    "env",
    "pwd",
    "mount",
    "umount",
    "wc",
    "head",
    "tail",
    "sed",
    "test",
    "kill",
    "awk",
    "tr",
    "find",
    "cut",
    "sort",
    "printf",
    "dd",
    "chmod",
    "ln",
    "rm",
    "mknod",
    "uname",
    "stty",
    "ip",
    "realpath",
    "nproc",
    "sysctl",
    "xargs",
    "uniq",
    "basename",
    "dirname",
    "seq",
    "wait",
    "timeout",
    "mkfifo",
    "setsid",
    "df",
    "unshare",
    "nc",
    "linux32",
    "ionice",
    "taskset",
    "chown",
];

pub struct Rootfs {
    pub path: PathBuf,
}

impl Rootfs {
    /// Builds a busybox rootfs at `path` (which must not exist yet).
    pub fn busybox(path: &Path) -> Rootfs {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing: install Debian's busybox-static");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "home/user", "var", "run", "mnt"] {
            fs::create_dir_all(path.join(d)).unwrap_or_else(|e| panic!("cannot create {}/{d}: {e}", path.display()));
        }
        fs::set_permissions(path.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("cannot chmod rootfs/tmp");
        fs::copy(busybox, path.join("bin/busybox")).expect("cannot copy /bin/busybox into rootfs");
        for a in APPLETS {
            symlink("busybox", path.join("bin").join(a)).unwrap_or_else(|e| panic!("cannot link applet {a}: {e}"));
        }
        // `sbin` and `usr/bin` exist in the default PATH; a link keeps lookups cheap.
        symlink("bin", path.join("sbin")).expect("cannot link sbin");
        fs::create_dir_all(path.join("usr")).expect("cannot create usr");
        symlink("../bin", path.join("usr/bin")).expect("cannot link usr/bin");
        fs::write(
            path.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             user:x:1000:1000:user:/home/user:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .expect("cannot write etc/passwd");
        fs::write(path.join("etc/group"), "root:x:0:\nuser:x:1000:\ntty:x:5:\nnogroup:x:65534:\n")
            .expect("cannot write etc/group");
        Rootfs { path: path.to_path_buf() }
    }

    /// Joins a container path ("/etc/x") onto the rootfs on the host side.
    pub fn host_path(&self, container_path: &str) -> PathBuf {
        self.path.join(container_path.trim_start_matches('/'))
    }

    /// Writes an executable script into the rootfs.
    pub fn write_script(&self, container_path: &str, body: &str) {
        let p = self.host_path(container_path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("cannot create script dir in rootfs");
        }
        fs::write(&p, body).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("cannot chmod script");
    }
}
