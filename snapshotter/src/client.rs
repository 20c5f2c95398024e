//! A client for the Snapshots service on a unix socket, for tests, the
//! bench and tools. containerd's own socket serves the same service
//! (selecting the snapshotter by name and namespace).

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::proto::snapshots::snapshots_client::SnapshotsClient;

pub async fn connect_channel(socket: impl Into<PathBuf>) -> Result<Channel> {
    let socket = socket.into();
    // The URI is required by tonic but unused: the connector dials the socket.
    let ep = Endpoint::try_from("http://[::1]:1").map_err(|e| Error::Other(e.to_string()))?;
    ep.connect_with_connector(tower::service_fn(move |_| {
        let socket = socket.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
    }))
    .await
    .map_err(|e| Error::Other(format!("connecting: {e}")))
}

pub async fn connect(socket: impl Into<PathBuf>) -> Result<SnapshotsClient<Channel>> {
    Ok(SnapshotsClient::new(connect_channel(socket).await?))
}
