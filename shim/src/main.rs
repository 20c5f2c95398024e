#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]

fn main() {
    if let Some(steps) = containerd_shim_berth_v2::failpoint::listing() {
        for s in steps {
            println!("{s}");
        }
        return;
    }
    if let Err(e) = containerd_shim_berth_v2::shim::run() {
        // During `start` containerd reads stderr as part of the address; an error is the one
        // case where printing is right, since containerd then reports it as the failure.
        eprintln!("{}: {e:#}", containerd_shim_berth_v2::shim::RUNTIME_ID);
        std::process::exit(1);
    }
}
