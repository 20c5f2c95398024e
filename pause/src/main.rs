//! berth-pause: the process a pod sandbox runs. It keeps the pod's namespaces alive, and as
//! pid 1 of the pod's pid namespace (when containers share it) it reaps the orphans that get
//! reparented to it. SIGINT and SIGTERM end it with status 0, which is how the CRI plugin
//! stops a sandbox. It sleeps in pause(2) between signals: no threads, no allocation after start.

#![deny(clippy::unwrap_used)]

use std::io::Write;

extern "C" fn on_terminate(_sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; nothing needs flushing.
    unsafe { libc::_exit(0) };
}

extern "C" fn on_child(_sig: libc::c_int) {
    // Several exits can collapse into one SIGCHLD: reap until none is left.
    // SAFETY: waitpid is async-signal-safe; a null status pointer is allowed.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; we set the handler and an empty mask before use.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART | if sig == libc::SIGCHLD { libc::SA_NOCLDSTOP } else { 0 };
    // SAFETY: sa_mask is a field of our own struct; sigaction reads sa only during the call.
    unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("-v") {
        println!("berth-pause {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    for (sig, handler) in [
        (libc::SIGINT, on_terminate as extern "C" fn(libc::c_int)),
        (libc::SIGTERM, on_terminate),
        (libc::SIGCHLD, on_child),
    ] {
        if let Err(e) = install(sig, handler) {
            let _ = writeln!(std::io::stderr(), "berth-pause: sigaction({sig}): {e}");
            std::process::exit(1);
        }
    }
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        let _ =
            writeln!(std::io::stderr(), "berth-pause: not pid 1: orphans of this pod are reaped by another process");
    }
    loop {
        // SAFETY: pause only suspends the thread until a handler has run.
        unsafe { libc::pause() };
    }
}
