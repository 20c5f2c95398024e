//! The last steps before the container's process runs: its working directory, the
//! executable looked up in the container's PATH (so a missing binary fails `create`, not
//! `start`), HOME, default signal dispositions, execve.

use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use super::error::{applying, InitError, LookupError};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The most of /etc/passwd we read: the image controls it (CVE-2026-47262).
const MAX_PASSWD: u64 = 1 << 20;

/// Creates the cwd if it is missing (as runc does), as root, inside the container's root.
pub fn ensure_cwd(cwd: &Path) -> Result<(), InitError> {
    if !cwd.exists() {
        std::fs::create_dir_all(cwd).map_err(applying(cwd_field(cwd)).io())?;
    }
    Ok(())
}

/// Where `enter_cwd_privileged` left the process.
#[derive(Debug, PartialEq, Eq)]
pub enum Cwd {
    Entered,
    /// chdir as root was refused (EACCES, EPERM: e.g. a root without rights in a user
    /// namespace or on a root-squashing file system): try again as the process's user.
    Retry,
}

/// chdir into the cwd while still privileged (runc 1.3's order), checked to be inside the
/// container's root. Runs before the seccomp filter, whose profile need not allow chdir
/// or getcwd.
pub fn enter_cwd_privileged(cwd: &Path) -> Result<Cwd, InitError> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => check_cwd(cwd).map(|()| Cwd::Entered),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => Ok(Cwd::Retry),
        Err(e) => Err(applying(cwd_field(cwd)).doing("chdir").errno()(e)),
    }
}

/// chdir into the cwd and check that it is inside the container's root.
pub fn enter_cwd(cwd: &Path) -> Result<(), InitError> {
    nix::unistd::chdir(cwd).map_err(applying(cwd_field(cwd)).doing("chdir").errno())?;
    check_cwd(cwd)
}

/// The field and its value, as messages about the cwd name it.
fn cwd_field(cwd: &Path) -> String {
    format!("process.cwd {}", cwd.display())
}

/// A cwd reached through a leaked fd would be "(unreachable)" (CVE-2024-21626): glibc's
/// getcwd fails with ENOENT then, the raw syscall returns a relative path.
fn check_cwd(cwd: &Path) -> Result<(), InitError> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(_) | Err(nix::errno::Errno::ENOENT) => {
            Err(InitError::invalid(cwd_field(cwd), "is outside the container's root"))
        }
        Err(e) => Err(applying(cwd_field(cwd)).doing("getcwd").errno()(e)),
    }
}

pub struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// The command line and environment execve gets. Bytes: `exec`'s come from berth's own
/// command line, where they need not be UTF-8 (a `Process` holds strings).
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub args: Vec<OsString>,
    pub env: Vec<OsString>,
}

impl Command {
    pub fn of(process: &Process) -> Command {
        let strings = |v: &Option<Vec<String>>| v.iter().flatten().map(OsString::from).collect();
        Command { args: strings(process.args()), env: strings(process.env()) }
    }
}

fn cstring(s: &OsStr, field: &str) -> Result<CString, InitError> {
    CString::new(s.as_bytes()).map_err(|_| InitError::invalid(field, "contains a NUL byte"))
}

/// What to execve: `command` (or the process's own args and env) with each variable once
/// (see [`dedup_env`]), the program looked up in its PATH, HOME added if missing or empty.
pub fn prepare(process: &Process, command: Option<&Command>) -> Result<Prepared, InitError> {
    let own;
    let cmd = match command {
        Some(c) => c,
        None => {
            own = Command::of(process);
            &own
        }
    };
    let mut envp = dedup_env(&cmd.env);
    let path_var = envp
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .map(OsStr::from_bytes)
        .unwrap_or(OsStr::new(DEFAULT_PATH));
    let program = cmd.args.first().ok_or_else(|| InitError::invalid("process.args", "must not be empty"))?;
    let resolved = lookup(program, path_var)?;
    if !envp.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
        envp.push(format!("HOME={}", home_of(process.user().uid())).into());
    }
    Ok(Prepared {
        path: cstring(resolved.as_os_str(), "process.args[0]")?,
        argv: cmd
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| cstring(a, &format!("process.args[{i}]")))
            .collect::<Result<_, _>>()?,
        envp: envp
            .iter()
            .enumerate()
            .map(|(i, e)| cstring(e, &format!("process.env[{i}]")))
            .collect::<Result<_, _>>()?,
    })
}

/// runc's rules (1.2 on): a variable given more than once takes its last value, at the
/// place of its last occurrence, and appears once; an empty HOME is dropped, so that the
/// user's home replaces it.
fn dedup_env(env: &[OsString]) -> Vec<OsString> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<OsString> = env
        .iter()
        .rev()
        .filter(|kv| {
            let b = kv.as_bytes();
            let name = b.iter().position(|c| *c == b'=').map_or(b, |i| &b[..i]);
            seen.insert(name) && b != b"HOME="
        })
        .cloned()
        .collect();
    out.reverse();
    out
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn lookup(program: impl AsRef<OsStr>, path_var: impl AsRef<OsStr>) -> Result<PathBuf, InitError> {
    let program = program.as_ref();
    let name = program.to_string_lossy();
    let fail = |problem| InitError::Lookup { program: name.to_string(), problem };
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(fail(LookupError::Directory)),
            Ok(_) if is_executable(&p) => Ok(p),
            Ok(_) => Err(fail(LookupError::NotExecutable)),
            Err(source) => Err(fail(LookupError::Stat { path: name.to_string(), source })),
        };
    }
    path_var
        .as_ref()
        .as_bytes()
        .split(|b| *b == b':')
        .map(|dir| Path::new(if dir.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(dir) }).join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| fail(LookupError::NotInPath))
}

/// HOME from the container's /etc/passwd for `uid`, "/" otherwise (runc's rule).
fn home_of(uid: u32) -> String {
    let Ok(f) = std::fs::File::open("/etc/passwd") else { return "/".into() };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return "/".into();
    }
    let mut text = String::new();
    if f.take(MAX_PASSWD).read_to_string(&mut text).is_err() {
        return "/".into();
    }
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

impl Prepared {
    /// The environment the process will get.
    pub fn env(&self) -> &[CString] {
        &self.envp
    }

    /// Replaces this process. If the kernel refuses (a binary for another architecture, a
    /// script whose interpreter is missing), the start or exec has happened, and as with
    /// runc (1.1 and 1.3, init and exec alike) the failure is the process's own: the reason
    /// goes to its stderr in Go's words (`exec /bin/sh: exec format error`) and it exits
    /// 255 (runc 1.2 on). A client sees a process that ran and exited: Docker's log and
    /// exit code, kubelet's Error, not a failed start. The seccomp filter is loaded by now,
    /// so the `write` is made only if the filter certainly allows it.
    pub fn exec_or_exit(&self, seccomp: Option<&crate::seccomp::Filter>) -> ! {
        reset_signals();
        let err = match nix::unistd::execve(&self.path, &self.argv, &self.envp) {
            Err(source) => InitError::Exec { path: self.path.clone(), source },
            Ok(never) => match never {},
        };
        let msg = format!("{err}\n");
        let args = [libc::STDERR_FILENO as u64, 0, msg.len() as u64, 0, 0, 0];
        if seccomp.is_none_or(|f| f.allows(libc::SYS_write, args)) {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
        }
        crate::sys::exit_now(255)
    }
}

/// The process starts with default dispositions and an empty mask, whatever the runtime
/// set for itself (Rust ignores SIGPIPE; `run` blocks signals to forward them).
fn reset_signals() {
    use nix::sys::signal::{SigSet, Signal};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        let _ = crate::sys::set_default_disposition(sig);
    }
    let _ = SigSet::empty().thread_set_mask();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[&str]) -> Vec<OsString> {
        vars.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_variable_given_twice_keeps_its_last_value_once_and_an_empty_home_goes() {
        assert_eq!(dedup_env(&env(&["ONE=two", "ONE=", "PATH=/bin"])), env(&["ONE=", "PATH=/bin"]));
        assert_eq!(dedup_env(&env(&["A=1", "B=2", "A=3"])), env(&["B=2", "A=3"]));
        assert_eq!(dedup_env(&env(&["HOME=/override", "HOME="])), env(&[]));
        assert_eq!(dedup_env(&env(&["HOME=", "HOME=/h"])), env(&["HOME=/h"]));
        assert_eq!(dedup_env(&env(&["PATH=/a", "PATH=/b"])), env(&["PATH=/b"]));
    }

    #[test]
    fn lookup_searches_path_and_reports_runc_style() {
        assert_eq!(lookup("sh", "/nonexistent:/bin").unwrap(), PathBuf::from("/bin/sh"));
        let e = lookup("no-such-binary-xyz", "/bin").unwrap_err().to_string();
        assert_eq!(e, "exec: \"no-such-binary-xyz\": executable file not found in $PATH");
        assert!(lookup("/etc", "").unwrap_err().to_string().contains("is a directory"));
        let e = lookup("/no/such/binary", "").unwrap_err().to_string();
        assert!(e.ends_with("stat /no/such/binary: no such file or directory"), "{e}");
    }
}
