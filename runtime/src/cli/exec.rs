use berth::exec::{self, ExecOpts, Overrides, ProcessSource};
use berth::state::Store;

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct ExecArgs {
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Unix socket that receives the pty master (with --tty and --detach)
    #[arg(long = "console-socket")]
    console_socket: Option<std::path::PathBuf>,
    /// Unix socket that receives a pidfd of the process
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<std::path::PathBuf>,
    /// Detach from the process
    #[arg(short = 'd', long)]
    detach: bool,
    /// File to write the process's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<std::path::PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    cwd: Option<std::ffi::OsString>,
    /// Set an environment variable (KEY=value); repeatable
    #[arg(short = 'e', long)]
    env: Vec<std::ffi::OsString>,
    /// uid[:gid] to run as
    #[arg(short = 'u', long, allow_hyphen_values = true)]
    user: Option<String>,
    /// Additional gid; repeatable
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability (bounding, effective, permitted, ambient); repeatable
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass this many fds from 3 up to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Exec even if the container is paused
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Run in a sub-cgroup: path, or controller[,controller]:path on cgroup v1; repeatable
    #[arg(long)]
    cgroup: Vec<String>,
    /// AppArmor profile to run the process under (default: the container's)
    #[arg(long)]
    apparmor: Option<String>,
    /// SELinux label to run the process with (default: the container's)
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// Accepted for runc compatibility: berth waits for its child itself
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
    /// process.json: an OCI process object to run instead of <command>
    #[arg(short = 'p', long)]
    process: Option<std::path::PathBuf>,
    /// Container id
    #[arg(value_parser = super::IdArg)]
    id: String,
    /// Command and arguments (bytes: passed on as they are)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

pub fn run(store: &Store, a: ExecArgs) -> anyhow::Result<i32> {
    let _ = a.no_subreaper;
    let source = match a.process {
        Some(p) => {
            if !a.command.is_empty() {
                anyhow::bail!("--process: a command cannot be given as well");
            }
            ProcessSource::File(p)
        }
        None => {
            if a.command.is_empty() {
                anyhow::bail!("exec: a command to run is required (or --process)");
            }
            ProcessSource::Args(Overrides {
                args: a.command,
                tty: a.tty,
                cwd: a.cwd,
                env: a.env,
                user: a.user,
                additional_gids: a.additional_gids,
                caps: a.cap,
                no_new_privs: a.no_new_privs,
                apparmor: a.apparmor,
                process_label: a.process_label,
            })
        }
    };
    let console = super::connect_socket("--console-socket", a.console_socket.as_deref())?;
    let pidfd_socket = super::connect_socket("--pidfd-socket", a.pidfd_socket.as_deref())?;
    if !a.detach {
        berth::foreground::block_signals()?;
    }
    let execed = exec::exec(
        store,
        ExecOpts {
            id: a.id,
            source,
            console,
            pidfd_socket,
            detach: a.detach,
            pid_file: a.pid_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
            preserve_fds: a.preserve_fds,
            ignore_paused: a.ignore_paused,
            cgroup: a.cgroup,
        },
    )?;
    if a.detach {
        return Ok(0);
    }
    Ok(exec::wait(execed)?)
}
