use berth::container::{self, CreateOpts};
use berth::state::Store;

use super::CreateArgs;

pub fn opts(args: CreateArgs, systemd_cgroup: bool) -> anyhow::Result<CreateOpts> {
    let console = super::connect_socket("--console-socket", args.console_socket.as_deref())?;
    let pidfd_socket = super::connect_socket("--pidfd-socket", args.pidfd_socket.as_deref())?;
    Ok(CreateOpts {
        id: args.id,
        bundle: args.bundle,
        pid_file: args.pid_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
        console,
        pidfd_socket,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        systemd_cgroup,
    })
}

pub fn run(store: &Store, args: CreateArgs, systemd_cgroup: bool) -> anyhow::Result<i32> {
    container::create(store, opts(args, systemd_cgroup)?, false)?;
    Ok(0)
}
