#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::unwrap_used)]
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// An overlayfs snapshotter for containerd, served as a proxy plugin.
#[derive(Parser, Debug)]
#[command(name = "berth-snapshotter", version)]
struct Args {
    /// Directory for the metadata database and layer data.
    #[arg(long, default_value = "/var/lib/berth-snapshotter")]
    root: PathBuf,
    /// Unix socket to serve containerd's Snapshots API on.
    #[arg(long, alias = "address", default_value = "/run/berth-snapshotter/snapshotter.sock")]
    socket: PathBuf,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn main() {
    if let Err(e) = run() {
        // One line, the whole cause chain: this is what an operator sees in
        // the journal when the service refuses to start.
        eprintln!("berth-snapshotter: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_max_level(args.log_level).with_writer(std::io::stderr).init();
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let cfg = berth_snapshotter::server::Config { root: args.root, socket: args.socket };
    rt.block_on(berth_snapshotter::server::run(cfg))?;
    Ok(())
}
