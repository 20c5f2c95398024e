//! The library's error: one variant per concern, each message naming the field or id.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Id(#[from] crate::id::InvalidId),
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Rootless(#[from] crate::rootless::RootlessError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Criu(#[from] crate::checkpoint::criu::CriuError),
    /// A namespace file the config names cannot be used (its path is in the message).
    #[error("{field}: {source}")]
    Namespace { field: String, source: crate::namespaces::NsError },
    #[error("container \"{id}\": {msg}")]
    Init { id: String, msg: String },
    #[error("container \"{id}\" is {status}: {msg}")]
    WrongState { id: String, status: crate::state::Status, msg: &'static str },
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    /// `map_err` helper: `.map_err(Error::namespace("linux.namespaces (pid)"))`.
    pub fn namespace(field: impl Into<String>) -> impl FnOnce(crate::namespaces::NsError) -> Self {
        move |source| Error::Namespace { field: field.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
