//! Running criu through its command line and reading its verdict from its log.
//!
//! The command line rather than the RPC (`criu swrk`, protobuf over a socketpair): every
//! option berth passes has a flag, the exit status and the log file carry the outcome, and
//! no copy of criu's rpc.proto has to track the installed criu. What the CLI cannot do is
//! call back into berth during a restore (RPC notifications such as `orphan-pts-master`,
//! which runc uses to hand a restored pty to `--console-socket`), so terminals are refused.

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CriuError {
    #[error("criu not found (looked for {0}): install Debian's criu or pass --criu")]
    NotFound(String),
    #[error("running {criu}: {source}")]
    Spawn { criu: PathBuf, source: std::io::Error },
    /// `problem` is criu's own error lines, joined; the log has the rest.
    #[error("container \"{id}\": criu {action} failed ({status}): {problem} (log: {log})")]
    Failed { id: String, action: &'static str, status: String, problem: String, log: PathBuf },
}

/// `--criu` or, by default, `criu` on PATH, then Debian's /usr/sbin/criu.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf, CriuError> {
    if let Some(p) = flag {
        if p.components().count() > 1 {
            return if p.is_file() { Ok(p.to_path_buf()) } else { Err(CriuError::NotFound(p.display().to_string())) };
        }
    }
    let name = flag.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("criu"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).map(|d| d.join(&name)).collect();
    if flag.is_none() {
        candidates.push(PathBuf::from("/usr/sbin/criu"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| CriuError::NotFound(format!("{} on PATH and /usr/sbin/criu", name.display())))
}

/// What criu must do in its child before exec, for a restore: a private mount namespace in
/// which the rootfs is a mount point of its own (pivot_root wants one), so nothing of the
/// preparation shows on the host and nothing needs undoing.
pub struct RestoreMounts {
    pub rootfs: PathBuf,
}

/// Runs criu with `args` (the action first) and waits for it. On failure the error carries
/// criu's error lines from `log`.
pub fn run(
    criu: &Path,
    id: &str,
    action: &'static str,
    args: &[OsString],
    log: &Path,
    mounts: Option<&RestoreMounts>,
) -> Result<(), CriuError> {
    let mut cmd = Command::new(criu);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(m) = mounts {
        let root = CString::new(m.rootfs.as_os_str().as_bytes())
            .map_err(|_| CriuError::Spawn { criu: criu.into(), source: std::io::ErrorKind::InvalidInput.into() })?;
        berth_sys::command::private_mount_ns_with_bind(&mut cmd, root);
    }
    let mut child = cmd.spawn().map_err(|e| CriuError::Spawn { criu: criu.into(), source: e })?;
    let mut stderr = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| CriuError::Spawn { criu: criu.into(), source: e })?;
    if status.success() {
        return Ok(());
    }
    let log_text = std::fs::read_to_string(log).unwrap_or_default();
    let mut problem = error_lines(&log_text);
    if problem.is_empty() {
        problem = error_lines(&stderr);
    }
    if problem.is_empty() {
        problem = stderr
            .lines()
            .chain(log_text.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no error message")
            .trim()
            .to_string();
    }
    Err(CriuError::Failed { id: id.into(), action, status: status.to_string(), problem, log: log.into() })
}

/// criu's `Error (file:line): message` lines, as `message`s joined with "; " (at most
/// four: the first is the cause, the rest its consequences).
pub fn error_lines(log: &str) -> String {
    log.lines()
        .filter_map(|l| {
            let i = l.find("Error (")?;
            let rest = &l[i..];
            let msg = rest.find("): ").map(|j| &rest[j + 3..]).unwrap_or(rest);
            Some(msg.trim().to_string())
        })
        .filter(|m| !m.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_keep_criu_messages_without_locations() {
        let log = "(00.000) Version: 3.17.1\n\
                   (00.003) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n\
                   (00.003) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n\
                   (00.004) Warn  something else\n";
        assert_eq!(
            error_lines(log),
            "vdso: Failed to fill self vdso symtable; kerndat_vdso_fill_symtable failed when initializing kerndat."
        );
        assert_eq!(error_lines("all fine\n"), "");
    }

    #[test]
    fn locate_refuses_a_missing_explicit_path() {
        assert!(matches!(locate(Some(Path::new("/nonexistent/criu"))), Err(CriuError::NotFound(_))));
    }
}
