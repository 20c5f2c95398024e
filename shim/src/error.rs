//! One error type for the shim library; converted to ttrpc status codes at the service boundary
//! so containerd maps them onto its errdefs (NotFound, FailedPrecondition, ...).

use containerd_shim_protos::ttrpc::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("{binary} {command} failed: {message}")]
    Runtime { binary: String, command: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("shim library: {0}")]
    Shim(#[from] containerd_shim::Error),
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ttrpc: {0}")]
    Ttrpc(#[from] ttrpc::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Builds a closure for `map_err` that names what was being done.
pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

pub fn sys(context: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
    let context = context.into();
    move |source| Error::Sys { context, source }
}

impl From<cgroupfs::Error> for Error {
    fn from(e: cgroupfs::Error) -> Self {
        match e {
            cgroupfs::Error::Io { path, op, source } => {
                Error::Io { context: format!("{op} {}", path.display()), source }
            }
            cgroupfs::Error::Discovery(msg) => Error::FailedPrecondition(msg),
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Code::NOT_FOUND,
            _ => Code::UNKNOWN,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
    }
}
