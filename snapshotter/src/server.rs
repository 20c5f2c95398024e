//! Process-level concerns: the root lock, the socket, signals.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;

use crate::error::{Error, Result};
use crate::incoming::Incoming;
use crate::proto::snapshots::snapshots_server::SnapshotsServer;
use crate::service::Service;
use crate::snapshotter::Snapshotter;

const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub socket: PathBuf,
}

/// Holds `<root>/lock` for the life of the process: two instances on one
/// root would hand out the same ids and collect each other's directories.
pub struct RootLock {
    _lock: Flock<File>,
}

pub fn lock_root(root: &Path) -> Result<RootLock> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| Error::io("creating root", root, e))?;
    let path = root.join("lock");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    let mut holder = String::new();
    let _ = f.read_to_string(&mut holder);
    let mut lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(Error::Other(format!(
                "another berth-snapshotter (pid {}) is already using root {}",
                holder.trim(),
                root.display()
            )))
        }
        Err((_, e)) => return Err(Error::io("locking", &path, e.into())),
    };
    let pid = std::process::id().to_string();
    let w = lock.set_len(0).and_then(|_| lock.rewind()).and_then(|_| lock.write_all(pid.as_bytes()));
    w.map_err(|e| Error::io("writing", &path, e))?;
    Ok(RootLock { _lock: lock })
}

/// Serves until SIGTERM or SIGINT, then removes the socket.
pub async fn run(cfg: Config) -> Result<()> {
    let _lock = lock_root(&cfg.root)?;
    let snap = Arc::new(Snapshotter::open(&cfg.root)?);
    if let Some(dir) = cfg.socket.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("creating socket directory", dir, e))?;
    }
    // We hold the root lock, so a socket file left here is a dead instance's.
    match std::fs::remove_file(&cfg.socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("removing stale socket", &cfg.socket, e))
        }
        _ => {}
    }
    let listener = UnixListener::bind(&cfg.socket).map_err(|e| Error::io("binding", &cfg.socket, e))?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod", &cfg.socket, e))?;
    tracing::info!(root = %cfg.root.display(), socket = %cfg.socket.display(), "serving");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("installing SIGTERM handler for", &cfg.socket, e))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::io("installing SIGINT handler for", &cfg.socket, e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(SnapshotsServer::new(Service::new(snap)))
        .serve_with_incoming_shutdown(Incoming::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    let served = tokio::select! {
        r = &mut server => r,
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(());
            // In-flight requests get to finish, but a client that merely
            // keeps its connection open (containerd always does) would hold
            // a graceful shutdown forever.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::info!("clients still connected after the grace period; exiting");
                    Ok(())
                }
            }
        }
    };
    let _ = std::fs::remove_file(&cfg.socket);
    served.map_err(|e| Error::Other(format!("gRPC server: {e}")))
}
