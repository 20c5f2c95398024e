use std::os::fd::OwnedFd;

use berth::container;
use berth::state::Store;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::CreateArgs;

pub fn run(store: &Store, args: CreateArgs, detach: bool, keep: bool, systemd_cgroup: bool) -> anyhow::Result<i32> {
    let id = args.id.clone();
    let terminal_here = !detach && args.console_socket.is_none() && wants_terminal(&args.bundle);
    let mut opts = super::create::opts(args, systemd_cgroup)?;
    // In the foreground with a terminal, berth itself receives the pty master.
    let mut own_console: Option<OwnedFd> = None;
    if terminal_here {
        let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?;
        own_console = Some(mine);
        opts.console = Some(theirs);
    }
    if !detach {
        berth::foreground::block_signals()?;
    }
    let created = container::create(store, opts, terminal_here)?;
    let master = match &own_console {
        Some(sock) => {
            let m = berth::console::recv_fd(std::os::fd::AsFd::as_fd(sock))?;
            // The init waits for start: nothing has been written yet.
            berth::console::clear_onlcr(std::os::fd::AsFd::as_fd(&m))?;
            Some(m)
        }
        None => None,
    };
    if let Err(e) = container::start(store, &id) {
        let _ = container::delete(store, &id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    let code = container::wait_foreground(&created, master)?;
    if !keep {
        container::delete(store, &id, true)?;
    }
    Ok(code)
}

fn wants_terminal(bundle: &std::path::Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.pointer("/process/terminal").and_then(|t| t.as_bool()))
        .unwrap_or(false)
}
