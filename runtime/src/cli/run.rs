use std::os::fd::OwnedFd;

use berth::container;
use berth::state::Store;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::CreateArgs;

pub fn run(store: &Store, args: CreateArgs, detach: bool, keep: bool, systemd_cgroup: bool) -> anyhow::Result<i32> {
    let id = args.id.clone();
    // In the foreground, berth itself receives the pty master if process.terminal asks for
    // one (create decides, having decoded config.json).
    let offer_terminal = !detach && args.console_socket.is_none();
    let mut opts = super::create::opts(args, systemd_cgroup)?;
    let mut own_console: Option<OwnedFd> = None;
    if offer_terminal {
        let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?;
        own_console = Some(mine);
        opts.console = Some(theirs);
    }
    if !detach {
        berth::foreground::block_signals()?;
    }
    let created = container::create(store, opts, offer_terminal)?;
    let master = match own_console.as_ref().filter(|_| created.terminal) {
        Some(sock) => {
            let m = berth::console::recv_fd(std::os::fd::AsFd::as_fd(sock))?;
            // The init waits for start: nothing has been written yet.
            berth::console::clear_onlcr(std::os::fd::AsFd::as_fd(&m))?;
            Some(m)
        }
        None => None,
    };
    if let Err(e) = container::start_created(store, &created) {
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
