//! The unprivileged user the rootless tests run as (`berthrl`), made with `useradd -m` when
//! missing and given a subordinate id range (as `useradd` gives every new user on Debian),
//! and how a test runs a program as that user: `setpriv` drops root and every capability,
//! `env -i` leaves only what a login would give.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NAME: &str = "berthrl";

/// The subordinate ids the user gets when it has none (podman maps them).
const SUB_RANGE: &str = "300000-365535";

fn id(flag: &str) -> Option<std::process::Output> {
    Command::new("id").args([flag, NAME]).output().ok().filter(|o| o.status.success())
}

/// The user's uid and gid, made if missing (once per test process: the tests run in threads).
pub fn ids() -> (u32, u32) {
    static IDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *IDS.get_or_init(make)
}

fn make() -> (u32, u32) {
    if id("-u").is_none() {
        let ok = Command::new("useradd").args(["-m", NAME]).status().is_ok_and(|s| s.success());
        assert!(ok, "cannot create the test user {NAME}");
    }
    let has_range =
        |file: &str| fs::read_to_string(file).unwrap_or_default().lines().any(|l| l.starts_with(&format!("{NAME}:")));
    if !has_range("/etc/subuid") || !has_range("/etc/subgid") {
        let ok = Command::new("usermod")
            .args(["--add-subuids", SUB_RANGE, "--add-subgids", SUB_RANGE, NAME])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot give {NAME} subordinate ids");
    }
    let num = |flag: &str| -> u32 {
        let o = id(flag).unwrap_or_else(|| panic!("id {flag} {NAME} failed"));
        String::from_utf8_lossy(&o.stdout).trim().parse().expect("numeric id")
    };
    (num("-u"), num("-g"))
}

/// A directory of the user (mode 0700), made with its parents.
pub fn owned_dir(path: &Path) -> PathBuf {
    let (uid, gid) = ids();
    fs::create_dir_all(path).expect("mkdir user dir");
    chown(path, Some(uid), Some(gid)).expect("chown user dir");
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).expect("chmod user dir");
    path.to_path_buf()
}

/// The arguments of `setpriv` that run what follows them as the user, with a login's
/// environment: HOME `home` and, if given, XDG_RUNTIME_DIR `xdg`.
pub fn setpriv_args(home: &Path, xdg: Option<&Path>) -> Vec<String> {
    let (uid, gid) = ids();
    let mut v = vec![
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "env".into(),
        "-i".into(),
        "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
        format!("HOME={}", home.display()),
        format!("USER={NAME}"),
        format!("LOGNAME={NAME}"),
    ];
    v.extend(xdg.map(|x| format!("XDG_RUNTIME_DIR={}", x.display())));
    v
}
