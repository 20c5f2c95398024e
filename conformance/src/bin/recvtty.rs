//! A console-socket receiver for guests, like runc's recvtty but scripted: listens on
//! SOCKET, takes the pty master a runtime sends (create or restore --console-socket),
//! writes INPUT and a newline to it, and prints what the terminal shows until MARKER
//! appears on a line of its own (or 30 s pass: exit status 1). With `hold` it then keeps
//! the master open until killed, as a shim would while the container runs.
//!
//! Usage: recvtty SOCKET INPUT MARKER [hold]

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: recvtty SOCKET INPUT MARKER [hold]");
        std::process::exit(2);
    }
    let (socket, input, marker) = (&args[1], &args[2], &args[3]);
    let hold = args.get(4).is_some_and(|a| a == "hold");
    let listener = UnixListener::bind(socket).unwrap_or_else(|e| fail(&format!("bind {socket}: {e}")));
    let master = conformance::console::recv_fd(&listener);
    drop(listener);
    let mut tty = std::fs::File::from(master);
    tty.write_all(format!("{input}\n").as_bytes()).unwrap_or_else(|e| fail(&format!("writing to the pty: {e}")));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        let text = String::from_utf8_lossy(&seen).replace('\r', "");
        if text.lines().any(|l| l.trim() == marker) {
            break true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => fail(&format!("poll: {e}")),
        }
        let mut buf = [0u8; 1024];
        match tty.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    };
    print!("{}", String::from_utf8_lossy(&seen).replace('\r', ""));
    println!("\nrecvtty: marker {}", if found { "seen" } else { "missing" });
    let _ = std::io::stdout().flush();
    if !found {
        std::process::exit(1);
    }
    if hold {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("recvtty: {msg}");
    std::process::exit(1);
}
