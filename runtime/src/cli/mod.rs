//! runc's command line. Parsing and printing only: the work is in the library.

mod checkpoint;
mod create;
mod delete;
mod exec;
mod kill;
mod list;
mod ops;
mod parse;
mod run;
mod simple;

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The unix socket a flag names (`--console-socket`, `--pidfd-socket`), connected; a
/// failure names the flag and the path.
fn connect_socket(flag: &str, path: Option<&std::path::Path>) -> anyhow::Result<Option<std::os::fd::OwnedFd>> {
    use anyhow::Context;
    path.map(|p| berth::console::connect(p).with_context(|| format!("{flag} {}", p.display()))).transpose()
}

/// A container id: the command line's bytes, refused with a message that shows them when
/// they are not UTF-8 (clap's own error names no argument).
#[derive(Clone)]
pub struct IdArg;

impl clap::builder::TypedValueParser for IdArg {
    type Value = String;

    fn parse_ref(&self, _cmd: &clap::Command, _arg: Option<&clap::Arg>, value: &OsStr) -> Result<String, clap::Error> {
        berth::id::from_os(value).map_err(|e| clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{e}\n")))
    }
}

#[derive(Parser)]
#[cfg_attr(test, derive(Debug))]
#[command(name = "berth", about = "An OCI container runtime with runc's command line", disable_version_flag = true)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The flags that come before the command (and, where global, after it too).
#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct Globals {
    /// Print the version
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// Enable debug logging
    #[arg(long, global = true)]
    debug: bool,
    /// Log file (default: stderr only)
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Root directory for the containers' state (default: /run/berth, or
    /// $XDG_RUNTIME_DIR/berth when not root)
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Path to criu (default: criu on PATH, then /usr/sbin/criu)
    #[arg(long, global = true)]
    criu: Option<String>,
    /// Use the systemd cgroup driver
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (auto: when not root, or in a user namespace
    /// that does not map every id)
    #[arg(long)]
    rootless: Option<String>,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the container's init
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<PathBuf>,
    /// File to write the init's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on a ramdisk)
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many fds from 3 up to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Container id
    #[arg(value_parser = IdArg)]
    id: String,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct UpdateArgs {
    /// File with a LinuxResources JSON, or - for stdin (the other flags are then ignored)
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    /// blkio weight, 10..1000
    #[arg(long = "blkio-weight", allow_hyphen_values = true)]
    blkio_weight: Option<String>,
    /// CPU CFS period (µs)
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    cpu_period: Option<String>,
    /// CPU CFS quota (µs per period; -1 for none)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", alias = "cpu-shares", allow_hyphen_values = true)]
    cpu_share: Option<String>,
    /// CPU CFS burst (µs)
    #[arg(long = "cpu-burst", allow_hyphen_values = true)]
    cpu_burst: Option<String>,
    /// CPU idle (1: the cgroup's tasks run as SCHED_IDLE; 0: not)
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    cpu_idle: Option<String>,
    /// CPU realtime period (µs)
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true)]
    cpu_rt_period: Option<String>,
    /// CPU realtime runtime (µs)
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<String>,
    /// CPUs to use
    #[arg(long = "cpuset-cpus", allow_hyphen_values = true)]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long = "cpuset-mems", allow_hyphen_values = true)]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a unit: 64m, 1g)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Obsolete, ignored with a warning
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Obsolete, ignored with a warning
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Maximum number of pids
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long = "mem-bw-schema", allow_hyphen_values = true)]
    mem_bw_schema: Option<String>,
    #[arg(value_parser = IdArg)]
    id: String,
}

impl UpdateArgs {
    fn flags(&self) -> berth::update::Flags {
        berth::update::Flags {
            blkio_weight: self.blkio_weight.clone(),
            cpu_period: self.cpu_period.clone(),
            cpu_quota: self.cpu_quota.clone(),
            cpu_share: self.cpu_share.clone(),
            cpu_burst: self.cpu_burst.clone(),
            cpu_idle: self.cpu_idle.clone(),
            cpu_rt_period: self.cpu_rt_period.clone(),
            cpu_rt_runtime: self.cpu_rt_runtime.clone(),
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory: self.memory.clone(),
            memory_reservation: self.memory_reservation.clone(),
            memory_swap: self.memory_swap.clone(),
            kernel_memory: self.kernel_memory.clone(),
            kernel_memory_tcp: self.kernel_memory_tcp.clone(),
            pids_limit: self.pids_limit.clone(),
            l3_cache_schema: self.l3_cache_schema.clone(),
            mem_bw_schema: self.mem_bw_schema.clone(),
        }
    }
}

// The commands a container's life goes through (create, start, state, kill, delete, run,
// exec) take their arguments from a struct of their own, which `parse` builds alone.
#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Detach from the container's process
    #[arg(short = 'd', long)]
    detach: bool,
    /// Do not delete the container after it exits
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct IdArgs {
    #[arg(value_parser = IdArg)]
    id: String,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct KillArgs {
    /// Signal every process in the container's cgroup
    #[arg(short = 'a', long)]
    all: bool,
    #[arg(value_parser = IdArg)]
    id: String,
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

#[derive(clap::Args)]
#[cfg_attr(test, derive(Debug))]
pub struct DeleteArgs {
    /// Kill the container first if it is running
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(value_parser = IdArg)]
    id: String,
}

#[derive(Subcommand)]
#[cfg_attr(test, derive(Debug))]
enum Command {
    /// Create a container
    Create(CreateArgs),
    /// Create and start a container, and wait for it unless --detach
    Run(RunArgs),
    /// Start the process of a created container
    Start(IdArgs),
    /// Print the state of a container as JSON
    State(IdArgs),
    /// Send a signal to the container's init (or to all its processes)
    Kill(KillArgs),
    /// Delete a container and what create made for it
    Delete(DeleteArgs),
    /// List the containers under --root
    #[command(alias = "ls")]
    List {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print ids only
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json into the bundle
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// Generate a config for a rootless container
        #[arg(long)]
        rootless: bool,
    },
    /// Run a process in an existing container
    Exec(Box<exec::ExecArgs>),
    /// Print the features of this runtime as JSON (runtime-spec features.md)
    Features,
    /// List the processes running in a container
    Ps {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(value_parser = IdArg)]
        id: String,
        /// Arguments for the host's ps (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a running container
    Pause {
        #[arg(value_parser = IdArg)]
        id: String,
    },
    /// Thaw a paused container
    Resume {
        #[arg(value_parser = IdArg)]
        id: String,
    },
    /// Print the container's resource usage and OOM events as JSON
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Time between stats events
        #[arg(long, default_value = "5s")]
        interval: String,
        #[arg(value_parser = IdArg)]
        id: String,
    },
    /// Change the resource limits of a running container
    Update(Box<UpdateArgs>),
    /// Checkpoint a running container with criu
    Checkpoint(checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint with criu
    Restore(checkpoint::RestoreArgs),
    /// Any other command: refused as not supported
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

/// Long flags that urfave/cli (runc) also accepts with a single dash.
const LONG_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "criu",
    "systemd-cgroup",
    "rootless",
    "bundle",
    "console-socket",
    "pid-file",
    "no-pivot",
    "no-new-keyring",
    "preserve-fds",
    "detach",
    "keep",
    "all",
    "force",
    "format",
    "quiet",
    "version",
    "help",
    "tty",
    "cwd",
    "env",
    "user",
    "additional-gids",
    "cap",
    "no-new-privs",
    "ignore-paused",
    "cgroup",
    "apparmor",
    "process-label",
    "process",
    "no-subreaper",
    "resources",
    "stats",
    "interval",
    "blkio-weight",
    "cpu-period",
    "cpu-quota",
    "cpu-share",
    "cpu-shares",
    "cpu-burst",
    "cpu-idle",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpuset-cpus",
    "cpuset-mems",
    "memory",
    "memory-reservation",
    "memory-swap",
    "kernel-memory",
    "kernel-memory-tcp",
    "pids-limit",
    "l3-cache-schema",
    "mem-bw-schema",
    "image-path",
    "work-path",
    "leave-running",
    "tcp-established",
    "file-locks",
    "ext-unix-sk",
    "shell-job",
    "pre-dump",
    "parent-path",
    "manage-cgroups-mode",
];

/// The global flags that take their value from the next argument.
const GLOBAL_VALUE_FLAGS: &[&str] = &["--root", "--log", "--log-format", "--criu", "--rootless"];

/// The other flags that take a value as the next argument (create's and exec's).
const VALUE_FLAGS: &[&str] = &[
    "--console-socket",
    "--pid-file",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--additional-gids",
    "-g",
    "--cap",
    "-c",
    "--preserve-fds",
    "--cgroup",
    "--apparmor",
    "--process-label",
    "--process",
    "-p",
];

/// Whether `flag` takes the next argument as its value: that argument is not exec's container
/// id.
fn takes_value(flag: &str) -> bool {
    GLOBAL_VALUE_FLAGS.contains(&flag) || VALUE_FLAGS.contains(&flag)
}

/// Arguments are bytes: a flag is matched only where it is UTF-8, and everything else is
/// passed on untouched (exec's command and its environment may be any bytes).
fn normalize<A: Into<OsString>>(args: impl Iterator<Item = A>) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    let mut past_flags = false;
    // exec's command line ends at its container id: what follows is the command's own.
    let mut in_exec = false;
    let mut expect_value = false;
    for (i, a) in args.map(Into::into).enumerate() {
        if past_flags || a == "--" {
            past_flags = true;
            out.push(a);
            continue;
        }
        let value = std::mem::replace(&mut expect_value, false);
        let Some(text) = a.to_str() else {
            // Not a flag: a value, or a positional (an id, which clap refuses by name).
            if i > 0 && !value && in_exec {
                past_flags = true;
            }
            out.push(a);
            continue;
        };
        if i > 0 && !value && !text.starts_with('-') {
            if in_exec {
                past_flags = true;
            } else if text == "exec" {
                in_exec = true;
            }
            out.push(a);
            continue;
        }
        if let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            let name = rest.split('=').next().unwrap_or("");
            if LONG_FLAGS.contains(&name) {
                expect_value = !text.contains('=') && takes_value(&format!("-{text}"));
                out.push(format!("-{text}").into());
                continue;
            }
        }
        expect_value = !text.contains('=') && takes_value(text);
        out.push(a);
    }
    out
}

/// Makes sure fds 0-2 and the --preserve-fds range are occupied before berth opens
/// anything, so none of berth's own fds can land where the container would inherit it.
fn reserve_fds(preserve: u32) {
    berth::sys::occupy_free_fds(3 + preserve as i32);
}

pub fn main() -> i32 {
    if let Some(steps) = berth::failpoint::listing() {
        for s in steps {
            println!("{s}");
        }
        return 0;
    }
    // Bytes, not std::env::args(): that panics on an argument that is not UTF-8.
    let argv: Vec<OsString> = std::env::args_os().collect();
    let preserve = argv
        .windows(2)
        .find(|w| w[0] == "--preserve-fds" || w[0] == "-preserve-fds")
        .and_then(|w| w[1].to_str()?.parse().ok())
        .or_else(|| {
            argv.iter().find_map(|a| {
                let a = a.to_str()?;
                a.strip_prefix("--preserve-fds=")
                    .or_else(|| a.strip_prefix("-preserve-fds="))
                    .and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(0u32);
    reserve_fds(preserve.min(1 << 16));
    let Cli { globals: cli, command } = match parse::parse(normalize(argv.into_iter())) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and friends.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            // One line, like every other berth error: clap's first line without its prefix.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            eprintln!("berth: {}", first.trim_start_matches("error: "));
            return 1;
        }
    };
    let format = if cli.log_format == "json" { berth::log::Format::Json } else { berth::log::Format::Text };
    berth::log::init(cli.log.clone(), format, cli.debug);
    if cli.version {
        println!("berth version {}\nspec: {}", env!("CARGO_PKG_VERSION"), berth::state::OCI_VERSION);
        return 0;
    }
    let Some(command) = command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return 2;
    };
    // runc's exec exits 255 when it fails to run the process (whatever the reason: no such
    // container, cwd, binary, pid file), so a caller can tell it from the process's own
    // exit code; every other command fails with 1.
    let failure = if matches!(command, Command::Exec(_)) { 255 } else { 1 };
    if matches!(command, Command::Create(_) | Command::Run(_) | Command::Exec(_)) {
        if let Err(e) = berth::sealed::reexec_protected() {
            berth::log::error(&format!("re-executing from a read-only view of berth: {e}"));
            return failure;
        }
    }
    let rootless = match berth::rootless::parse_flag(cli.rootless.as_deref().unwrap_or("auto")) {
        Ok(r) => r,
        Err(e) => {
            berth::log::error(&e.to_string());
            return failure;
        }
    };
    berth::rootless::set(rootless);
    // spec and features keep no state: they work without a state root.
    let command = match command {
        Command::Spec { bundle, rootless } => return finish(simple::spec(&bundle, rootless), failure),
        Command::Features => return finish(simple::features(), failure),
        c => c,
    };
    let root = match cli.root.clone().map_or_else(berth::rootless::default_state_root, Ok) {
        Ok(r) => r,
        Err(e) => {
            berth::log::error(&e.to_string());
            return failure;
        }
    };
    let store = berth::state::Store::new(root);
    let result = match command {
        Command::Create(args) => create::run(&store, args, cli.systemd_cgroup),
        Command::Run(RunArgs { create, detach, keep }) => run::run(&store, create, detach, keep, cli.systemd_cgroup),
        Command::Start(IdArgs { id }) => berth::container::start(&store, &id).map(|()| 0).map_err(Into::into),
        Command::State(IdArgs { id }) => simple::state(&store, &id),
        Command::Kill(KillArgs { all, id, signal }) => kill::run(&store, &id, &signal, all),
        Command::Delete(DeleteArgs { force, id }) => delete::run(&store, &id, force),
        Command::List { format, quiet } => list::run(&store, &format, quiet),
        Command::Exec(args) => exec::run(&store, *args),
        Command::Ps { format, id, ps_args } => ops::ps(&store, &id, &format, &ps_args),
        Command::Pause { id } => berth::container::pause(&store, &id).map(|()| 0).map_err(Into::into),
        Command::Resume { id } => berth::container::resume(&store, &id).map(|()| 0).map_err(Into::into),
        Command::Events { stats, interval, id } => ops::events(&store, &id, stats, &interval),
        Command::Update(args) => ops::update(&store, &args.id, args.resources.as_deref(), &args.flags()),
        Command::Checkpoint(args) => checkpoint::checkpoint(&store, cli.criu.clone().map(PathBuf::from), args),
        Command::Restore(args) => {
            checkpoint::restore(&store, cli.criu.clone().map(PathBuf::from), cli.systemd_cgroup, args)
        }
        Command::Other(args) => Err(anyhow::anyhow!(
            "{:?}: this command is not supported by berth yet",
            args.first().map(|a| a.to_string_lossy()).unwrap_or_default()
        )),
        Command::Spec { .. } | Command::Features => Ok(0),
    };
    finish(result, failure)
}

/// The exit code of a command's result, its error logged.
fn finish(result: anyhow::Result<i32>, failure: i32) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            berth::log::error(&error_line(&e));
            failure
        }
    }
}

/// One line: the error and those of its causes that it does not already spell out
/// (library errors embed their cause in their own message).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn exec_command_arguments_are_not_rewritten() {
        let v = normalize(
            ["berth", "-root", "/r", "exec", "-e", "A=1", "-cwd", "/", "id", "sh", "-root", "-c"]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(v, ["berth", "--root", "/r", "exec", "-e", "A=1", "--cwd", "/", "id", "sh", "-root", "-c"]);
    }

    #[test]
    fn ps_args_after_the_id_are_kept() {
        let args = normalize("berth ps id -o pid,comm".split(' ').map(str::to_string));
        match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Some(Command::Ps { id, ps_args, .. })) => {
                assert_eq!(id, "id");
                assert_eq!(ps_args, ["-o", "pid,comm"]);
            }
            _ => panic!("ps did not parse"),
        }
    }

    #[test]
    fn single_dash_long_flags_become_double() {
        let v = normalize(
            ["berth", "-root", "/r", "-log-format=json", "create", "-b", "x", "id"].iter().map(|s| s.to_string()),
        );
        assert_eq!(v, ["berth", "--root", "/r", "--log-format=json", "create", "-b", "x", "id"]);
    }

    #[test]
    fn runc_shim_command_lines_parse() {
        for line in [
            "berth --root /r --log /l.json --log-format json create --bundle /b --pid-file /p --console-socket /s id",
            "berth --root /r --log /l.json --log-format json delete --force id",
            "berth --root /r kill --all id 9",
            "berth --root /r kill id",
            "berth list -q",
            "berth run -d --bundle /b --no-pivot --no-new-keyring --preserve-fds 2 id",
            "berth --root /r --log /l --log-format json exec --process /tmp/runc-process1 --console-socket /s --detach --pid-file /p id",
            "berth exec -t -u 1:2 -e A=1 --cwd /tmp -g 5 --cap CAP_KILL id sh -c true",
            "berth --root /r ps --format json id",
            "berth ps id -ef",
            "berth ps id -o pid,comm",
            "berth --root /r pause id",
            "berth --root /r resume id",
            "berth --root /r events --stats id",
            "berth events --interval 1s id",
            "berth --root /r update --resources - id",
            "berth update --memory 1g --memory-swap -1 --cpu-quota -1 --pids-limit 10 id",
            "berth --systemd-cgroup create -b /b id",
            "berth --criu /usr/sbin/criu checkpoint --image-path /i --work-path /w --leave-running --tcp-established id",
            "berth checkpoint -pre-dump -parent-path ../p --manage-cgroups-mode full id",
            "berth restore -d --image-path /i -b /b --pid-file /p --file-locks --ext-unix-sk --shell-job --no-pivot id",
            // containerd-shim-runc-v2's restore (docker start --checkpoint), go-runc's order.
            "berth --root /r --log /l --log-format json --systemd-cgroup restore --image-path /i --work-path /w \
             --detach --pid-file /p -no-subreaper --bundle /b id",
        ] {
            let args = normalize(line.split(' ').map(str::to_string));
            assert!(Cli::try_parse_from(args).is_ok(), "{line}");
        }
    }
}
