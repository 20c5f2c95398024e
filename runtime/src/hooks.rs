//! Runs the spec's lifecycle hooks: the container state as JSON on stdin, `timeout` enforced
//! through a pidfd, stderr captured for the error message.
//!
//! Failure policy (runtime-spec runtime.md): a failing prestart, createRuntime,
//! createContainer or startContainer hook stops the rest and fails the operation
//! ([`run_all`]); a failing poststart or poststop hook is only a warning and the remaining
//! hooks of the list still run ([`run_each`]).
//!
//! Working directory, as runc gives it: prestart and createRuntime run in the bundle (runc
//! chdirs there before creating), createContainer in the container's root after its mounts
//! (runc 1.3 chdirs to the rootfs before running them), the others where the runtime is.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use thiserror::Error;

/// runtime-spec's state of the container as hooks get it on stdin (and the seccomp agent
/// with the listener, and the init at `start`).
pub fn state(
    id: &str,
    status: crate::state::Status,
    pid: i32,
    bundle: &Path,
    annotations: &HashMap<String, String>,
) -> String {
    serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": id,
        "status": status.to_string(),
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
    .to_string()
}

#[derive(Debug, Error)]
pub enum HookError {
    #[error("error running {kind} hook #{index}: {path}: {msg}")]
    Failed { kind: &'static str, index: usize, path: String, msg: String },
}

/// The six hook kinds, with the name used in messages.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn select(self, hooks: &oci_spec::runtime::Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// Runs every hook of `kind` in order with `cwd` as working directory (or ours); the first
/// failure stops the rest. A hook without `env` gets `default_env` when given (the
/// startContainer hooks get the container process's, as with runc), else ours.
pub fn run_all(
    hooks: Option<&oci_spec::runtime::Hooks>,
    kind: Kind,
    state: &[u8],
    cwd: Option<&Path>,
    default_env: Option<&[CString]>,
) -> Result<(), HookError> {
    let Some(hooks) = hooks else { return Ok(()) };
    for (index, hook) in kind.select(hooks).iter().enumerate() {
        run(hook, state, cwd, default_env).map_err(|msg| failed(kind, index, hook, msg))?;
    }
    Ok(())
}

/// Runs every hook of `kind` in order, whatever the earlier ones gave, and returns the
/// failures (for poststart and poststop, whose failures are warnings).
pub fn run_each(hooks: Option<&oci_spec::runtime::Hooks>, kind: Kind, state: &[u8]) -> Vec<HookError> {
    let Some(hooks) = hooks else { return Vec::new() };
    kind.select(hooks)
        .iter()
        .enumerate()
        .filter_map(|(index, hook)| run(hook, state, None, None).err().map(|msg| failed(kind, index, hook, msg)))
        .collect()
}

fn failed(kind: Kind, index: usize, hook: &Hook, msg: String) -> HookError {
    HookError::Failed { kind: kind.name(), index, path: hook.path().display().to_string(), msg }
}

const MAX_STDERR: usize = 4096;

fn run(hook: &Hook, state: &[u8], cwd: Option<&Path>, default_env: Option<&[CString]>) -> Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    // As runc: no env in the hook means `default_env`, else the runtime's own environment.
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    } else if let Some(env) = default_env {
        cmd.env_clear();
        for kv in env.iter().map(|kv| kv.as_bytes()) {
            if let Some(i) = kv.iter().position(|b| *b == b'=') {
                cmd.env(OsStr::from_bytes(&kv[..i]), OsStr::from_bytes(&kv[i + 1..]));
            }
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let deadline = hook.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
    let pidfd = crate::sys::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
    let mut stderr = child.stderr.take();
    let mut captured = Vec::new();
    loop {
        let remaining = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {}s", hook.timeout().unwrap_or(0)));
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        let fds = match crate::sys::poll_readable(&[Some(pidfd.as_fd()), stderr.as_ref().map(|e| e.as_fd())], remaining)
        {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        if fds[1] {
            let mut buf = [0u8; 1024];
            match stderr.as_mut().map(|e| e.read(&mut buf)) {
                Some(Ok(0)) | Some(Err(_)) | None => stderr = None,
                Some(Ok(n)) => {
                    let room = MAX_STDERR.saturating_sub(captured.len());
                    captured.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        if fds[0] {
            break;
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    // runc's words: "error running hook: signal: bad system call"; its tests grep them.
    let how = match std::os::unix::process::ExitStatusExt::signal(&status) {
        Some(sig) => format!("signal: {}", crate::signal::describe(sig)),
        None => status.to_string(),
    };
    let text = String::from_utf8_lossy(&captured);
    let text = text.trim();
    Err(if text.is_empty() {
        format!("error running hook: {how}")
    } else {
        format!("error running hook: {how}, stderr: {text}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_its_args() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}; echo $0 >> {}", out.display(), out.display()), "me"]}),
        );
        run(&h, b"{\"id\":\"x\"}", None, None).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}me\n");
    }

    #[test]
    fn failing_hook_reports_status_and_stderr() {
        let h = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}));
        let e = run(&h, b"{}", None, None).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("boom"), "{e}");
    }

    #[test]
    fn run_each_runs_the_hooks_after_a_failing_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hooks: oci_spec::runtime::Hooks = serde_json::from_value(serde_json::json!({"poststop": [
            {"path": "/bin/false"},
            {"path": "/bin/sh", "args": ["sh", "-c", format!("pwd > {}", out.display())]}
        ]}))
        .unwrap();
        let errors = run_each(Some(&hooks), Kind::Poststop, b"{}");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("poststop hook #0"), "{}", errors[0]);
        assert!(out.exists(), "the second hook did not run");
        assert!(run_all(Some(&hooks), Kind::Poststop, b"{}", None, None).is_err());
    }

    #[test]
    fn hook_runs_in_the_given_directory() {
        let dir = tempfile::tempdir().unwrap();
        let h = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "pwd > where"]}));
        run(&h, b"{}", Some(dir.path()), None).unwrap();
        let got = std::fs::read_to_string(dir.path().join("where")).unwrap();
        assert_eq!(got.trim(), dir.path().canonicalize().unwrap().to_str().unwrap());
    }

    #[test]
    fn hook_past_its_timeout_is_killed() {
        let h = hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}));
        let e = run(&h, b"{}", None, None).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
    }
}
