//! `checkpoint` and `restore` (runc's flags); the work is in berth::checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use berth::checkpoint::{self, CheckpointOpts, CriuOpts, RestoreOpts};
use berth::state::Store;

/// Flags checkpoint and restore share.
#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct CriuArgs {
    /// Directory for criu's image files
    #[arg(long = "image-path", default_value = "checkpoint")]
    image_path: PathBuf,
    /// Directory for criu's log (default: the image path)
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// cgroups mode for criu: soft (default), full, strict or ignore
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct CheckpointArgs {
    #[command(flatten)]
    criu: CriuArgs,
    /// Leave the process running after the checkpoint
    #[arg(long = "leave-running")]
    leave_running: bool,
    /// Dump the memory only, for a later checkpoint with --parent-path
    #[arg(long = "pre-dump")]
    pre_dump: bool,
    /// Images of the previous pre-dump (relative to --image-path)
    #[arg(long = "parent-path")]
    parent_path: Option<PathBuf>,
    /// Container id
    #[arg(value_parser = super::IdArg)]
    id: String,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct RestoreArgs {
    #[command(flatten)]
    criu: CriuArgs,
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Detach from the container's process
    #[arg(short = 'd', long)]
    detach: bool,
    /// File to write the restored init's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket the restored terminal's master is sent to (process.terminal true)
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Do not use pivot_root
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for runc's flag set: containerd-shim-runc-v2 passes it on every restore
    /// (`docker start --checkpoint`); the restored init is reparented to the caller's
    /// subreaper either way, berth itself reaping nothing once detached.
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
    /// Container id
    #[arg(value_parser = super::IdArg)]
    id: String,
}

fn criu_opts(criu: Option<PathBuf>, a: CriuArgs) -> CriuOpts {
    CriuOpts {
        criu,
        image_path: a.image_path,
        work_path: a.work_path,
        tcp_established: a.tcp_established,
        file_locks: a.file_locks,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        manage_cgroups_mode: a.manage_cgroups_mode,
    }
}

pub fn checkpoint(store: &Store, criu: Option<PathBuf>, a: CheckpointArgs) -> anyhow::Result<i32> {
    let opts = CheckpointOpts {
        criu: criu_opts(criu, a.criu),
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path,
    };
    checkpoint::checkpoint(store, &a.id, &opts)?;
    Ok(0)
}

pub fn restore(store: &Store, criu: Option<PathBuf>, systemd_cgroup: bool, a: RestoreArgs) -> anyhow::Result<i32> {
    let console = match &a.console_socket {
        Some(p) => Some(berth::console::connect(p).with_context(|| format!("--console-socket {}", p.display()))?),
        None => None,
    };
    if !a.detach {
        berth::foreground::block_signals()?;
    }
    let _ = a.no_subreaper;
    let id = a.id.clone();
    let restored = checkpoint::restore(
        store,
        RestoreOpts {
            criu: criu_opts(criu, a.criu),
            id: a.id,
            bundle: a.bundle,
            pid_file: a.pid_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
            console,
            no_pivot: a.no_pivot,
            systemd_cgroup,
        },
    )?;
    if a.detach {
        return Ok(0);
    }
    let code = berth::foreground::wait(&restored.pidfd, None).context("waiting for the container")?;
    berth::container::delete(store, &id, true)?;
    Ok(code)
}
