//! Small helpers shared by fixtures and tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where every test keeps its files. Short on purpose: unix socket paths
/// (console sockets, dockerd's exec-root) must stay under 108 bytes.
pub fn base_dir() -> PathBuf {
    PathBuf::from("/tmp/berth-conf")
}

/// Polls `f` until it yields `Some`, or panics naming `what` after `timeout`.
/// This replaces sleeps: tests wait for a condition, never for a duration.
pub fn poll_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs a host shell snippet with /bin/sh and returns (exit code, stdout+stderr).
pub fn sh(script: &str) -> (i32, String) {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run /bin/sh -c {script:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// sha256 of a file, through coreutils so the crate needs no hashing dependency.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sha256sum {}: {e}", path.display()));
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("sha256sum printed nothing").to_string()
}

/// True if `pid` names a live (non-zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state letter follows the last ')' (comm may contain spaces).
            let state = s.rsplit_once(')').map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// Inode number of a namespace link such as /proc/<pid>/ns/net ("net:[4026531840]").
pub fn ns_inode(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// Sends `sig` to `pid`; errors (already gone) are ignored on purpose.
pub fn kill_pid(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A workspace binary: `$<env>` if set, else the newer of the release and debug builds
/// (the workspace builds for an explicit target, see .cargo/config.toml).
pub fn workspace_binary(name: &str, env: &str) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return std::path::PathBuf::from(p);
    }
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-gnu");
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join(name))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .unwrap_or_else(|| target.join("release").join(name))
}

/// One field of a /proc/<pid>/status text ("CapEff", "NSpid", …), trimmed.
pub fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} missing from /proc/self/status:\n{status}"))
        .trim()
        .to_string()
}

/// Writes an executable file at `path` that the kernel refuses to exec with ENOEXEC ("exec
/// format error"): an ELF header for no machine, as a binary built for another architecture
/// is refused. Its PATH lookup succeeds, so only the execve itself fails.
pub fn write_binary_for_no_machine(path: &Path) {
    std::fs::write(path, b"\x7fELF\x02\x01\x01 not for any machine\n")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes an executable `wrapper` that appends its arguments as one line to `log`, then
/// becomes `target`: how a client (containerd's shim, conmon) drives a runtime, recorded.
pub fn write_argv_recording_wrapper(wrapper: &Path, log: &Path, target: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        wrapper,
        format!(
            "#!/bin/sh\n# Records how the client drives the runtime, then becomes it.\nprintf '%s\\n' \"$*\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            target.display()
        ),
    )
    .expect("cannot write runtime wrapper");
    std::fs::set_permissions(wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
}

/// Lazily unmounts every mount at or below `dir`, deepest first (what a daemon or a
/// snapshotter left behind).
pub fn unmount_all_under(dir: &Path) {
    let mut mps: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        // mountinfo escapes a space in a mount point as \040.
        .filter_map(|l| l.split(' ').nth(4).map(|mp| mp.replace("\\040", " ")))
        .filter(|mp| Path::new(mp).starts_with(dir))
        .collect();
    mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mp in mps {
        if let Ok(c) = std::ffi::CString::new(mp) {
            // SAFETY: umount2 with a valid C string.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// CPU time a process has used (utime + stime), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the comm.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// The highest fd number a process has open.
pub fn highest_fd(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("an fd")
}

/// Another process's soft RLIMIT_NOFILE lowered, until this is dropped (which restores it).
/// Only the soft limit: raising the hard one back would need CAP_SYS_RESOURCE.
pub struct NofileLimit {
    pid: i32,
    old: libc::rlimit,
}

impl NofileLimit {
    pub fn lower(pid: u32, soft: u64) -> NofileLimit {
        let pid = i32::try_from(pid).expect("pid");
        let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: prlimit reading into a valid rlimit struct.
        let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
        let new = libc::rlimit { rlim_cur: soft, rlim_max: old.rlim_max };
        // SAFETY: prlimit with a valid rlimit struct that outlives the call.
        let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
        NofileLimit { pid, old }
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        // SAFETY: as in `lower`; restores the limit the process had.
        let r = unsafe { libc::prlimit(self.pid, libc::RLIMIT_NOFILE, &self.old, std::ptr::null_mut()) };
        if r != 0 && !std::thread::panicking() {
            panic!("prlimit restore: {}", std::io::Error::last_os_error());
        }
    }
}
