//! berth-snapshotter against containerd's built-in overlayfs snapshotter,
//! both reached through one private containerd, interleaved so that drift
//! on a shared machine hits both alike:
//!
//! * unpack: `ctr images import --snapshotter X` of a 20-layer image into a
//!   fresh namespace (the content is already in the store after the first
//!   round, so this is mostly unpacking);
//! * per layer: Prepare + mount + write a file + unmount + Commit through
//!   containerd's Snapshots API, for a chain of 20 layers.
//!
//! Prints medians and berth/overlayfs ratios (target ≤ 1.1×).
//! `BENCH_ROUNDS` sets the number of rounds (default 10).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_snapshotter::proto::snapshots as pb;
use conformance::containerd::{Containerd, SnapshotterProcess};
use conformance::image::{busybox_layer, write_oci_archive, Layer};
use tonic::metadata::MetadataValue;

const SNAPSHOTTERS: [&str; 2] = ["overlayfs", "berth"];
const LAYERS: usize = 20;
const IMAGE: &str = "docker.io/berth/bench20:latest";

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn image_layers() -> Result<Vec<Layer>> {
    let mut layers = vec![busybox_layer()?];
    for i in 1..LAYERS {
        let mut l = Layer::default().dir(&format!("l{i}"), 0o755);
        for f in 0..50 {
            l = l.file(&format!("l{i}/f{f}"), vec![b'x'; 4096], 0o644);
        }
        if i > 1 {
            l = l.whiteout(&format!("l{}/f0", i - 1));
        }
        layers.push(l);
    }
    Ok(layers)
}

fn req<T>(msg: T, ns: &'static str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("containerd-namespace", MetadataValue::from_static(ns));
    r
}

fn gc_root() -> std::collections::HashMap<String, String> {
    [("containerd.io/gc.root".to_string(), "bench".to_string())].into()
}

/// One chain of LAYERS layers on `snapshotter`; returns per-layer times.
async fn chain(
    c: &mut pb::snapshots_client::SnapshotsClient<tonic::transport::Channel>,
    snapshotter: &str,
    round: usize,
    target: &Path,
    out: &mut Vec<Duration>,
) -> Result<()> {
    let mut parent = String::new();
    let mut names = Vec::new();
    for i in 0..LAYERS {
        let key = format!("{snapshotter}-r{round}-l{i}-active");
        let name = format!("{snapshotter}-r{round}-l{i}");
        let t0 = Instant::now();
        let prep = pb::PrepareSnapshotRequest {
            snapshotter: snapshotter.into(),
            key: key.clone(),
            parent: parent.clone(),
            labels: gc_root(),
        };
        let mounts = c.prepare(req(prep, "bench")).await.context("prepare")?.into_inner().mounts;
        berth_snapshotter::mounts::mount_all(&mounts, target).context("mount")?;
        let w = std::fs::write(target.join(format!("f{i}")), b"layer");
        berth_snapshotter::mounts::unmount(target).context("unmount")?;
        w.context("write")?;
        let cm =
            pb::CommitSnapshotRequest { snapshotter: snapshotter.into(), name: name.clone(), key, labels: gc_root() };
        c.commit(req(cm, "bench")).await.context("commit")?;
        out.push(t0.elapsed());
        names.push(name.clone());
        parent = name;
    }
    for n in names.iter().rev() {
        let r = pb::RemoveSnapshotRequest { snapshotter: snapshotter.into(), key: n.clone() };
        c.remove(req(r, "bench")).await.context("remove")?;
    }
    Ok(())
}

fn import(ctd: &Containerd, ns: &str, snapshotter: &str, archive: &Path) -> Result<Duration> {
    let t0 = Instant::now();
    ctd.ctr(ns, &["images", "import", "--snapshotter", snapshotter, &archive.to_string_lossy()])?;
    let d = t0.elapsed();
    ctd.ctr(ns, &["images", "rm", "--sync", IMAGE])?;
    Ok(d)
}

fn main() -> Result<()> {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let snap = SnapshotterProcess::start()?;
    let ctd = Containerd::start(&[("berth", &snap.socket)])?;
    let work = tempfile::Builder::new().prefix("berth-bench-").tempdir()?;
    let archive = work.path().join("bench20.tar");
    write_oci_archive(&archive, IMAGE, &image_layers()?, &["/bin/sh"])?;
    let target = work.path().join("mnt");
    std::fs::create_dir(&target)?;

    // Warm-up: loads the content into the store and both snapshotters' code paths.
    for s in SNAPSHOTTERS {
        import(&ctd, &format!("warm-{s}"), s, &archive)?;
    }
    let mut unpack: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        for k in 0..2 {
            // Alternate which goes first each round.
            let idx = (r + k) % 2;
            let s = SNAPSHOTTERS[idx];
            unpack[idx].push(import(&ctd, &format!("unpack-{s}-{r}"), s, &archive)?);
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let per_layer = rt.block_on(async {
        let mut c = berth_snapshotter::client::connect(&ctd.address).await?;
        let mut per_layer: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for (i, s) in SNAPSHOTTERS.iter().enumerate() {
            chain(&mut c, s, 1000 + i, &target, &mut Vec::new()).await?;
        }
        for r in 0..rounds {
            for k in 0..2 {
                let idx = (r + k) % 2;
                chain(&mut c, SNAPSHOTTERS[idx], r, &target, &mut per_layer[idx]).await?;
            }
        }
        // The same chain straight to berth-snapshotter, without containerd
        // (and its metadata store and proxy hop) in between: where the time goes.
        let mut direct = berth_snapshotter::client::connect(&snap.socket).await?;
        let mut d = Vec::new();
        for r in 0..rounds {
            chain(&mut direct, "berth-direct", r, &target, &mut d).await?;
        }
        println!(
            "  (berth-snapshotter alone, no containerd: prepare+mount+commit per layer {:.2} ms)",
            median(&mut d).as_secs_f64() * 1e3
        );
        anyhow::Ok(per_layer)
    })?;
    let mut per_layer = per_layer;

    println!("berth-snapshotter vs containerd overlayfs ({rounds} rounds, interleaved; medians)");
    let report = |what: &str, v: &mut [Vec<Duration>; 2]| {
        let o = median(&mut v[0]);
        let b = median(&mut v[1]);
        let ratio = b.as_secs_f64() / o.as_secs_f64();
        println!(
            "  {what:<40} overlayfs {:>9.2} ms   berth {:>9.2} ms   ratio {ratio:.2}x {}",
            o.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            if ratio <= 1.1 { "(ok, target <= 1.1x)" } else { "(over the 1.1x target)" }
        );
    };
    report(&format!("unpack of a {LAYERS}-layer image (ctr import)"), &mut unpack);
    report("prepare+mount+commit per layer", &mut per_layer);

    // containerd removes backend snapshots at garbage collection; a
    // synchronous image removal runs one, after which nothing may be left.
    import(&ctd, "final-gc", "berth", &archive)?;
    let left = snap.layer_dirs();
    if !left.is_empty() {
        bail!("berth-snapshotter kept {} layer directories after the bench", left.len());
    }
    Ok(())
}
