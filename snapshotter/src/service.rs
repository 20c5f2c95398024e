//! containerd.services.snapshots.v1.Snapshots over the engine in
//! `snapshotter.rs`. The `snapshotter` field of requests is ignored: a
//! proxy plugin is one snapshotter.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::snapshots as pb;
use crate::snapshotter::Snapshotter;
use crate::store::{Kind, Record};

pub struct Service {
    inner: Arc<Snapshotter>,
}

impl Service {
    pub fn new(inner: Arc<Snapshotter>) -> Self {
        Service { inner }
    }
}

fn labels(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

fn ts(n: u128) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: (n / 1_000_000_000) as i64, nanos: (n % 1_000_000_000) as i32 }
}

pub fn info(name: String, r: Record) -> pb::Info {
    pb::Info {
        name,
        parent: r.parent,
        kind: match r.kind {
            Kind::View => pb::Kind::View,
            Kind::Active => pb::Kind::Active,
            Kind::Committed => pb::Kind::Committed,
        } as i32,
        created_at: Some(ts(r.created)),
        updated_at: Some(ts(r.updated)),
        labels: r.labels.into_iter().collect(),
    }
}

type ListStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ListSnapshotsResponse, Status>> + Send>>;

/// containerd batches List replies; 100 infos per message keeps each well
/// under gRPC's default 4 MiB limit even with many labels.
const LIST_BATCH: usize = 100;

#[tonic::async_trait]
impl pb::snapshots_server::Snapshots for Service {
    async fn prepare(
        &self,
        req: Request<pb::PrepareSnapshotRequest>,
    ) -> Result<Response<pb::PrepareSnapshotResponse>, Status> {
        let r = req.into_inner();
        tracing::debug!(key = %r.key, parent = %r.parent, "prepare");
        let mounts = self.inner.create(Kind::Active, &r.key, &r.parent, labels(r.labels))?;
        Ok(Response::new(pb::PrepareSnapshotResponse { mounts }))
    }

    async fn view(&self, req: Request<pb::ViewSnapshotRequest>) -> Result<Response<pb::ViewSnapshotResponse>, Status> {
        let r = req.into_inner();
        tracing::debug!(key = %r.key, parent = %r.parent, "view");
        let mounts = self.inner.create(Kind::View, &r.key, &r.parent, labels(r.labels))?;
        Ok(Response::new(pb::ViewSnapshotResponse { mounts }))
    }

    async fn mounts(&self, req: Request<pb::MountsRequest>) -> Result<Response<pb::MountsResponse>, Status> {
        let r = req.into_inner();
        let mounts = self.inner.mounts(&r.key)?;
        Ok(Response::new(pb::MountsResponse { mounts }))
    }

    async fn commit(&self, req: Request<pb::CommitSnapshotRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        tracing::debug!(key = %r.key, name = %r.name, "commit");
        self.inner.commit(&r.name, &r.key, labels(r.labels))?;
        Ok(Response::new(()))
    }

    async fn remove(&self, req: Request<pb::RemoveSnapshotRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        tracing::debug!(key = %r.key, "remove");
        self.inner.remove(&r.key)?;
        Ok(Response::new(()))
    }

    async fn stat(&self, req: Request<pb::StatSnapshotRequest>) -> Result<Response<pb::StatSnapshotResponse>, Status> {
        let r = req.into_inner();
        let rec = self.inner.stat(&r.key)?;
        Ok(Response::new(pb::StatSnapshotResponse { info: Some(info(r.key, rec)) }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateSnapshotRequest>,
    ) -> Result<Response<pb::UpdateSnapshotResponse>, Status> {
        let r = req.into_inner();
        let i = r.info.ok_or_else(|| Status::invalid_argument("update without info"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let rec = self.inner.update(&i.name, &labels(i.labels), &paths)?;
        Ok(Response::new(pb::UpdateSnapshotResponse { info: Some(info(i.name, rec)) }))
    }

    type ListStream = ListStream;

    async fn list(&self, req: Request<pb::ListSnapshotsRequest>) -> Result<Response<Self::ListStream>, Status> {
        let r = req.into_inner();
        let all = self.inner.list(&r.filters)?;
        let mut batches = Vec::new();
        let mut cur = Vec::new();
        for (name, rec) in all {
            cur.push(info(name, rec));
            if cur.len() == LIST_BATCH {
                batches.push(Ok(pb::ListSnapshotsResponse { info: std::mem::take(&mut cur) }));
            }
        }
        if !cur.is_empty() {
            batches.push(Ok(pb::ListSnapshotsResponse { info: cur }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }

    async fn usage(&self, req: Request<pb::UsageRequest>) -> Result<Response<pb::UsageResponse>, Status> {
        let r = req.into_inner();
        let (size, inodes) = self.inner.usage(&r.key)?;
        Ok(Response::new(pb::UsageResponse { size, inodes }))
    }

    async fn cleanup(&self, _req: Request<pb::CleanupRequest>) -> Result<Response<()>, Status> {
        let n = self.inner.cleanup()?;
        tracing::debug!(removed = n, "cleanup");
        Ok(Response::new(()))
    }
}
