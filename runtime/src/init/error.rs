//! The error of the container's init and of the exec'd process before execve: what was
//! being done, the config.json field it applied where one applies, and the cause. It is
//! turned into text only to cross the channel to the parent (`Msg::Error`), which reports
//! it under the container's id.

use std::borrow::Cow;
use std::ffi::CString;
use std::fmt::Display;
use std::io;

use nix::errno::Errno;
use thiserror::Error;

use crate::capabilities::CapError;
use crate::hooks::HookError;
use crate::namespaces::NsError;
use crate::rootfs::RootfsError;
use crate::seccomp::SeccompError;

#[derive(Debug, Error)]
pub enum InitError {
    /// The config asks for what cannot be done as given, found only inside the container
    /// (a cwd outside its root, a NUL byte in an argument).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A system call failed, its cause an errno.
    #[error("{}", joined(field, op, source))]
    Sys {
        field: Option<Cow<'static, str>>,
        op: Option<Cow<'static, str>>,
        #[source]
        source: Errno,
    },
    /// A call failed with an io::Error (std, or berth's syscall layer).
    #[error("{}", joined(field, op, source))]
    Io {
        field: Option<Cow<'static, str>>,
        op: Option<Cow<'static, str>>,
        #[source]
        source: io::Error,
    },
    /// The channel to the parent failed.
    #[error("sync with parent: {}", joined(&None::<&str>, op, source))]
    Sync {
        op: Option<&'static str>,
        #[source]
        source: io::Error,
    },
    /// The parent sent what the handshake does not expect here (its Debug form).
    #[error("sync with parent: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
    /// `process.args[0]` cannot be run (runc's wording).
    #[error("exec: {program:?}: {problem}")]
    Lookup { program: String, problem: LookupError },
    /// execve itself failed, in Go's words as runc prints them ("exec /run.sh: no such file
    /// or directory"), which scripts and runc's tests grep.
    #[error("exec {}: {}", path.to_string_lossy(), source.desc().to_lowercase())]
    Exec {
        path: CString,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Namespace(#[from] NsError),
    #[error(transparent)]
    Capabilities(#[from] CapError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Hook(#[from] HookError),
}

/// Why the executable cannot be run, in runc's (Go's) words: Docker maps "no such file or
/// directory" and "permission denied" in an exec error to exit codes 127 and 126.
#[derive(Debug, Error)]
pub enum LookupError {
    #[error("is a directory")]
    Directory,
    #[error("permission denied")]
    NotExecutable,
    #[error("stat {path}: {}", errno_text(source))]
    Stat { path: String, source: io::Error },
    #[error("executable file not found in $PATH")]
    NotInPath,
}

/// The present parts, then the cause, joined with ": ".
fn joined<F: AsRef<str>, O: AsRef<str>>(field: &Option<F>, op: &Option<O>, source: &dyn Display) -> String {
    let mut text = String::new();
    for part in [field.as_ref().map(AsRef::as_ref), op.as_ref().map(AsRef::as_ref)].into_iter().flatten() {
        text.push_str(part);
        text.push_str(": ");
    }
    text.push_str(&source.to_string());
    text
}

/// An errno's description, lower case, as Go prints it.
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

impl InitError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InitError {
        InitError::Invalid { field: field.into(), reason: reason.into() }
    }

    /// `map_err` helper for a failed exchange with the parent.
    pub fn sync(op: &'static str) -> impl FnOnce(io::Error) -> InitError {
        move |source| InitError::Sync { op: Some(op), source }
    }

    pub fn sync_failed(source: io::Error) -> InitError {
        InitError::Sync { op: None, source }
    }
}

/// Where a failing call stands: the field it applies and what it does. Built with
/// [`applying`] and [`doing`], turned into an error by [`Context::errno`] or
/// [`Context::io`]: `.map_err(applying("process.cwd").doing("chdir").errno())`. A
/// literal costs no allocation on the path that succeeds.
#[derive(Debug, Default)]
pub struct Context {
    field: Option<Cow<'static, str>>,
    op: Option<Cow<'static, str>>,
}

/// A call applying `field` of config.json (with the value, where the message shows it).
pub fn applying(field: impl Into<Cow<'static, str>>) -> Context {
    Context { field: Some(field.into()), op: None }
}

/// A call doing `op`, for no field in particular.
pub fn doing(op: impl Into<Cow<'static, str>>) -> Context {
    Context { field: None, op: Some(op.into()) }
}

impl Context {
    pub fn doing(mut self, op: impl Into<Cow<'static, str>>) -> Context {
        self.op = Some(op.into());
        self
    }

    pub fn errno(self) -> impl FnOnce(Errno) -> InitError {
        move |source| InitError::Sys { field: self.field, op: self.op, source }
    }

    pub fn io(self) -> impl FnOnce(io::Error) -> InitError {
        move |source| InitError::Io { field: self.field, op: self.op, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field_then_the_call() {
        let e = applying("process.cwd /x").doing("chdir").errno()(Errno::ENOENT);
        assert_eq!(e.to_string(), format!("process.cwd /x: chdir: {}", Errno::ENOENT));
        let e = doing("setsid").errno()(Errno::EPERM);
        assert_eq!(e.to_string(), format!("setsid: {}", Errno::EPERM));
        let io = || io::Error::from_raw_os_error(libc::EPERM);
        let e = applying("linux.personality").io()(io());
        assert_eq!(e.to_string(), format!("linux.personality: {}", io()));
        let e = InitError::sync("receiving the container's state")(io());
        assert_eq!(e.to_string(), format!("sync with parent: receiving the container's state: {}", io()));
        let e = InitError::Lookup {
            program: "/x".into(),
            problem: LookupError::Stat { path: "/x".into(), source: io::Error::from_raw_os_error(libc::ENOENT) },
        };
        assert_eq!(e.to_string(), "exec: \"/x\": stat /x: no such file or directory");
    }
}
